"""Footprints of 2D defects, shared by the image datasets (the loop that paints them is ``base.paint_split``).

A footprint is a float weight ``(H, W)`` in ``[0, 1]``: 1 where the defect is fully present, falling
smoothly to 0 at its edge. Generators turn a footprint into an intensity change (additive, multiplicative or
a replacement of the texture) and decide the mask rule; this module only draws shapes. Coordinates are in
pixels, ``(row, col)``; angles in radians, measured from the column (x) axis.
"""

from __future__ import annotations

import numpy as np

__all__ = ["line", "blob"]


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return rows.astype(np.float64), cols.astype(np.float64)


def line(
    shape: tuple[int, int],
    centre: tuple[float, float],
    angle: float,
    length: float,
    width: float,
    profile: str = "gauss",
    taper: float = 2.0,
) -> np.ndarray:
    """A straight stroke ``(H, W)`` through ``centre``: a scratch (``profile="gauss"``, ``width`` = the
    Gaussian sigma of the cross-section) or a cut with a flat bottom (``profile="flat"``, ``width`` = its
    half-width, edges one pixel soft). The ends fade out over ``taper`` pixels."""
    rows, cols = _grid(shape)
    dr, dc = rows - centre[0], cols - centre[1]
    along = dc * np.cos(angle) + dr * np.sin(angle)
    across = -dc * np.sin(angle) + dr * np.cos(angle)
    if profile == "gauss":
        cross = np.exp(-0.5 * (across / width) ** 2)
    elif profile == "flat":
        cross = np.clip(width + 0.5 - np.abs(across), 0.0, 1.0)
    else:
        raise ValueError(f"unknown line profile {profile!r}: use 'gauss' or 'flat'")
    ends = np.clip((0.5 * length - np.abs(along)) / max(taper, 1e-6), 0.0, 1.0)
    return cross * ends


def blob(
    shape: tuple[int, int],
    centre: tuple[float, float],
    radius: float,
    rng: np.random.Generator | None = None,
    roughness: float = 0.0,
    aspect: float = 1.0,
    angle: float = 0.0,
    edge: float = 1.0,
) -> np.ndarray:
    """A filled blob ``(H, W)``: an ellipse of semi-axes ``radius`` (along ``angle``) and ``radius / aspect``,
    its outline wobbled by random harmonics 2–5 of relative size ``roughness`` (needs ``rng``), with an edge
    that falls from 1 to 0 over about ``edge`` pixels."""
    rows, cols = _grid(shape)
    dr, dc = rows - centre[0], cols - centre[1]
    u = dc * np.cos(angle) + dr * np.sin(angle)
    v = (-dc * np.sin(angle) + dr * np.cos(angle)) * aspect
    r = np.hypot(u, v)
    outline = np.full_like(r, radius)
    if roughness > 0:
        if rng is None:
            raise ValueError("a rough blob needs rng: pass a numpy Generator")
        theta = np.arctan2(v, u)
        for k in range(2, 6):
            wobble = rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
            outline += radius * roughness / k * wobble
    return 1.0 / (1.0 + np.exp((r - outline) / (0.25 * max(edge, 1e-3))))
