"""The detector contract shared by RobustDiffusion, RPCA and SSD.

A detector follows scikit-learn's estimator rules (the constructor only stores its parameters; ``fit`` returns
``self``; fitted attributes end in ``_``) and adds::

    anomaly_map(X)    # (N, L) or (N, H, W): higher = more anomalous, on the grid of X
    anomaly_score(X)  # (N,): a high quantile of each sample's map
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.base import BaseEstimator

from ._validation import check_fitted, check_samples

__all__ = ["BaseDetector", "smooth_maps", "quantile_scores"]


def smooth_maps(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth each map of ``maps`` ``(N, …)`` along its grid axes (not across samples)."""
    if sigma <= 0:
        return maps
    return gaussian_filter(maps, sigma=(0,) + (float(sigma),) * (maps.ndim - 1), mode="nearest")


def quantile_scores(maps: np.ndarray, q: float) -> np.ndarray:
    """Per-sample ``q``-quantile of ``maps`` ``(N, …)`` → ``(N,)``; ``q = 1`` is the maximum."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"score_quantile must lie in [0, 1], got {q}")
    return np.quantile(maps.reshape(maps.shape[0], -1), q, axis=1)


class BaseDetector(BaseEstimator):
    """Common input checks and ``anomaly_score`` for every detector.

    Subclasses set ``dims`` and ``score_quantile`` parameters and implement ``fit`` and ``anomaly_map``.
    """

    dims: int
    score_quantile: float

    def _check_X(self, X: object, *, fitted: bool) -> np.ndarray:
        if self.dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {self.dims!r}")
        if fitted:
            check_fitted(self, "n_channels_")
            return check_samples(X, self.dims, n_channels=self.n_channels_)
        return check_samples(X, self.dims)

    def anomaly_map(self, X: object) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_maps(self, maps: np.ndarray) -> np.ndarray:
        """Per-sample scores ``(N,)`` of maps ``(N, …grid)`` that :meth:`anomaly_map` returned: the
        ``score_quantile`` quantile of each map."""
        return quantile_scores(np.asarray(maps), self.score_quantile)

    def anomaly_score(self, X: object) -> np.ndarray:
        """Per-sample score ``(N,)``: :meth:`score_maps` of the sample's anomaly map."""
        return self.score_maps(self.anomaly_map(X))

    def fit_anomaly_map(self, X: object) -> np.ndarray:
        """Fit on ``X`` and return the anomaly maps of the same samples (the contaminated-training use case)."""
        return self.fit(X).anomaly_map(X)
