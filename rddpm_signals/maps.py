"""Map post-processing beyond ``|x - x̂|``: local-structure errors, multi-t0 combination and whole-sample scores.

- A **local-structure error** compares the local texture energy (log of the local standard deviation) of ``x``
  with that of its reconstruction (:func:`structure_error`) or with the bulk of the training samples at the same
  position (:class:`EnergyReference`). A patch whose texture is missing is smooth, so a denoiser reconstructs it
  well and ``|x - x̂|`` stays low there; its local energy, though, is far below the normal texture's.
- **Multi-t0 combination** (:func:`combine_maps`): maps of several partial-diffusion depths, each divided by a
  reference scale (its median over the training maps), averaged.
- **Whole-sample scores** (:func:`sample_features`, :class:`RobustSampleScore`): simple per-sample features of a
  map (log of its mean, 90th and 99th percentile and maximum) and their robust Mahalanobis distance from the
  training samples' features, which sees a sample unlike the bulk as a whole, not only its largest point.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter
from sklearn.covariance import MinCovDet

from .scoring import PositionNormalizer

__all__ = [
    "local_energy",
    "structure_error",
    "EnergyReference",
    "combine_maps",
    "sample_features",
    "RobustSampleScore",
    "MAP_STRUCTURES",
    "SCORE_MODES",
]

MAP_STRUCTURES = ("none", "recon", "bulk", "discord", "auto")
SCORE_MODES = ("quantile", "mean", "features")


def _smooth_grid(x: np.ndarray, sigma: float, n_lead: int) -> np.ndarray:
    return gaussian_filter(x, sigma=(0,) * n_lead + (float(sigma),) * (x.ndim - n_lead), mode="nearest")


def local_energy(x: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Log local standard deviation of ``x`` ``(N, C, …grid)`` in a Gaussian window of ``sigma`` points, averaged
    over channels → ``(N, …grid)``."""
    if sigma <= 0:
        raise ValueError(f"the local-structure window sigma must be > 0, got {sigma}")
    x = np.asarray(x, dtype=np.float64)
    detail = x - _smooth_grid(x, sigma, 2)
    var = _smooth_grid(detail**2, sigma, 2)
    floor = 1e-6 * max(float(np.median(var)), 1e-12)
    return 0.5 * np.log(var + floor).mean(axis=1)


def structure_error(x: np.ndarray, x_hat: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """``|E(x) - E(x̂)|`` with ``E`` = :func:`local_energy`: ``(N, C, …grid)`` twice → ``(N, …grid)``."""
    if np.shape(x) != np.shape(x_hat):
        raise ValueError(f"x and x_hat differ in shape: {np.shape(x)} vs {np.shape(x_hat)}")
    return np.abs(local_energy(x, sigma) - local_energy(x_hat, sigma))


def _energy_normalizer() -> PositionNormalizer:
    return PositionNormalizer("map_structure='bulk'", "map_structure='none'")


class EnergyReference:
    """Robust per-position reference (median / MAD over training samples) of :func:`local_energy`; ``error(x)``
    is the absolute robust z-score of a sample's local energy ``(N, …grid)``: texture missing (or added) where the
    training samples have their usual texture."""

    def __init__(self, sigma: float = 2.0):
        self.sigma = sigma

    def fit(self, x: np.ndarray) -> EnergyReference:
        self.normalizer_ = _energy_normalizer().fit(local_energy(x, self.sigma))
        return self

    @classmethod
    def fitted(cls, sigma: float, center: np.ndarray, scale: np.ndarray) -> EnergyReference:
        """A reference rebuilt from the ``center_`` / ``scale_`` (``(…grid)`` each) of an earlier :meth:`fit`."""
        ref = cls(sigma)
        ref.normalizer_ = _energy_normalizer()
        ref.normalizer_.center_, ref.normalizer_.scale_ = center, scale
        return ref

    def error(self, x: np.ndarray) -> np.ndarray:
        return np.abs(self.normalizer_.transform(local_energy(x, self.sigma)))


def combine_maps(maps: Sequence[np.ndarray], scales: Sequence[float] | None = None) -> np.ndarray:
    """Mean of ``maps`` (each ``(N, …grid)``), each divided by its ``scale`` first (``None``: the plain mean).
    A single map with no scales comes back unchanged."""
    if not maps:
        raise ValueError("combine_maps needs at least one map")
    if scales is None:
        return maps[0] if len(maps) == 1 else np.mean(np.stack(maps), axis=0)
    if len(scales) != len(maps):
        raise ValueError(f"{len(maps)} maps but {len(scales)} scales: give one scale per map")
    return np.mean(np.stack([m / max(float(s), 1e-12) for m, s in zip(maps, scales, strict=True)]), axis=0)


def sample_features(maps: np.ndarray) -> np.ndarray:
    """``(N, …grid)`` maps → ``(N, 4)``: log of each map's mean, 90th / 99th percentile and maximum."""
    flat = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    feats = np.stack([flat.mean(axis=1), *np.quantile(flat, [0.9, 0.99], axis=1), flat.max(axis=1)], axis=1)
    # Maps may be z-scores (negative); shift so the log sees positive values, on a scale shared by all samples.
    shift = max(0.0, -float(flat.min())) + 1e-6 * max(float(np.abs(flat).max()), 1e-12)
    return np.log(np.maximum(feats, 0.0) + shift)


class RobustSampleScore:
    """Robust Mahalanobis distance of per-sample features from the bulk of the training samples (minimum
    covariance determinant): ``fit(train_features (N, F))``, ``score(features (M, F)) → (M,)``."""

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def fit(self, features: np.ndarray) -> RobustSampleScore:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or len(features) < features.shape[1] + 2:
            raise ValueError(f"need at least F + 2 training samples of F features, got shape {features.shape}")
        mcd = MinCovDet(random_state=self.random_state, support_fraction=0.75).fit(features)
        self.location_ = mcd.location_
        # A tiny ridge: features of a fully smooth map can be collinear.
        cov = mcd.covariance_ + 1e-6 * np.trace(mcd.covariance_) / len(mcd.covariance_) * np.eye(len(mcd.covariance_))
        self.precision_ = np.linalg.inv(cov)
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        d = np.asarray(features, dtype=np.float64) - self.location_
        return np.sqrt(np.einsum("nf,fg,ng->n", d, self.precision_, d))
