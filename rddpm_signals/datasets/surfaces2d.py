"""The 2D development and validation families: ``dev_surfaces`` and ``val_surfaces`` (one channel).

================  ======================================================  =====================================
family            base texture                                            defect kinds
================  ======================================================  =====================================
``dev_surfaces``  a cast / blasted metal surface: isotropic band-pass      low-contrast stain, thin scratch at
                  noise (fine grain and coarse mottling) under an uneven    any angle, texture removal (a patch
                  illumination                                             smoothed flat)
``val_surfaces``  a woven fabric: warp and weft threads of period 5–7 px    intensity shift (a sharp-edged
                  crossing over and under, slightly rotated, with fuzz      patch), pits, texture change (a
                                                                           patch woven at another period or
                                                                           angle)
================  ======================================================  =====================================

Intensities are near 0.5 with a texture contrast of about 0.06 (dev) or 0.04 (val), plus sensor noise 0.01. The
mask rule follows the rolling set for additive defects (the pixels changed by more than 0.025) and the texture set
for replacements (the footprint's weight >= 0.5). ``meta["train_defect"]`` / ``meta["test_defect"]`` name each
image's defect.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._defects2d import blob, line
from .base import AnomalyDataset, check_defects, check_splits, dataset_from_splits, paint_split, split_streams

__all__ = ["make_surfaces", "FAMILIES"]

#: family → (base texture, defect kinds)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": ("cast_metal", ("stain", "scratch", "texture_removal")),
    "val": ("woven_fabric", ("intensity_shift", "pits", "texture_change")),
}
_STREAMS = {"dev": 81, "val": 91}
_NOISE = 0.01
_MASK_LEVEL = 0.025


def _unit(field: np.ndarray) -> np.ndarray:
    field = field - field.mean(axis=(-2, -1), keepdims=True)
    return field / field.std(axis=(-2, -1), keepdims=True)


def _illumination(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    axis = np.linspace(-1.0, 1.0, size)
    gy, gx = rng.normal(0.0, 0.05, size=(2, n, 1, 1))
    return rng.uniform(0.42, 0.58, size=(n, 1, 1)) * (1.0 + gx * axis[None, None, :] + gy * axis[None, :, None])


class CastMetal:
    """Isotropic band-pass noise: fine grain (sigma 0.8 px) and coarse mottling (sigma 3 px), contrast 0.05–0.07."""

    def __init__(self, rng: np.random.Generator, n: int, size: int):
        fine = _unit(ndimage.gaussian_filter(rng.normal(size=(n, size, size)), (0, 0.8, 0.8), mode="wrap"))
        coarse = _unit(ndimage.gaussian_filter(rng.normal(size=(n, size, size)), (0, 3.0, 3.0), mode="wrap"))
        contrast = rng.uniform(0.05, 0.07, size=(n, 1, 1))
        self.images = _illumination(rng, n, size) + contrast * (0.8 * fine + 0.6 * coarse)


class WovenFabric:
    """Plain weave: threads of period ``p`` crossing over and under, rotated by a few degrees, with yarn fuzz."""

    def __init__(self, rng: np.random.Generator, n: int, size: int):
        self.size = size
        self.period = rng.uniform(5.0, 7.0, size=n)
        self.angle = rng.normal(0.0, 0.05, size=n)
        self.shift = rng.uniform(0.0, 1.0, size=(n, 2))
        self.contrast = rng.uniform(0.035, 0.05, size=n)
        fuzz = _unit(ndimage.gaussian_filter(rng.normal(size=(n, size, size)), (0, 0.7, 0.7), mode="wrap"))
        self.base = _illumination(rng, n, size) + 0.012 * fuzz
        self.images = np.stack([self.base[i] + self.weave(i) for i in range(n)])

    def weave(self, i: int, period_factor: float = 1.0, turn: float = 0.0) -> np.ndarray:
        """Image ``i``'s thread pattern ``(S, S)`` (zero mean), optionally at another period or angle."""
        rows, cols = np.mgrid[0 : self.size, 0 : self.size].astype(np.float64)
        angle, period = self.angle[i] + turn, self.period[i] * period_factor
        u = (cols * np.cos(angle) + rows * np.sin(angle)) / period + self.shift[i, 0]
        v = (-cols * np.sin(angle) + rows * np.cos(angle)) / period + self.shift[i, 1]
        warp, weft = np.cos(np.pi * u) ** 2, np.cos(np.pi * v) ** 2
        over = np.sin(np.pi * u) * np.sin(np.pi * v) > 0  # which thread lies on top at each crossing
        pattern = ndimage.gaussian_filter(np.where(over, warp, weft), 0.5, mode="wrap")
        return 2.0 * self.contrast[i] * (pattern - pattern.mean())


