"""Matrix-profile discords (Yeh et al. 2016; STUMPY, Law 2019): the time-series user's anomaly baseline, 1D only.

The map of a sample is, at each point, the largest z-normalised Euclidean distance from a length-``m`` subsequence
covering that point to its nearest neighbour — in the training set (``join="ab"``, an AB-join against the reference
built in ``fit``) or elsewhere in the same sample (``join="self"``, the classic discord of one record). Channels are
scored separately and averaged. Training samples are concatenated with a NaN between them, so no reference
subsequence straddles two samples (STUMPY gives subsequences holding a NaN an infinite distance).

Two engines compute the same distances: ``"numpy"`` (default) — the AB-join as one matrix product per sample and
channel, exact, and free of compilation; ``"stumpy"`` — ``stumpy.stump`` (an optional extra:
``pip install 'rddpm-signals[stumpy]'``), whose numba kernels take about a minute to compile in each new process on a
2-core machine, which dominates a benchmark cell of this size. Constant subsequences follow STUMPY's convention
(distance 0 between two constant ones, ``√m`` between a constant and a varying one).
"""

from __future__ import annotations

import os

import numpy as np

from .._validation import check_fitted
from ..base import BaseDetector, infer_dims
from ..detector import channel_center_scale, scale_channels
from ..subsequences import (
    SPREADS,
    default_m,
    nearest_distances,
    points_of,
    profile_maps,
    reference_of,
    spread_to_points,
)
from .rpca import load_arrays, save_arrays, saved_dims

__all__ = ["MatrixProfile", "nearest_distances", "spread_to_points"]

JOINS = ("ab", "self")
ENGINES = ("numpy", "stumpy")


def _stumpy():
    try:
        import stumpy
    except ImportError:  # pragma: no cover - depends on the environment
        raise ValueError("the matrix-profile baseline needs STUMPY: pip install 'rddpm-signals[stumpy]'") from None
    return stumpy


