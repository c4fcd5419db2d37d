"""Which training samples calibrate the thresholds: a split of the model tensor by item, held out of the fit.

A detector's scores of its own training samples are in-sample: a network that has fitted them scores them low,
and a threshold taken from them flags most new normal records (on the ``dev_signals`` set the in-sample median
score was half the median of new normal records; docs/RESULTS.md §9). Thresholds are therefore taken from
items the detector never saw — split calibration, as in split-conformal prediction. The training items are
unlabelled and may hold defects, so the statistic over the held-out scores stays a robust one (median + k·MAD).

The split is by item (file, record), never by window, so overlapping windows of one record cannot sit on both
sides; the held-out items are spread evenly over the input order (files are often in time order, so a drift is
sampled rather than cut off). With a single item (one long record) the tail of its windows is held out, and the
fit's windows that overlap the held-out span are dropped.
"""

from __future__ import annotations

import numpy as np

__all__ = ["calibration_split"]

_MIN_SAMPLES = 5  # fewer training samples than this: no split, the thresholds are in-sample


def _spread(n: int, k: int) -> np.ndarray:
    """``k`` of ``range(n)`` spread evenly (sorted, distinct)."""
    return np.unique(np.round((np.arange(k) + 0.5) * n / k - 0.5).astype(np.int64))


def calibration_split(
    record: np.ndarray, offset: np.ndarray, window: int, share: float
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(fit, calibrate)`` into a model tensor whose samples come from items ``record`` ``(N,)`` and start
    at ``offset`` ``(N,)`` on their item's grid (first axis), each ``window`` long along it.

    ``share``: the share of items (or, for one item, of its windows) held out, in ``[0, 1)``; 0, or too few
    samples to split, gives ``(all, all)`` — in-sample calibration. Raises ValueError for a share out of range.
    """
    if not 0.0 <= share < 1.0:
        raise ValueError(f"calibration must lie in [0, 1) (the share of training items held out), got {share}")
    n = len(record)
    everything = np.arange(n)
    if share == 0.0 or n < _MIN_SAMPLES:
        return everything, everything
    items = np.unique(record)
    if len(items) >= 2:
        held = items[_spread(len(items), max(1, int(round(share * len(items)))))]
        if len(held) == len(items):
            return everything, everything
        cal = np.isin(record, held)
        return everything[~cal], everything[cal]
    # one item: hold out the tail of its windows; drop fit windows that reach into the held-out span
    order = np.argsort(offset, kind="stable")
    n_cal = max(1, int(round(share * n)))
    cal = order[n - n_cal :]
    start = offset[cal].min()
    fit = order[: n - n_cal]
    fit = fit[offset[fit] + window <= start]
    if len(fit) == 0:
        return everything, everything
    return np.sort(fit), np.sort(cal)
