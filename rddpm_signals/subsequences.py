"""Nearest-neighbour distances between subsequences of 1D signals: the matrix profile's engine (Yeh et al. 2016),
shared by the matrix-profile baseline (:class:`rddpm_signals.baselines.MatrixProfile`) and the diffusion
detector's ``map_structure="discord"``.

A reference is a set of training samples per channel, concatenated with a NaN between them so that no reference
subsequence straddles two samples. The AB-join distance of a query subsequence is the Euclidean distance to its
nearest reference subsequence (raw, or after z-normalising both, as STUMPY does by default); a point's value is
the largest, mean or smallest distance among the subsequences that cover it. Constant subsequences follow STUMPY's
convention (distance 0 between two constant ones, ``√m`` between a constant and a varying one).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SPREADS",
    "channel_profile_maps",
    "default_m",
    "nearest_distances",
    "points_of",
    "profile_maps",
    "reference_of",
    "spread_to_points",
]

_STD_FLOOR = 1e-7  # STUMPY's threshold below which a subsequence counts as constant
_CHUNK = 1 << 20  # distance-matrix entries per block (8 MB: faster than 32 MB, measured; the results do not change)


def default_m(length: int) -> int:
    """The subsequence length used when none is given: ``length // 16`` clipped to [4, 64] and to ``length``."""
    return min(int(np.clip(length // 16, 4, 64)), int(length))


def _subsequences(t: np.ndarray, m: int) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(t, m)


class _Subsequences:
    """The length-``m`` subsequences of a series ``(T,)`` as rows ``(T - m + 1, m)`` float64 (those holding a NaN
    dropped when ``drop_nan``), with what a distance needs of them — computed once, however many queries use them."""

    def __init__(self, series: np.ndarray, m: int, normalize: bool, drop_nan: bool):
        rows = _subsequences(np.asarray(series, dtype=np.float64), m)
        # each kept row's first point on the series: distinct neighbours and trivial matches are judged by it
        self.index = np.flatnonzero(np.isfinite(rows).all(axis=1)) if drop_nan else np.arange(len(rows))
        self.rows = rows[self.index] if drop_nan else rows
        if normalize:
            self.mean, self.sd = self.rows.mean(axis=1), self.rows.std(axis=1)
            self.flat = self.sd < _STD_FLOOR
        else:
            self.sq = (self.rows**2).sum(axis=1)


def nearest_distances(
    query: np.ndarray, reference: np.ndarray | None, m: int, normalize: bool, k: int = 1
) -> np.ndarray:
    """For each length-``m`` subsequence of ``query`` ``(L,)``, the distance to its nearest neighbour among the
    subsequences of ``reference`` ``(R,)`` (those holding a NaN are skipped) → ``(L - m + 1,)``. ``reference=None``
    is the self-join of ``query``: neighbours within ``m / 4`` of the subsequence itself (trivial matches) are
    excluded, and query subsequences holding a NaN get NaN.

    ``k`` > 1: the distance to the ``k``-th nearest *distinct* neighbour instead — after each neighbour is taken,
    the reference subsequences starting within ``m`` points of it are passed over — so a pattern that recurs fewer
    than ``k`` times elsewhere still stands out (a "twin" discord hides from the nearest neighbour alone)."""
    q = _Subsequences(query, m, normalize, drop_nan=False)
    r = _Subsequences(query if reference is None else reference, m, normalize, drop_nan=True)
    return _nearest(q, r, m, normalize, self_join=reference is None, k=k)


def _nearest(q: _Subsequences, r: _Subsequences, m: int, normalize: bool, self_join: bool, k: int = 1) -> np.ndarray:
    if int(k) < 1:
        raise ValueError(f"k must be an integer >= 1 (the k-th nearest distinct neighbour), got {k!r}")
    best = np.full(len(q.rows), np.inf)
    step = max(1, _CHUNK // max(len(r.rows), 1))
    zone = int(np.ceil(m / 4))
    for lo in range(0, len(q.rows), step):
        hi = min(len(q.rows), lo + step)
        dot = q.rows[lo:hi] @ r.rows.T
        if normalize:
            with np.errstate(divide="ignore", invalid="ignore"):
                rho = (dot - m * np.outer(q.mean[lo:hi], r.mean)) / (m * np.outer(q.sd[lo:hi], r.sd))
            d2 = 2.0 * m * (1.0 - np.clip(rho, -1.0, 1.0))
            flat_q, flat_r = q.flat[lo:hi, None], r.flat[None, :]
            d2 = np.where(flat_q & flat_r, 0.0, np.where(flat_q | flat_r, float(m), d2))
        else:  # |q|² + |r|² − 2 q·r, in place (the same operations in the same order: the same bits)
            d2 = np.add.outer(q.sq[lo:hi], r.sq)
            dot *= 2.0
            d2 -= dot
        if self_join:
            d2[np.abs(q.index[lo:hi, None] - r.index[None, :]) <= zone] = np.inf
        best[lo:hi] = d2.min(axis=1) if k == 1 else _kth_distinct(d2, r.index, int(k), m)
    return np.sqrt(np.maximum(best, 0.0))


def _kth_distinct(d2: np.ndarray, starts: np.ndarray, k: int, m: int) -> np.ndarray:
    """Per row of the squared distances ``d2`` ``(q, R)`` (changed in place) to reference subsequences starting at
    ``starts`` ``(R,)``: the ``k``-th smallest, each earlier pick's neighbours within ``m`` points passed over."""
    for _ in range(k - 1):
        pick = starts[np.argmin(np.where(np.isnan(d2), np.inf, d2), axis=1)]
        d2[np.abs(starts[None, :] - pick[:, None]) < m] = np.inf
    return d2.min(axis=1)  # a query row holding a NaN stays NaN


SPREADS = ("max", "mean", "min")


def spread_to_points(profile: np.ndarray, m: int, how: str = "max") -> np.ndarray:
    """Subsequence values ``(L - m + 1,)`` → point values ``(L,)``: each point gets the largest (``"max"``), mean or
    smallest value among the subsequences that cover it. ``"max"`` flags every point within ``m`` of a discord;
    ``"min"`` only the points that every covering subsequence finds discordant (sharper edges)."""
    n_sub = profile.shape[-1]
    if how == "mean":
        total, count = np.zeros(n_sub + m - 1), np.zeros(n_sub + m - 1)
        for k in range(m):
            total[k : k + n_sub] += profile
            count[k : k + n_sub] += 1.0
        return total / count
    reduce, fill = (np.maximum, -np.inf) if how == "max" else (np.minimum, np.inf)
    out = np.full(n_sub + m - 1, fill)
    for k in range(m):
        reduce(out[k : k + n_sub], profile, out=out[k : k + n_sub])
    return out


def reference_of(Z: np.ndarray, max_reference: int, random_state: int | None) -> np.ndarray:
    """Samples ``Z`` ``(N, C, L)`` → the reference ``(C, R)`` float64: the samples of each channel concatenated,
    a NaN between two samples; with more than ``max_reference`` points per channel, a random subset of samples
    (seeded by ``random_state``)."""
    n, channels, length = Z.shape
    keep = np.arange(n)
    per_sample = length + 1
    if n * per_sample > max_reference:
        rng = np.random.default_rng(random_state)
        keep = np.sort(rng.choice(n, size=max(1, int(max_reference) // per_sample), replace=False))
    kept = np.asarray(Z[keep], dtype=np.float64)
    gaps = np.full((len(keep), channels, 1), np.nan)
    return np.concatenate([kept, gaps], axis=2).transpose(1, 0, 2).reshape(channels, -1)[:, :-1]


def channel_profile_maps(
    Z: np.ndarray, reference: np.ndarray, m: int, normalize: bool, spread: str, k: int = 1
) -> np.ndarray:
    """The AB-join map of each sample and channel of ``Z`` ``(N, C, L)`` against ``reference`` ``(C, R)``: the
    nearest-neighbour distance (``k`` > 1: the ``k``-th nearest distinct one, :func:`nearest_distances`) of each
    subsequence, spread to points (:func:`spread_to_points`) → ``(N, C, L)`` float64."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.shape[2] < m:
        raise ValueError(f"samples of {Z.shape[2]} points are too short for subsequences of m={m}: pass longer samples")
    maps = np.zeros(Z.shape)
    for c in range(Z.shape[1]):
        ref = _Subsequences(reference[c], m, normalize, drop_nan=True)  # once per channel, not per sample
        for i in range(Z.shape[0]):
            query = _Subsequences(Z[i, c], m, normalize, drop_nan=False)
            maps[i, c] = points_of(_nearest(query, ref, m, normalize, self_join=False, k=k), m, spread)
    return maps


def profile_maps(Z: np.ndarray, reference: np.ndarray, m: int, normalize: bool, spread: str) -> np.ndarray:
    """:func:`channel_profile_maps` averaged over channels → ``(N, L)`` float64."""
    return channel_profile_maps(Z, reference, m, normalize, spread).mean(axis=1)


def points_of(profile: np.ndarray, m: int, spread: str) -> np.ndarray:
    """A profile ``(L - m + 1,)`` → point values ``(L,)``: non-finite distances (no finite neighbour) set to the
    largest finite one, then :func:`spread_to_points`."""
    profile = np.array(profile, dtype=np.float64)
    finite = np.isfinite(profile)
    profile[~finite] = profile[finite].max() if finite.any() else 0.0
    return spread_to_points(profile, m, spread)
