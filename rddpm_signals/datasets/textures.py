"""Real textures from scikit-image (``brick``, ``grass``, ``gravel``), cropped, with synthetic defects.

Each source is a 512 × 512 grey photograph (``skimage.data``; no download). It is scaled to [0, 1] by its
own minimum and maximum, reduced ``downsample`` times by block averaging (2 by default: 256 × 256, so a
32 × 32 crop holds a whole brick width or a few stones), and cut into random ``size`` × ``size`` crops.
Training crops come from the top half of the image and test crops from the bottom half, so the test set is
texture the detector has not seen.

Defects, one per defective crop, sized relative to the crop:

- ``scratch``: a thin line (Gaussian cross-section, sigma 0.5–0.9 px, 0.3–0.5 in intensity), 40–90 % of the
  crop long, at any angle; bright on dark texture, dark on bright texture;
- ``cut``: a gap with a flat dark bottom (1–3 px wide, 30–70 % of the crop long) that replaces the texture;
- ``blob``: an irregular patch (radius 10–20 % of the crop) brightened (on dark texture) or darkened (on
  bright texture) by 0.25–0.4: a discolouration;
- ``missing_texture``: an irregular patch (radius 15–28 % of the crop) where the texture is replaced by its
  own local mean (a Gaussian blur of 4 px), as on a worn or filled spot; placed where it removes the most
  texture among six random places.

Intensities are clipped to [0, 1] after painting. The mask marks each defect's footprint: the pixels where
the defect's weight is at least 0.5 (a change-of-intensity rule would leave holes in replacement defects
wherever the texture happens to match the replacement).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from ._defects2d import blob, line
from .base import AnomalyDataset, check_defects, check_splits, dataset_from_splits, paint_split, split_streams

__all__ = ["make_texture", "DEFECTS", "TEXTURES"]

DEFECTS = ("scratch", "cut", "blob", "missing_texture")
TEXTURES = ("brick", "grass", "gravel")
_SOURCE_SIZE = 512


@lru_cache(maxsize=8)
def _source(name: str, downsample: int) -> np.ndarray:
    """The whole texture photograph ``(512 / downsample, 512 / downsample)`` in [0, 1], read-only."""
    from skimage import data

    image = getattr(data, name)().astype(np.float64)
    image = (image - image.min()) / (image.max() - image.min())
    side = image.shape[0] // downsample
    blocks = image[: side * downsample, : side * downsample].reshape(side, downsample, side, downsample)
    image = blocks.mean(axis=(1, 3))
    image.flags.writeable = False
    return image


def _crops(rng: np.random.Generator, region: np.ndarray, n: int, size: int) -> np.ndarray:
    rows = rng.integers(0, region.shape[0] - size + 1, size=n)
    cols = rng.integers(0, region.shape[1] - size + 1, size=n)
    return np.stack([region[r : r + size, c : c + size] for r, c in zip(rows, cols, strict=True)])


def _headroom_sign(image: np.ndarray, weight: np.ndarray) -> float:
    """+1 (brighten) where the footprint lies on dark texture, -1 (darken) on bright texture, so the change is
    not lost to clipping at 0 or 1."""
    return 1.0 if np.average(image, weights=weight + 1e-12) < 0.5 else -1.0


def _paint(rng: np.random.Generator, image: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``image`` ``(S, S)`` with one ``kind`` defect, and the defect's footprint mask ``(S, S)``."""
    shape, size = image.shape, image.shape[0]
    centre = tuple(rng.uniform(0.2, 0.8, size=2) * size)
    angle = rng.uniform(0.0, np.pi)
    if kind == "scratch":
        weight = line(shape, centre, angle, rng.uniform(0.4, 0.9) * size, width=rng.uniform(0.5, 0.9))
        out = image + _headroom_sign(image, weight) * rng.uniform(0.3, 0.5) * weight
    elif kind == "cut":
        length, width = rng.uniform(0.3, 0.7) * size, rng.uniform(0.5, 1.5)
        weight = line(shape, centre, angle, length, width=width, profile="flat")
        out = (1.0 - weight) * image + weight * rng.uniform(0.0, 0.1)
    elif kind == "blob":
        radius = rng.uniform(0.1, 0.2) * size
        aspect = rng.uniform(1.0, 1.5)
        weight = blob(shape, centre, radius, rng, roughness=0.3, aspect=aspect, angle=angle, edge=2.0)
        out = image + _headroom_sign(image, weight) * rng.uniform(0.25, 0.4) * weight
    elif kind == "missing_texture":
        radius = rng.uniform(0.15, 0.28) * size
        smooth = ndimage.gaussian_filter(image, sigma=4.0, mode="reflect")
        # Of a few candidate places take the one with the most texture to lose: on a plain area (inside a
        # brick) the defect would not change the image and its mask would be a false ground truth.
        best = -1.0
        for _ in range(6):
            candidate = blob(
                shape,
                tuple(rng.uniform(0.2, 0.8, size=2) * size),
                radius,
                rng,
                roughness=0.3,
                aspect=rng.uniform(1.0, 1.5),
                angle=rng.uniform(0.0, np.pi),
                edge=3.0,
            )
            lost = float(np.average(np.abs(smooth - image), weights=candidate + 1e-12))
            if lost > best:
                best, weight = lost, candidate
        out = (1.0 - weight) * image + weight * smooth
    else:
        raise ValueError(f"unknown texture defect {kind!r}: use one of {DEFECTS}")
    return np.clip(out, 0.0, 1.0), weight >= 0.5