def _patch(
    rng: np.random.Generator,
    shape: tuple[int, int],
    centre: tuple[float, float],
    angle: float,
    radius: tuple[float, float],
    roughness: float,
    max_aspect: float,
    edge: float,
) -> np.ndarray:
    """A rough blob footprint ``shape`` at ``centre``: radius drawn from ``radius`` (share of the image side), aspect
    from ``[1, max_aspect]``, then the outline's wobble."""
    return blob(
        shape,
        centre,
        rng.uniform(*radius) * shape[0],
        rng,
        roughness=roughness,
        aspect=rng.uniform(1.0, max_aspect),
        angle=angle,
        edge=edge,
    )


def _paint(rng: np.random.Generator, base, i: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Image ``i`` of ``base`` with one ``kind`` defect ``(S, S)`` and its mask ``(S, S)``."""
    image = base.images[i]
    shape, size = image.shape, image.shape[0]
    centre = tuple(rng.uniform(0.15, 0.85, size=2) * size)
    angle = rng.uniform(0.0, np.pi)
    if kind in ("texture_removal", "texture_change"):
        weight = _patch(rng, shape, centre, angle, (0.15, 0.28), 0.3, 1.5, 2.0)
        if kind == "texture_removal":
            other = ndimage.gaussian_filter(image, sigma=3.0, mode="reflect")
        elif rng.random() < 0.5:
            other = base.base[i] + base.weave(i, period_factor=rng.uniform(1.4, 1.8))
        else:
            other = base.base[i] + base.weave(i, turn=rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.8))
        return (1.0 - weight) * image + weight * other, weight >= 0.5
    if kind == "stain":
        weight = _patch(rng, shape, centre, angle, (0.18, 0.32), 0.35, 1.6, 4.0)
        change = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.07) * weight
    elif kind == "scratch":
        weight = line(shape, centre, angle, rng.uniform(0.4, 0.9) * size, width=rng.uniform(0.5, 0.9))
        change = rng.choice([-1.0, 1.0]) * rng.uniform(0.12, 0.25) * weight
    elif kind == "intensity_shift":
        weight = _patch(rng, shape, centre, angle, (0.15, 0.3), 0.2, 1.8, 0.8)
        change = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.1) * weight
    elif kind == "pits":
        change = np.zeros(shape)
        for _ in range(rng.integers(1, 5)):
            spot = np.asarray(centre) + rng.normal(0.0, 0.08 * size, size=2)
            change -= rng.uniform(0.12, 0.25) * blob(shape, tuple(spot), rng.uniform(0.8, 1.8), edge=0.8)
    else:
        raise ValueError(f"unknown surface defect {kind!r}: use one of {FAMILIES['dev'][1] + FAMILIES['val'][1]}")
    return image + change, np.abs(change) > _MASK_LEVEL


def _make_split(
    family: str, rng: np.random.Generator, n: int, n_defective: int, size: int, kinds: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = CastMetal(rng, n, size) if family == "dev" else WovenFabric(rng, n, size)
    x, mask, kind = paint_split(rng, base.images, n_defective, kinds, lambda r, i, k: _paint(r, base, i, k))
    x = x + rng.normal(0.0, _NOISE, size=x.shape)
    return x.astype(np.float32), mask, kind


def make_surfaces(
    family: str,
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 100,
    size: int = 32,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] | None = None,
) -> AnomalyDataset:
    """The 2D ``family`` (``"dev"`` or ``"val"``): ``train_x`` ``(n_train, 1, size, size)`` with a
    ``contamination`` share defective, ``test_x`` ``(n_test, 1, size, size)`` with ``test_anomaly_share``
    defective; masks ``(N, size, size)``. ``defects``: a subset of the family's kinds (default all)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown 2D family {family!r}: use one of {sorted(FAMILIES)}")
    contamination = check_splits(contamination, n_train, n_test, test_anomaly_share)
    if size < 24:
        raise ValueError(f"size must be >= 24 pixels (a few threads or grains across), got {size}")
    texture, kinds = FAMILIES[family]
    defects = check_defects(defects, kinds, f"{family}_surfaces")
    train, test = (
        _make_split(family, rng, n, n_defective, size, defects)
        for rng, n, n_defective in split_streams(
            seed, _STREAMS[family], n_train, contamination, n_test, test_anomaly_share
        )
    )
    meta = {
        "family": family,
        "base": texture,
        "axes": ("row", "col"),
        "units": "a.u.",
        "mask_level": _MASK_LEVEL,
        "noise": _NOISE,
        "defects": defects,
    }
    return dataset_from_splits(f"{family}_surfaces", 2, train, test, meta, contamination, seed)
