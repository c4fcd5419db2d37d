"""Label-free thresholds for anomaly maps and scores.

The training data are contaminated and unlabelled, so a threshold has to come from the values themselves:
either robust statistics of the bulk (:func:`mad_threshold`) or a prior on the share of anomalous values
(:func:`contamination_threshold`). Values may be any array — maps ``(N, L)`` / ``(N, H, W)``, scores
``(N,)`` — and are pooled. :func:`binarize` turns maps into defect masks: a point is flagged when its value
is strictly above the threshold.
"""

from __future__ import annotations

import numpy as np

from ._robust import median_spread

__all__ = ["mad_threshold", "contamination_threshold", "binarize", "DEFAULT_K"]

#: the MAD multiple of the CLI's and AnomalyModel's default threshold: the grid value with the largest segment F1
#: averaged over every flagging set at once (dev_signals, forging, val_signals, rolling), then confirmed on new
#: seeds of all four (docs/RESULTS.md §9; the rule was written down before the confirmation fits)
DEFAULT_K = 1.5


def _finite(values: object, name: str) -> np.ndarray:
    """``values`` as a float64 array, or a one-line ValueError naming what is wrong."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} could not be read as an array ({err}): pass a numeric array") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}: pass a float array")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}: pass the magnitude (np.abs) instead")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): pass at least one value")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values: drop or impute them first")
    return arr


def _number(value: object, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def mad_threshold(values: object, k: float = 3.0) -> float:
    """``median + k · 1.4826 · MAD`` of all ``values`` (any shape), the robust analogue of mean + k·sigma.

    Up to half of the values may be anomalous without moving the threshold much. When more than half of the
    values are equal the MAD is 0 and the threshold is the median itself.
    """
    k = _number(k, "k")
    if not np.isfinite(k) or k < 0:
        raise ValueError(f"k must be a finite number >= 0 (robust standard deviations), got {k}")
    median, spread = median_spread(_finite(values, "values").ravel())
    return float(median) + k * float(spread)


def contamination_threshold(values: object, contamination: float) -> float:
    """The (1 − ``contamination``) quantile of all ``values`` (any shape): the inverse of their empirical CDF.

    With ``n`` values it is the ``floor(contamination · n) + 1``-th largest one, so :func:`binarize` flags at
    most ``floor(contamination · n)`` values (exactly that many when the values are distinct);
    ``contamination=0`` gives the maximum, which flags nothing.
    """
    contamination = _number(contamination, "contamination")
    if not 0.0 <= contamination < 1.0:
        raise ValueError(f"contamination must lie in [0, 1) (the share of anomalies), got {contamination}")
    arr = _finite(values, "values").ravel()
    n = arr.size
    # A tiny slack keeps products such as 0.3 * 10 = 2.9999999999999996 from dropping a whole value.
    flagged = min(int(np.floor(contamination * n + 1e-9)), n - 1)
    return float(np.partition(arr, n - 1 - flagged)[n - 1 - flagged])


def binarize(maps: object, threshold: float | object) -> np.ndarray:
    """Bool array of ``maps``' shape: True where the value is strictly above ``threshold``.

    ``threshold`` is a number, an array that broadcasts against ``maps``, or one threshold per sample: shape
    ``(N,)`` for ``maps`` of shape ``(N, ...)``.
    """
    arr = _finite(maps, "maps")
    thr = _finite(threshold, "threshold")
    if thr.ndim == 1 and arr.ndim > 1 and thr.shape[0] == arr.shape[0]:
        thr = thr.reshape((-1,) + (1,) * (arr.ndim - 1))
    try:
        flags = np.greater(arr, thr)
    except ValueError:
        flags = None
    if flags is None or flags.shape != arr.shape:
        raise ValueError(
            f"threshold of shape {thr.shape} does not fit maps of shape {arr.shape}: pass a number, one "
            "value per sample (N,), or an array that broadcasts against the maps"
        )
    return flags