def _make_split(
    rng: np.random.Generator,
    region: np.ndarray,
    n: int,
    n_defective: int,
    size: int,
    defects: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clean = _crops(rng, region, n, size)
    x, mask, kind = paint_split(rng, clean, n_defective, defects, lambda r, i, k: _paint(r, clean[i], k))
    return x.astype(np.float32), mask, kind


def make_texture(
    name: str,
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 100,
    size: int = 32,
    downsample: int = 2,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] = DEFECTS,
) -> AnomalyDataset:
    """Crops of the scikit-image texture ``name``: ``train_x`` ``(n_train, 1, size, size)`` from the top
    half of the photograph, a ``contamination`` share of them defective; ``test_x`` ``(n_test, 1, size,
    size)`` from the bottom half with ``test_anomaly_share`` defective. Masks ``(N, size, size)``."""
    contamination = check_splits(contamination, n_train, n_test, test_anomaly_share)
    if name not in TEXTURES:
        raise ValueError(f"unknown texture {name!r}: use one of {TEXTURES}")
    if downsample not in (1, 2, 4, 8):
        raise ValueError(f"downsample must be 1, 2, 4 or 8 (a divisor of 512), got {downsample}")
    half = _SOURCE_SIZE // downsample // 2
    if not 16 <= size <= half:
        raise ValueError(f"size must lie in [16, {half}] (half the photograph at downsample={downsample})")
    defects = check_defects(defects, DEFECTS, "texture")
    source = _source(name, downsample)
    # Each split has its own random stream and its own half of the photograph.
    train, test = (
        _make_split(rng, region, n, n_defective, size, defects)
        for (rng, n, n_defective), region in zip(
            split_streams(seed, (41, TEXTURES.index(name)), n_train, contamination, n_test, test_anomaly_share),
            (source[:half], source[half:]),
            strict=True,
        )
    )
    meta = {
        "source": f"skimage.data.{name}",
        "axes": ("row", "col"),
        "pixel_size": float(downsample),  # source pixels per crop pixel
        "units": "intensity in [0, 1]",
        "size": size,
        "downsample": downsample,
        "train_region": "top half",
        "test_region": "bottom half",
        "defects": defects,
    }
    return dataset_from_splits(name, 2, train, test, meta, contamination, seed)
