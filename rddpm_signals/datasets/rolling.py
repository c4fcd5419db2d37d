"""Synthetic rolled-steel strip surface images (2D, one channel), as a strip-inspection camera shows them.

Columns run along the rolling direction, rows across the strip. The tile is compressed along the rolling
direction, as strip-inspection displays usually are: one pixel is 5 mm along the strip and 0.5 mm across it,
so a 64 × 64 tile covers 320 mm of strip length and 32 mm of its width. Intensities are in arbitrary units
near 0.5.

A normal surface is a smooth illumination field (a linear gradient and an off-centre vignette) times a
reflectance of 1 plus rolling streaks — fine, strongly anisotropic texture elongated along the rolling
direction, with a coarser, weaker component — plus sensor noise (standard deviation 0.01).

Defects, one per defective image, each a change of reflectance (so it scales with the local illumination):

- ``scratch``: a thin bright (polished) or dark (grooved) line, 12–40 % reflectance change, 30–90 % of the
  tile long, mostly within 7° of the rolling direction and in 3 of 10 cases oblique (10–35°);
- ``pit``: one to three small dark spots (radius 0.8–2 px, 25–60 % darker) close together;
- ``roll_mark``: the same small dent or pick-up mark repeated along the rolling direction at the
  circumference of a damaged roll (every 14–22 px, 70–110 mm: a leveller roll of 22–35 mm diameter), on one
  row, 12–30 % reflectance change;
- ``stain``: a large, irregular, low-contrast patch (radius 5–12 px, 10–18 % reflectance change; dark in
  three cases of four), with a patchy interior and a soft edge.

The mask marks the pixels where the defect changes the intensity by more than 0.025 (2.5 times the sensor
noise, about 5 % of the mean brightness).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._defects2d import blob, line
from .base import AnomalyDataset, check_defects, check_splits, dataset_from_splits, paint_split, split_streams

__all__ = ["make_rolling", "DEFECTS"]

DEFECTS = ("scratch", "pit", "roll_mark", "stain")
_PIXEL_MM = {"rolling_direction": 5.0, "transverse": 0.5}
_NOISE = 0.01
_MASK_LEVEL = 0.025


def _unit_std(field: np.ndarray) -> np.ndarray:
    return field / field.std(axis=(1, 2), keepdims=True)


def _surfaces(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Illumination ``(n, size, size)`` and the normal reflectance ``(n, size, size)`` (about 1)."""
    axis = np.linspace(-1.0, 1.0, size)
    y, x = axis[None, :, None], axis[None, None, :]
    base = rng.uniform(0.45, 0.6, size=(n, 1, 1))
    gx, gy = rng.normal(0.0, 0.08, size=(2, n, 1, 1))
    strength = rng.uniform(0.1, 0.3, size=(n, 1, 1))
    cx, cy = rng.uniform(-0.4, 0.4, size=(2, n, 1, 1))
    illumination = base * (1.0 + gx * x + gy * y) * (1.0 - 0.5 * strength * ((x - cx) ** 2 + (y - cy) ** 2))
    # Streaks: white noise smoothed far more along the rolling direction (columns) than across it.
    fine = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 0.7, 6.0), mode="wrap")
    coarse = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 2.5, 16.0), mode="wrap")
    amount = rng.uniform(0.03, 0.06, size=(n, 1, 1))
    return illumination, 1.0 + amount * (0.8 * _unit_std(fine) + 0.5 * _unit_std(coarse))


