"""IsolationForest on raw samples (Liu, Ting & Zhou 2008; scikit-learn): the whole-sample baseline.

Each sample, its channels robustly scaled, is flattened to one feature vector; the forest isolates samples that are
unlike the rest. It gives **one score per sample and no localisation**: ``anomaly_map`` is that score broadcast over
the sample's grid, so pixel metrics on it only measure how well whole samples are ranked.
"""

from __future__ import annotations

import os

import numpy as np
from sklearn.ensemble import IsolationForest

from .._validation import check_fitted
from ..base import BaseDetector
from ..detector import channel_center_scale, scale_channels
from .rpca import load_arrays, save_arrays, saved_dims

__all__ = ["IsolationForestDetector"]


class IsolationForestDetector(BaseDetector):
    """IsolationForest anomaly detector for ``(N, C, L)`` (``dims=1``) or ``(N, C, H, W)`` (``dims=2``) samples.

    Parameters
    ----------
    dims: 1, 2 or ``None`` (the default: from the rank of the array ``fit`` gets; the resolved value is the fitted
        attribute ``dims_``).
    n_estimators, max_samples, max_features: passed to :class:`sklearn.ensemble.IsolationForest`.
    score_quantile: kept for the detector contract; the map is constant per sample, so every quantile is the score.
    random_state: seed of the forest.

    ``anomaly_score`` is minus scikit-learn's ``score_samples`` (higher = more anomalous). Saving stores the
    parameters and the scaled training matrix; loading refits the forest from them with the same seed, which
    rebuilds the same trees (nothing is pickled). Fitted attributes: ``dims_``, ``center_`` / ``scale_`` ``(C,)``,
    ``forest_``, ``train_rows_`` ``(N, C·grid)`` float32, ``grid_shape_``, ``n_channels_``.
    """

    supported_dims = (1, 2)

    def __init__(
        self,
        dims: int | None = None,
        n_estimators: int = 200,
        max_samples: int | float | str = "auto",
        max_features: float = 1.0,
        score_quantile: float = 0.99,
        random_state: int | None = 0,
    ):
        self.dims = dims
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.score_quantile = score_quantile
        self.random_state = random_state

    def _rows(self, X: np.ndarray) -> np.ndarray:
        """Samples ``X`` ``(N, C, …grid)`` robustly scaled per channel and flattened → ``(N, C·grid)`` float32."""
        return scale_channels(X, self.center_, self.scale_).reshape(len(X), -1).astype(np.float32)

    def _grow(self, rows: np.ndarray) -> None:
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            random_state=self.random_state,
        ).fit(rows)
        self.train_rows_ = rows

    def fit(self, X: object, y: object = None) -> IsolationForestDetector:
        """Grow the forest on the flattened training samples ``X``. Returns ``self``."""
        X, dims = self._check_fit_X(X)
        self.center_, self.scale_ = channel_center_scale(X)
        self.grid_shape_ = tuple(int(g) for g in X.shape[2:])
        self._grow(self._rows(X))
        self.n_channels_ = int(X.shape[1])
        self.dims_ = dims
        return self

    def _scores(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_X(X)
        if tuple(X.shape[2:]) != self.grid_shape_:
            raise ValueError(
                f"X has grid {tuple(X.shape[2:])} but this IsolationForest was fitted on {self.grid_shape_}: "
                "resample or crop X to the fitted grid"
            )
        return X, -self.forest_.score_samples(self._rows(X)).astype(np.float64)

    def anomaly_score(self, X: object) -> np.ndarray:
        """The forest's anomaly score per sample ``(N,)`` (higher = more anomalous)."""
        return self._scores(X)[1]

    def anomaly_map(self, X: object) -> np.ndarray:
        """The sample score broadcast over the grid: ``(N, L)`` or ``(N, H, W)`` (no localisation)."""
        X, scores = self._scores(X)
        return np.broadcast_to(scores.reshape((-1,) + (1,) * (X.ndim - 2)), (len(X), *X.shape[2:])).copy()

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters, scaling and the training matrix to ``path`` (``.npz``, atomically)."""
        check_fitted(self, "dims_")
        arrays = {
            "center": self.center_,
            "scale": self.scale_,
            "rows": self.train_rows_,
            "grid_shape": np.array(self.grid_shape_, dtype=np.int64),
            "dims": np.array(self.dims_, dtype=np.int64),
        }
        save_arrays(path, self.get_params(), arrays, kind="IsolationForest")

    @classmethod
    def load(cls, path: str | os.PathLike) -> IsolationForestDetector:
        """Load a detector written by :meth:`save` (the forest is regrown from the saved matrix and seed)."""
        params, arrays = load_arrays(path, kind="IsolationForest", keys=("center", "scale", "rows", "grid_shape"))
        det = cls(**params)
        det.dims_ = saved_dims(path, params, arrays)
        det.center_, det.scale_ = arrays["center"], arrays["scale"]
        det.grid_shape_ = tuple(int(g) for g in arrays["grid_shape"])
        det._grow(arrays["rows"])
        det.n_channels_ = int(det.center_.shape[0])
        return det
