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

__all__ = ["BaseDetector", "infer_dims", "smooth_maps", "quantile_scores"]


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


def infer_dims(X: object, name: str = "X") -> int:
    """The grid rank of samples ``X``: a 3-D array ``(N, C, L)`` → 1, a 4-D array ``(N, C, H, W)`` → 2.

    Raises a one-line ``ValueError`` naming the shape and the fix for any other rank. An ``X`` that is not
    array-like at all is reported as 1 here, so that :func:`check_samples` names the problem.
    """
    try:
        ndim = int(np.ndim(X))
    except (ValueError, TypeError):
        return 1
    if ndim in (3, 4):
        return ndim - 2
    shape = tuple(np.shape(X))
    hint = f"add a channel axis with {name}[:, None]" if ndim == 2 else "reshape it"
    raise ValueError(
        f"{name} must be 3-D (N, C, L) signals or 4-D (N, C, H, W) images, got shape {shape}: {hint}, "
        "or set dims=1 or dims=2"
    )


class BaseDetector(BaseEstimator):
    """Common input checks and ``anomaly_score`` for every detector.

    Subclasses set ``dims`` and ``score_quantile`` parameters and implement ``fit`` and ``anomaly_map``. ``dims``
    is 1, 2 or ``None`` (take it from the training array: ``(N, C, L)`` → 1, ``(N, C, H, W)`` → 2); ``fit`` sets the
    resolved value as the fitted attribute ``dims_`` together with the other fitted attributes.
    """

    dims: int | None
    score_quantile: float

    def _check_fit_X(self, X: object) -> tuple[np.ndarray, int]:
        """``X`` checked for ``fit`` (float32 ``(N, C, L)`` or ``(N, C, H, W)``) and its grid rank: ``dims``, or
        the rank of ``X`` when ``dims`` is ``None``. Sets nothing on ``self``."""
        if self.dims is not None and self.dims not in (1, 2):
            raise ValueError(f"dims must be 1, 2 or None (from X), got {self.dims!r}")
        dims = infer_dims(X) if self.dims is None else int(self.dims)
        return check_samples(X, dims), dims

    def _check_X(self, X: object) -> np.ndarray:
        """``X`` checked against the fitted detector: rank ``dims_ + 2`` and the fitted channel count."""
        check_fitted(self, "dims_")
        check_fitted(self, "n_channels_")
        return check_samples(X, self.dims_, n_channels=self.n_channels_)

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