def _reflectance_change(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """The relative reflectance change ``(H, W)`` that one defect of ``kind`` makes."""
    h, w = shape
    if kind == "scratch":
        oblique = rng.random() < 0.3
        angle = rng.choice([-1.0, 1.0]) * (rng.uniform(0.17, 0.6) if oblique else rng.uniform(0.0, 0.12))
        centre = (rng.uniform(0.1, 0.9) * h, rng.uniform(0.2, 0.8) * w)
        footprint = line(shape, centre, angle, rng.uniform(0.3, 0.9) * w, width=rng.uniform(0.45, 0.9))
        return rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.4) * footprint
    if kind == "pit":
        centre = rng.uniform(0.1, 0.9, size=2) * (h, w)
        change = np.zeros(shape)
        for _ in range(rng.integers(1, 4)):
            spot = centre + rng.normal(0.0, 2.5, size=2)
            change -= rng.uniform(0.25, 0.6) * blob(shape, tuple(spot), rng.uniform(0.8, 2.0), edge=0.8)
        return np.maximum(change, -0.85)
    if kind == "roll_mark":
        spacing = rng.uniform(14.0, 22.0)
        row = rng.uniform(0.1, 0.9) * h
        first = rng.uniform(0.0, max(1.0, min(spacing, w - spacing)))  # at least two marks in view
        radius, aspect, angle = rng.uniform(1.2, 2.5), rng.uniform(0.6, 1.2), rng.uniform(-0.3, 0.3)
        footprint = sum(
            blob(shape, (row, col), radius, aspect=aspect, angle=angle, edge=1.0)
            for col in np.arange(first, w + radius, spacing)
        )
        return rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.3) * footprint
    if kind == "stain":
        centre = rng.uniform(0.1, 0.9, size=2) * (h, w)
        footprint = blob(
            shape,
            tuple(centre),
            rng.uniform(5.0, 12.0),
            rng,
            roughness=0.35,
            aspect=rng.uniform(1.0, 1.6),
            angle=rng.uniform(0, np.pi),
            edge=3.0,
        )
        patchy = ndimage.gaussian_filter(rng.uniform(size=shape), sigma=3.0, mode="reflect")
        patchy = (patchy - patchy.min()) / max(np.ptp(patchy), 1e-12)
        sign = -1.0 if rng.random() < 0.75 else 1.0
        return sign * rng.uniform(0.1, 0.18) * footprint * (0.75 + 0.25 * patchy)
    raise ValueError(f"unknown rolling defect {kind!r}: use one of {DEFECTS}")


def _make_split(
    rng: np.random.Generator, n: int, n_defective: int, size: int, defects: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` images ``(n, size, size)`` with ``n_defective`` defects, their masks and defect names."""
    illumination, reflectance = _surfaces(rng, n, size)
    clean = illumination * reflectance

    def paint(rng_: np.random.Generator, i: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        change = illumination[i] * _reflectance_change(rng_, (size, size), kind)
        return clean[i] + change, np.abs(change) > _MASK_LEVEL

    x, mask, kind = paint_split(rng, clean, n_defective, defects, paint)
    x += rng.normal(0.0, _NOISE, size=x.shape)
    return x.astype(np.float32), mask, kind


def make_rolling(
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 100,
    size: int = 64,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] = DEFECTS,
) -> AnomalyDataset:
    """Rolled-steel surface tiles: ``train_x`` ``(n_train, 1, size, size)``, a ``contamination`` share of them
    defective; ``test_x`` ``(n_test, 1, size, size)`` with ``test_anomaly_share`` defective. Masks
    ``(N, size, size)``. 64 × 64 by default (about 0.1 s to generate); ``size`` >= 32."""
    contamination = check_splits(contamination, n_train, n_test, test_anomaly_share)
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels so that a roll mark repeats in view, got {size}")
    defects = check_defects(defects, DEFECTS, "rolling")
    train, test = (
        _make_split(rng, n, n_defective, size, defects)
        for rng, n, n_defective in split_streams(seed, 31, n_train, contamination, n_test, test_anomaly_share)
    )
    meta = {
        "axes": ("transverse", "rolling_direction"),
        "pixel_size_mm": dict(_PIXEL_MM),
        "units": "a.u.",
        "mask_level": _MASK_LEVEL,
        "noise": _NOISE,
        "defects": defects,
    }
    return dataset_from_splits("rolling", 2, train, test, meta, contamination, seed)
