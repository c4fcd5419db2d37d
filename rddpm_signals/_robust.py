"""Robust location and scale: the training data are contaminated, so normalisations use the median and the
interquartile range, which a defective minority moves little."""

from __future__ import annotations

import numpy as np

__all__ = ["MAD_TO_SIGMA", "median_mad", "robust_center_scale"]

MAD_TO_SIGMA = 1.4826  # 1 / Phi^-1(3/4): the MAD of a Gaussian times this is its standard deviation


def robust_center_scale(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust standard deviation (IQR / 1.349) of each row of ``values`` ``(K, M)`` → two ``(K,)``.

    A row whose IQR is (relatively) zero, e.g. a mostly constant channel, falls back to its MAD, then its standard
    deviation, then 1.
    """
    values = np.asarray(values, dtype=np.float64)
    center = np.median(values, axis=1)
    q75, q25 = np.percentile(values, [75, 25], axis=1)
    scale = (q75 - q25) / 1.349
    mad = MAD_TO_SIGMA * np.median(np.abs(values - center[:, None]), axis=1)
    for fallback in (mad, values.std(axis=1), np.ones_like(scale)):
        scale = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(center)), scale, fallback)
    return center, scale


def median_mad(values: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 · MAD, at least 1e-12) of all of ``values``."""
    values = np.asarray(values, dtype=np.float64).ravel()
    center = float(np.median(values))
    return center, max(MAD_TO_SIGMA * float(np.median(np.abs(values - center))), 1e-12)
