"""Synthetic multi-station forging-press tonnage profiles (1D, 4 channels).

Each sample is one press stroke seen by the load cells of four stations of a transfer press. A station's load is a
forming peak with a smaller trailing shoulder (ejection / trimming); strokes vary in overall tonnage, per-station
amplitude, phase (timing) and speed (time-warp around the bottom dead centre), with sensor noise and a slow drift.

Defects, each on one station:

- ``missing_part``: no part in the die over a segment — the load drops to 15–50 % there (a segment drop);
- ``overload_spike``: a short spike of 30–70 % of the station's peak (double hit, foreign body);
- ``shape_distortion``: a local bump or dent of 15–35 % over 6–15 samples (worn die, misplaced part).

The mask marks the points where the defect changes the load by more than 5 % of that station's nominal peak
(five times the sensor noise).
"""

from __future__ import annotations

import numpy as np

from .base import AnomalyDataset, check_contamination, defect_plan, split_streams

__all__ = ["make_forging", "DEFECTS"]

DEFECTS = ("missing_part", "overload_spike", "shape_distortion")
STATIONS = ("station_1", "station_2", "station_3", "station_4")
_PEAK = np.array([0.42, 0.46, 0.50, 0.54])  # phase of the forming peak per station
_WIDTH = np.array([0.07, 0.08, 0.06, 0.09])
_AMP = np.array([100.0, 80.0, 120.0, 90.0])  # nominal peak tonnage per station
_NOISE = 0.01  # sensor noise, share of the station's peak
_MASK_LEVEL = 0.05  # a defect is marked where it moves the load by 5 % of the peak


def _strokes(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """``n`` normal strokes ``(n, 4, length)`` in tons, without noise."""
    tau = np.linspace(0.0, 1.0, length)
    speed = rng.uniform(0.93, 1.07, size=(n, 1, 1))
    phase = rng.normal(0.0, 0.012, size=(n, 1, 1))
    u = 0.5 + (tau[None, None, :] - 0.5 - phase) * speed  # warped phase of each point
    peak = _PEAK[None, :, None] + rng.normal(0.0, 0.004, size=(n, 4, 1))
    width = _WIDTH[None, :, None] * rng.uniform(0.95, 1.05, size=(n, 4, 1))
    amp = _AMP[None, :, None] * rng.normal(1.0, 0.05, size=(n, 1, 1)) * rng.normal(1.0, 0.03, size=(n, 4, 1))
    shoulder = rng.uniform(0.25, 0.35, size=(n, 4, 1))
    main = np.exp(-0.5 * ((u - peak) / width) ** 2)
    trail = shoulder * np.exp(-0.5 * ((u - peak - 2.0 * width) / (0.6 * width)) ** 2)
    drift = rng.normal(0.0, 0.01, size=(n, 4, 1)) * _AMP[None, :, None] * (u - 0.5)
    return amp * (main + trail) + drift


def _defect(rng: np.random.Generator, clean: np.ndarray, kind: str) -> np.ndarray:
    """The additive change ``(4, L)`` that ``kind`` makes to one clean stroke ``clean`` ``(4, L)``."""
    channels, length = clean.shape
    station = rng.integers(channels)
    grid = np.arange(length)
    loaded = np.nonzero(clean[station] > 0.3 * clean[station].max())[0]
    centre = rng.integers(loaded.min(), loaded.max() + 1)
    change = np.zeros_like(clean)
    if kind == "missing_part":
        half = rng.integers(8, 20)
        taper = 1.0 / (1.0 + np.exp(-(half - np.abs(grid - centre)) / 1.5))
        change[station] = -rng.uniform(0.5, 0.85) * taper * clean[station]
    elif kind == "overload_spike":
        sigma = rng.uniform(1.0, 2.5)
        change[station] = rng.uniform(0.3, 0.7) * _AMP[station] * np.exp(-0.5 * ((grid - centre) / sigma) ** 2)
    elif kind == "shape_distortion":
        sigma = rng.uniform(3.0, 7.0)
        sign = rng.choice([-1.0, 1.0])
        change[station] = sign * rng.uniform(0.15, 0.35) * _AMP[station] * np.exp(-0.5 * ((grid - centre) / sigma) ** 2)
    else:
        raise ValueError(f"unknown forging defect {kind!r}: use one of {DEFECTS}")
    return change


def _make_split(
    rng: np.random.Generator, n: int, n_defective: int, length: int, defects: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` strokes ``(n, 4, length)`` with ``n_defective`` defects, and their masks ``(n, length)``."""
    clean = _strokes(rng, n, length)
    x = clean.copy()
    mask = np.zeros((n, length), dtype=bool)
    for i, kind in defect_plan(rng, n, n_defective, defects):
        change = _defect(rng, clean[i], kind)
        x[i] += change
        mask[i] = (np.abs(change) > _MASK_LEVEL * _AMP[:, None]).any(axis=0)
    x += rng.normal(0.0, 1.0, size=x.shape) * (_NOISE * _AMP)[None, :, None]
    return x.astype(np.float32), mask


def make_forging(
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 256,
    n_test: int = 128,
    length: int = 256,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] = DEFECTS,
) -> AnomalyDataset:
    """Forging tonnage strokes: ``train_x`` ``(n_train, 4, length)``, a ``contamination`` share of them defective;
    ``test_x`` ``(n_test, 4, length)`` with ``test_anomaly_share`` defective. Tons; 256 samples per stroke."""
    contamination = check_contamination(contamination)
    if length < 64:
        raise ValueError(f"length must be >= 64 samples for a press stroke, got {length}")
    (train_x, train_mask), (test_x, test_mask) = (
        _make_split(rng, n, n_defective, length, defects)
        for rng, n, n_defective in split_streams(seed, 17, n_train, contamination, n_test, test_anomaly_share)
    )
    meta = {
        "channels": STATIONS,
        "sample_rate": float(length),  # one stroke per second
        "units": "t",
        "defects": tuple(defects),
        "contamination": contamination,
        "seed": seed,
    }
    return AnomalyDataset.from_masks("forging", 1, train_x, train_mask, test_x, test_mask, meta)