class MatrixProfile(BaseDetector):
    """Matrix-profile discord detector for ``(N, C, L)`` signals.

    Parameters
    ----------
    dims: 1 or ``None`` (the default: taken from the array ``fit`` gets, which must then be 3-D ``(N, C, L)``); the
        matrix profile is a time-series method.
    m: subsequence length (``None``: ``L // 16`` clipped to [4, 64], and to ``L`` for short samples).
    join: ``"ab"`` — distance to the nearest subsequence of the training reference; ``"self"`` — to the nearest
        non-trivial match inside the same sample (``fit`` then only learns the channel layout and scale).
    engine: ``"numpy"`` or ``"stumpy"`` (same distances; see the module notes).
    spread: how subsequence distances become point values: ``"max"`` (default; flags every point within ``m`` of a
        discord), ``"mean"`` or ``"min"`` over the subsequences covering the point (see :func:`spread_to_points`).
    normalize: z-normalise subsequences (STUMPY's default; blind to pure level shifts) or use raw distances on
        robustly scaled channels.
    max_reference: at most this many reference points per channel; more training samples are subsampled.
    score_quantile: ``anomaly_score`` is this quantile of each map.
    random_state: seed of the reference subsampling.

    Fitted attributes: ``dims_`` (always 1), ``center_`` / ``scale_`` ``(C,)``, ``reference_`` ``(C, R)`` float64
    (samples separated by NaN), ``m_``, ``n_channels_``, ``length_``.
    """

    supported_dims = (1,)

    def __init__(
        self,
        dims: int | None = None,
        m: int | None = None,
        join: str = "ab",
        normalize: bool = True,
        engine: str = "numpy",
        spread: str = "max",
        max_reference: int = 20000,
        score_quantile: float = 0.99,
        random_state: int | None = 0,
    ):
        self.dims = dims
        self.m = m
        self.join = join
        self.normalize = normalize
        self.engine = engine
        self.spread = spread
        self.max_reference = max_reference
        self.score_quantile = score_quantile
        self.random_state = random_state

    def _check_1d(self, X: object) -> None:
        """Refuse anything but 1D signals: ``dims`` other than 1 / ``None``, or (``dims=None``) a 4-D array."""
        if self.dims not in (None, 1):
            raise ValueError(f"the matrix profile is for 1D signals: use dims=1, got dims={self.dims!r}")
        if self.dims is None and infer_dims(X) != 1:
            shape = tuple(np.shape(X))
            raise ValueError(f"the matrix profile is for 1D signals (N, C, L): got images of shape {shape}")

    def _check_params(self, length: int) -> int:
        if self.join not in JOINS:
            raise ValueError(f"unknown join {self.join!r}: use one of {JOINS}")
        if self.spread not in SPREADS:
            raise ValueError(f"unknown spread {self.spread!r}: use one of {SPREADS}")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r}: use one of {ENGINES}")
        m = default_m(length) if self.m is None else int(self.m)
        if not 3 <= m <= length:
            raise ValueError(f"m must lie in [3, {length}] (the sample length), got {m}")
        if self.join == "self" and length < 2 * m:
            raise ValueError(f"a self-join needs samples of at least 2 m = {2 * m} points: lower m")
        if int(self.max_reference) < length:
            raise ValueError(f"max_reference must hold at least one sample ({length} points), got {self.max_reference}")
        return m

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return scale_channels(X.astype(np.float64), self.center_, self.scale_)

    def fit(self, X: object, y: object = None) -> MatrixProfile:
        """Keep (a random subset of) the training samples ``X`` ``(N, C, L)`` as the reference. Returns ``self``."""
        self._check_1d(X)
        X, dims = self._check_fit_X(X)
        n, channels, length = X.shape
        m = self._check_params(length)
        if self.engine == "stumpy":
            _stumpy()
        center, scale = channel_center_scale(X)
        self.center_, self.scale_ = center.astype(np.float64), scale.astype(np.float64)
        self.reference_ = reference_of(self._scaled(X), self.max_reference, self.random_state)
        self.m_, self.n_channels_, self.length_ = m, channels, length
        self.dims_ = dims
        return self

    def anomaly_map(self, X: object) -> np.ndarray:
        """Per point, the nearest-neighbour distance of the worst subsequence covering it: ``(N, L)`` float64."""
        X = self._check_X(X)
        if X.shape[2] < (2 * self.m_ if self.join == "self" else self.m_):
            raise ValueError(f"samples of {X.shape[2]} points are too short for m={self.m_}: pass longer samples")
        Z = self._scaled(X)
        if self.engine == "numpy" and self.join == "ab":
            return profile_maps(Z, self.reference_, self.m_, self.normalize, self.spread)
        maps = np.zeros((X.shape[0], X.shape[2]))
        for i in range(X.shape[0]):
            for c in range(X.shape[1]):
                reference = self.reference_[c] if self.join == "ab" else None
                if self.engine == "numpy":
                    profile = nearest_distances(Z[i, c], reference, self.m_, self.normalize)
                else:
                    profile = self._stumpy_profile(Z[i, c], reference)
                maps[i] += points_of(profile, self.m_, self.spread)
        return maps / X.shape[1]

    def _stumpy_profile(self, query: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
        stumpy = _stumpy()
        if reference is None:
            mp = stumpy.stump(query, self.m_, normalize=self.normalize)
        else:
            mp = stumpy.stump(query, self.m_, reference, ignore_trivial=False, normalize=self.normalize)
        return np.asarray(mp[:, 0], dtype=np.float64)

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters and the reference to ``path`` (``.npz``, atomically; nothing pickled)."""
        check_fitted(self, "dims_")
        arrays = {
            "center": self.center_,
            "scale": self.scale_,
            "reference": self.reference_,
            "shape": np.array([self.m_, self.n_channels_, self.length_], dtype=np.int64),
            "dims": np.array(self.dims_, dtype=np.int64),
        }
        save_arrays(path, self.get_params(), arrays, kind="MatrixProfile")

    @classmethod
    def load(cls, path: str | os.PathLike) -> MatrixProfile:
        """Load a detector written by :meth:`save`."""
        params, arrays = load_arrays(path, kind="MatrixProfile", keys=("center", "scale", "reference", "shape"))
        det = cls(**params)
        det.dims_ = saved_dims(path, params, arrays)
        det.center_, det.scale_, det.reference_ = arrays["center"], arrays["scale"], arrays["reference"]
        det.m_, det.n_channels_, det.length_ = (int(v) for v in arrays["shape"])
        return det
