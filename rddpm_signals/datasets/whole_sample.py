"""Whole-sample anomalies: ``whole_sample`` and ``val_whole_sample`` (2D, one channel, 32 × 32 by default).

A one-class image set: every normal image shows one object of the *normal class* at a jittered place, size,
rotation and contrast on an uneven, noisy background; contamination is whole training images of *other* classes.
There is nothing local to find — the defect is the whole sample — so the metric that matters is the sample AUROC;
an anomalous test image's mask is the whole image (so the pixel metrics still compute).

============================  ==============  ============================================
dataset                       normal class    other classes (the anomalies)
============================  ==============  ============================================
``whole_sample``              ``ring``        ``disc``, ``square``, ``cross``
``val_whole_sample``          ``bar``         ``triangle``, ``two_discs``, ``ellipse``
============================  ==============  ============================================

``meta["train_defect"]`` / ``meta["test_defect"]`` give each anomalous image's class (``""`` for normal ones).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._defects2d import blob, line
from .base import AnomalyDataset, check_splits, dataset_from_splits, split_streams

__all__ = ["make_whole_sample", "FAMILIES", "draw_object"]

#: family → (normal class, anomalous classes)
FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": ("ring", ("disc", "square", "cross")),
    "val": ("bar", ("triangle", "two_discs", "ellipse")),
}
_STREAMS = {"dev": 121, "val": 131}


def _polygon(shape: tuple[int, int], centre: np.ndarray, radius: float, sides: int, angle: float) -> np.ndarray:
    """A filled regular polygon with soft edges (intersection of half-planes)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    inside = np.full(shape, np.inf)
    for k in range(sides):
        theta = angle + 2 * np.pi * k / sides
        along = (cols - centre[1]) * np.cos(theta) + (rows - centre[0]) * np.sin(theta)
        inside = np.minimum(inside, radius * np.cos(np.pi / sides) - along)
    return 1.0 / (1.0 + np.exp(-inside / 0.4))


def draw_object(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """The footprint ``(size, size)`` in [0, 1] of one object of class ``kind``, radius 22–32 % of the image."""
    shape = (size, size)
    centre = size / 2 + rng.normal(0.0, 0.08 * size, size=2)
    radius = rng.uniform(0.22, 0.32) * size
    angle = rng.uniform(0, np.pi)
    if kind == "ring":
        return np.clip(blob(shape, tuple(centre), radius) - blob(shape, tuple(centre), 0.6 * radius), 0.0, 1.0)
    if kind == "disc":
        return blob(shape, tuple(centre), radius)
    if kind == "square":
        return _polygon(shape, centre, radius, 4, angle)
    if kind == "triangle":
        return _polygon(shape, centre, radius, 3, angle)
    if kind == "cross":
        a = line(shape, tuple(centre), angle, 2 * radius, width=0.12 * radius, profile="flat")
        return np.maximum(a, line(shape, tuple(centre), angle + np.pi / 2, 2 * radius, 0.12 * radius, "flat"))
    if kind == "bar":
        return line(shape, tuple(centre), angle, 2 * radius, width=0.22 * radius, profile="flat")
    if kind == "ellipse":
        return blob(shape, tuple(centre), radius, aspect=2.2, angle=angle)
    if kind == "two_discs":
        offset = 0.55 * radius * np.array([np.sin(angle), np.cos(angle)])
        a, b = blob(shape, tuple(centre + offset), 0.45 * radius), blob(shape, tuple(centre - offset), 0.45 * radius)
        return np.maximum(a, b)
    known = sorted({k for normal, others in FAMILIES.values() for k in (normal, *others)})
    raise ValueError(f"unknown object class {kind!r}: use one of {known}")


def _make_split(
    rng: np.random.Generator, n: int, n_anomalous: int, size: int, normal: str, others: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(n, size, size)``, masks ``(n, size, size)`` (all True for an anomalous image) and classes ``(n,)``
    (``""`` for normal images)."""
    kind_of = np.full(n, "", dtype="<U32")
    kind_of[rng.permutation(n)[:n_anomalous]] = [others[k] for k in rng.integers(len(others), size=n_anomalous)]
    axis = np.linspace(-1.0, 1.0, size)
    x = np.empty((n, size, size))
    for i in range(n):
        gy, gx = rng.normal(0.0, 0.08, size=2)
        background = rng.uniform(0.3, 0.5) * (1.0 + gx * axis[None, :] + gy * axis[:, None])
        mottle = ndimage.gaussian_filter(rng.normal(size=(size, size)), 2.0, mode="wrap")
        contrast = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.35)
        x[i] = background + 0.05 * mottle / mottle.std() + contrast * draw_object(rng, kind_of[i] or normal, size)
    x += rng.normal(0.0, 0.02, size=x.shape)
    mask = np.broadcast_to((kind_of != "")[:, None, None], x.shape).copy()
    return x.astype(np.float32), mask, kind_of


def make_whole_sample(
    family: str,
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 100,
    size: int = 32,
    test_anomaly_share: float = 0.5,
) -> AnomalyDataset:
    """One-class images of ``family`` (``"dev"`` or ``"val"``): ``train_x`` ``(n_train, 1, size, size)`` of which a
    ``contamination`` share show another class; ``test_x`` ``(n_test, 1, size, size)`` with ``test_anomaly_share``
    of other classes. Masks ``(N, size, size)``: all True for an anomalous image, all False otherwise."""
    if family not in FAMILIES:
        raise ValueError(f"unknown whole-sample family {family!r}: use one of {sorted(FAMILIES)}")
    contamination = check_splits(contamination, n_train, n_test, test_anomaly_share)
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    normal, others = FAMILIES[family]
    train, test = (
        _make_split(rng, n, n_anomalous, size, normal, others)
        for rng, n, n_anomalous in split_streams(
            seed, _STREAMS[family], n_train, contamination, n_test, test_anomaly_share
        )
    )
    meta = {"family": family, "normal_class": normal, "defects": others, "axes": ("row", "col"), "units": "a.u."}
    name = f"{'' if family == 'dev' else 'val_'}whole_sample"
    return dataset_from_splits(name, 2, train, test, meta, contamination, seed)
