"""Robust location and scale: the training data are contaminated, so normalisations use the median and the
interquartile range, which a defective minority moves little."""

from __future__ import annotations

import numpy as np

__all__ = ["MAD_TO_SIGMA", "median_mad", "median_spread", "robust_center_scale"]

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its standard deviation


def median_spread(values: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust standard deviation (1.4826 · MAD, not floored) of ``values`` along ``axis`` (``None``: all
    of them); both have the reduced shape, as ``np.median`` gives it. Keeps ``values``' dtype."""
    values = np.asarray(values)
    center = np.median(values, axis=axis)
    deviation = np.abs(values - (center if axis is None else np.expand_dims(center, axis)))
    return center, MAD_TO_SIGMA * np.median(deviation, axis=axis)


def robust_center_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust standard deviation (IQR / 1.349) of each row of ``values`` ``(K, M)`` → two ``(K,)``.

    A row whose IQR is (relatively) zero, e.g. a mostly constant channel, falls back to its MAD, then its standard
    deviation, then 1.
    """
    values = np.asarray(values, dtype=np.float64)
    center, mad = median_spread(values, axis=1)
    q75, q25 = np.percentile(values, [75, 25], axis=1)
    scale = (q75 - q25) / 1.349
    for fallback in (mad, values.std(axis=1), np.ones_like(scale)):
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(center)), scale, fallback)
    return center, scale


def median_mad(values: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 · MAD, at least 1e-12) of all of ``values``."""
    center, spread = median_spread(np.asarray(values, dtype=np.float64).ravel())
    return float(center), max(float(spread), 1e-12)
