"""Robust PCA by principal component pursuit (Candès, Li, Ma & Wright 2011), solved by the inexact augmented
Lagrange multiplier method (Lin, Chen & Ma 2010), and the :class:`RPCA` anomaly detector built on it.

Principal component pursuit splits a matrix ``M`` ``(m, n)`` into a low-rank part and a sparse part::

    minimise ‖L‖_* + λ ‖S‖_1   subject to   L + S = M,      λ = 1 / √max(m, n) by default.

Inexact ALM alternates a soft-threshold step for ``S``, a singular-value-threshold step for ``L`` and a dual
ascent on ``Y``, with a penalty ``μ`` that grows geometrically (``μ ← min(ρ μ, μ̄)``). The singular-value threshold
needs only the singular values above ``1/μ``: when the rank is small a randomized SVD (Halko, Martinsson & Tropp
2011) of a few more components than the predicted rank replaces the full SVD, and is widened until its smallest
computed singular value falls below the threshold (so no component above it is missed).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._io import atomic_path
from .._validation import check_fitted
from ..base import BaseDetector
from ..detector import channel_center_scale, scale_channels

__all__ = [
    "RPCA",
    "PCPResult",
    "pcp",
    "randomized_svd",
    "robust_project",
    "save_arrays",
    "load_arrays",
    "saved_dims",
]

SVD_MODES = ("auto", "full", "randomized")
FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------- linear algebra
def randomized_svd(
    A: np.ndarray, k: int, rng: np.random.Generator, oversample: int = 10, power_iter: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` leading singular triplets of ``A`` ``(m, n)``: ``U`` ``(m, k)``, ``s`` ``(k,)``, ``Vt`` ``(k, n)``.

    Randomized range finder with ``oversample`` extra columns and ``power_iter`` QR-stabilised power iterations;
    the Gaussian test matrix comes from ``rng`` (deterministic given its seed).
    """
    m, n = A.shape
    width = min(k + oversample, m, n)
    Q, _ = np.linalg.qr(A @ rng.standard_normal((n, width)))
    for _ in range(power_iter):
        W, _ = np.linalg.qr(A.T @ Q)
        Q, _ = np.linalg.qr(A @ W)
    Ub, s, Vt = np.linalg.svd(Q.T @ A, full_matrices=False)
    return Q @ Ub[:, :k], s[:k], Vt[:k]


def _shrink(X: np.ndarray, tau: float) -> np.ndarray:
    """Entry-wise soft threshold ``sign(X) · max(|X| − τ, 0)``."""
    return np.sign(X) * np.maximum(np.abs(X) - tau, 0.0)


class _SVT:
    """Singular-value thresholding ``D_τ(X) = U · max(Σ − τ, 0) · Vᵀ`` with a predicted-rank randomized path."""

    def __init__(self, shape: tuple[int, int], mode: str, rng: np.random.Generator):
        self.small = min(shape)
        self.mode = mode
        self.rng = rng
        # Use the randomized path only while it needs clearly fewer components than a full SVD would give.
        self.max_partial = max(1, int(0.2 * self.small))
        self.predicted = min(10, self.small)

    def __call__(self, X: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the thresholded singular values ``σ − τ > 0`` and their ``U``, ``Vt``."""
        use_partial = self.mode == "randomized" or (self.mode == "auto" and self.small >= 100)
        U = s = Vt = None
        if use_partial:
            k = self.predicted
            while k <= self.max_partial or self.mode == "randomized":
                U, s, Vt = randomized_svd(X, k, self.rng)
                # Every value above τ is held once the smallest computed one falls below it (or nothing is left).
                if s[-1] <= tau or k >= self.small:
                    break
                k = min(2 * k, self.small)
            else:
                U = None
        if U is None:
            U, s, Vt = np.linalg.svd(X, full_matrices=False)
        keep = int(np.count_nonzero(s > tau))
        # Lin et al.'s rank prediction: one more than the kept rank, or a jump of 5 % of the size while it grows.
        grow = keep >= self.predicted
        self.predicted = min(self.small, keep + (max(1, round(0.05 * self.small)) if grow else 1))
        return s[:keep] - tau, U[:, :keep], Vt[:keep]


@dataclass
class PCPResult:
    """Output of :func:`pcp`: ``L`` and ``S`` ``(m, n)``, the row space ``Vt`` ``(rank, n)`` and singular values
    ``(rank,)`` of ``L``, iterations, the final relative residual ``‖M − L − S‖_F / ‖M‖_F``, convergence."""

    L: np.ndarray
    S: np.ndarray
    Vt: np.ndarray
    singular_values: np.ndarray
    n_iter: int
    residual: float
    converged: bool
    lam: float

    @property
    def rank(self) -> int:
        return int(self.singular_values.size)


def pcp(
    M: np.ndarray,
    lam: float | None = None,
    *,
    mu: float | None = None,
    rho: float = 1.5,
    tol: float = 1e-7,
    max_iter: int = 500,
    svd: str = "auto",
    random_state: int | None = 0,
) -> PCPResult:
    """Principal component pursuit of ``M`` ``(m, n)`` by inexact ALM.

    ``lam``: sparsity weight (``None``: ``1/√max(m, n)``). ``mu``: initial penalty (``None``: ``1.25/‖M‖₂``);
    it grows by ``rho`` per iteration up to ``10⁷`` times its start. Stops when ``‖M − L − S‖_F ≤ tol ‖M‖_F`` or
    after ``max_iter`` iterations. ``svd``: ``"full"`` (LAPACK every iteration), ``"randomized"`` (always the
    partial path) or ``"auto"`` (partial while the predicted rank is under 20 % of ``min(m, n)``, for
    ``min(m, n) ≥ 100``). ``random_state`` seeds the randomized SVD's test matrices.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.ndim != 2 or M.size == 0 or not np.all(np.isfinite(M)):
        raise ValueError(f"pcp needs a finite, non-empty 2-D matrix, got shape {M.shape}: pass (rows, features)")
    if svd not in SVD_MODES:
        raise ValueError(f"unknown svd {svd!r}: use one of {SVD_MODES}")
    if rho <= 1.0 or tol <= 0.0 or max_iter < 1:
        raise ValueError(f"pcp needs rho > 1, tol > 0 and max_iter >= 1, got {rho}, {tol}, {max_iter}")
    m, n = M.shape
    lam = 1.0 / np.sqrt(max(m, n)) if lam is None else float(lam)
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam}")
    rng = np.random.default_rng(random_state)
    norm_fro = float(np.linalg.norm(M))
    if norm_fro == 0.0:
        zero = np.zeros_like(M)
        return PCPResult(zero, zero.copy(), np.zeros((0, n)), np.zeros(0), 0, 0.0, True, lam)
    if min(m, n) >= 100:
        norm_two = float(randomized_svd(M, 1, rng, power_iter=4)[1][0])
    else:
        norm_two = float(np.linalg.norm(M, 2))
    # Dual start Y = M / J(M) (Lin et al.): the largest Y on the dual ball along M.
    Y = M / max(norm_two, np.abs(M).max() / lam)
    mu = 1.25 / norm_two if mu is None else float(mu)
    mu_max = mu * 1e7
    svt = _SVT((m, n), svd, rng)
    L = np.zeros_like(M)
    s = np.zeros(0)
    Vt = np.zeros((0, n))
    residual, converged, it = 1.0, False, 0
    for _ in range(max_iter):
        it += 1
        S = _shrink(M - L + Y / mu, lam / mu)
        s, U, Vt = svt(M - S + Y / mu, 1.0 / mu)
        L = (U * s) @ Vt
        Z = M - L - S
        Y += mu * Z
        mu = min(mu * rho, mu_max)
        residual = float(np.linalg.norm(Z)) / norm_fro
        if residual < tol:
            converged = True
            break
    return PCPResult(L, S, Vt, s, it, residual, converged, lam)


def robust_project(
    X: np.ndarray, Vt: np.ndarray, *, max_iter: int = 1000, tol: float = 1e-8, rho: float | None = None
) -> tuple[np.ndarray, int]:
    """The sparse residual of each row of ``X`` ``(N, n)`` off the subspace spanned by the orthonormal rows of
    ``Vt`` ``(k, n)``: ``S = X − C Vt`` with ``C = argmin ‖X − C Vt‖_1`` row by row (least absolute deviations),
    solved for all rows at once by ADMM. Returns ``S`` ``(N, n)`` and the iterations used.

    The ℓ1 fit is PCP's own model for one new row (low-rank part inside the learnt subspace, sparse remainder), so
    on exact data it returns the corruption exactly, and a row's result does not depend on the other rows.
    ``rho``: ADMM penalty (``None``: per row, the inverse of the row's mean absolute least-squares residual).
    """
    X = np.asarray(X, dtype=np.float64)
    if Vt.shape[0] == 0:
        return X.copy(), 0
    V = Vt.T
    if rho is None:
        ls_residual = np.abs(X - (X @ V) @ Vt).mean(axis=1, keepdims=True)
        rho = 1.0 / np.maximum(ls_residual, 1e-300)
    thresh = 1.0 / np.broadcast_to(np.asarray(rho, dtype=np.float64), (X.shape[0], 1))
    S = np.zeros_like(X)
    U = np.zeros_like(X)
    limit = tol * np.linalg.norm(X, axis=1)
    # Each row stops on its own test, so its result does not depend on the rows scored with it.
    active = np.arange(X.shape[0])
    it = 0
    while active.size and it < max_iter:
        it += 1
        x, s_old, u = X[active], S[active], U[active]
        fit = ((x - s_old + u) @ V) @ Vt
        s_new = _shrink_rows(x - fit + u, thresh[active])
        primal = x - fit - s_new
        S[active], U[active] = s_new, u + primal
        done = (np.linalg.norm(primal, axis=1) <= limit[active]) & (
            np.linalg.norm(s_new - s_old, axis=1) <= limit[active]
        )
        active = active[~done]
    return S, it


def _shrink_rows(X: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Soft threshold with a per-row level ``tau`` ``(N, 1)``."""
    return np.sign(X) * np.maximum(np.abs(X) - tau, 0.0)


# ----------------------------------------------------------------------------------------------- persistence
def _json_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"parameter value {value!r} cannot be saved: use plain numbers, strings or None")


def save_arrays(path: str | os.PathLike, params: dict, arrays: dict[str, np.ndarray], kind: str) -> None:
    """Write ``arrays`` and a detector's parameters (as JSON) to ``path`` as ``.npz`` via a temporary file and a
    rename (no half-written file is ever left). Nothing is pickled."""
    params_json = json.dumps(params, default=_json_value)
    meta = {"_kind": np.array(kind), "_format_version": np.array(FORMAT_VERSION), "_params": np.array(params_json)}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a name
        np.savez(handle, **meta, **arrays)


def load_arrays(path: str | os.PathLike, kind: str, keys: tuple[str, ...]) -> tuple[dict, dict[str, np.ndarray]]:
    """Read what :func:`save_arrays` wrote (``np.load(allow_pickle=False)``): the parameters and the arrays
    ``keys``, plus ``"dims"`` (the fitted ``dims_``) where the file has it. Raises ``ValueError`` for a missing
    file or a file of another kind or format."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no saved detector at {str(path)!r}: check the path")
    try:
        with np.load(path, allow_pickle=False) as data:
            found_kind, version = str(data["_kind"]), int(data["_format_version"])
            params = json.loads(str(data["_params"]))
            arrays = {key: data[key] for key in (*keys, *(("dims",) if "dims" in data.files else ()))}
    except Exception as err:  # noqa: BLE001 - any read failure means the same thing to the user
        raise ValueError(f"{str(path)!r} is not a saved {kind} detector ({type(err).__name__}): re-save it") from None
    if found_kind != kind or version != FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} holds a {found_kind} detector of format {version}, not {kind} of format "
            f"{FORMAT_VERSION}: load it with the matching class or re-save it"
        )
    return params, arrays


def saved_dims(path: str | os.PathLike, params: dict, arrays: dict[str, np.ndarray]) -> int:
    """The fitted ``dims_`` that :func:`load_arrays` read; files written before ``dims_`` existed have it as the
    ``dims`` parameter (then always 1 or 2)."""
    dims = int(arrays["dims"]) if "dims" in arrays else params.get("dims")
    if dims not in (1, 2):
        raise ValueError(f"{str(path)!r} does not say whether it holds a 1D or 2D model: re-save it")
    return int(dims)


# ----------------------------------------------------------------------------------------------- the detector
class RPCA(BaseDetector):
    """Robust-PCA detector: the training samples, flattened, are the rows of a matrix that principal component
    pursuit splits into a low-rank "normal" part and a sparse "defect" part; the map of a sample is ``|S|``.

    Parameters
    ----------
    dims: 1 (``X`` ``(N, C, L)``), 2 (``X`` ``(N, C, H, W)``) or ``None`` (the default: from the rank of the array
        ``fit`` gets; the resolved value is the fitted attribute ``dims_``).
    lam: PCP sparsity weight ``λ`` (``None``: ``1/√max(N, C·grid)``).
    mu, rho, tol, max_iter: inexact-ALM penalty start (``None``: ``1.25/‖M‖₂``), growth factor, stopping level
        ``‖M − L − S‖_F / ‖M‖_F`` and iteration cap.
    svd: ``"auto" | "full" | "randomized"`` — how the singular-value threshold is computed (see :func:`pcp`).
    project_tol, project_max_iter: stopping level and cap of the ℓ1 projection used for new data.
    score_quantile: ``anomaly_score`` is this quantile of each map.
    random_state: seed of the randomized SVD (same seed → same fit and maps).

    Preprocessing: each channel is centred on its median and divided by its robust spread (IQR / 1.349) over all
    training samples and grid points, so that one ``λ`` weighs channels with different units alike, and the outliers
    of contaminated training data do not set the scale. There is no per-feature centring: the mean profile is one
    more direction of the low-rank part, which PCP estimates robustly (a per-feature mean would be pulled by the
    defects, a per-feature median is not in the row space model).

    New data (``anomaly_map`` after ``fit``) are **projected** onto the learnt row space with an ℓ1 fit
    (:func:`robust_project`), not decomposed jointly with the training rows: the map of a sample then depends
    only on that sample and the fitted model (not on which other samples are scored with it), scoring costs
    ``O(N · features · rank)`` per iteration instead of a new PCP on ``(N_train + N) × features``, and test defects
    cannot bend the normal subspace. The ℓ1 fit is PCP's own model for one row, so a row generated like the
    training rows gets its corruption back exactly. ``fit_anomaly_map(X)`` projects the training rows the same way.

    Fitted attributes: ``dims_``, ``center_`` / ``scale_`` ``(C,)``, ``components_`` ``(rank_, C·grid)``
    (orthonormal row space of ``L``), ``singular_values_``, ``rank_``, ``lam_``, ``n_iter_``, ``converged_``,
    ``residual_``, ``grid_shape_``, ``n_channels_``.
    """

    def __init__(
        self,
        dims: int | None = None,
        lam: float | None = None,
        mu: float | None = None,
        rho: float = 1.5,
        tol: float = 1e-7,
        max_iter: int = 500,
        svd: str = "auto",
        project_tol: float = 1e-5,
        project_max_iter: int = 300,
        score_quantile: float = 0.99,
        random_state: int | None = 0,
    ):
        self.dims = dims
        self.lam = lam
        self.mu = mu
        self.rho = rho
        self.tol = tol
        self.max_iter = max_iter
        self.svd = svd
        self.project_tol = project_tol
        self.project_max_iter = project_max_iter
        self.score_quantile = score_quantile
        self.random_state = random_state

    def _rows(self, X: np.ndarray) -> np.ndarray:
        """Samples ``X`` ``(N, C, …grid)`` robustly scaled per channel and flattened → ``(N, C·grid)`` float64."""
        return scale_channels(X.astype(np.float64), self.center_, self.scale_).reshape(X.shape[0], -1)

    def _check_grid(self, X: np.ndarray) -> None:
        if tuple(X.shape[2:]) != self.grid_shape_:
            raise ValueError(
                f"X has grid {tuple(X.shape[2:])} but this RPCA was fitted on {self.grid_shape_}: resample or crop "
                "X to the fitted grid (RPCA compares samples point by point)"
            )

    def fit(self, X: object, y: object = None) -> RPCA:
        """Decompose the training samples ``X`` ``(N, C, …)`` and keep the row space of their low-rank part.
        Returns ``self``."""
        if self.svd not in SVD_MODES:
            raise ValueError(f"unknown svd {self.svd!r}: use one of {SVD_MODES}")
        X, dims = self._check_fit_X(X)
        center, scale = channel_center_scale(X)
        self.center_, self.scale_ = center.astype(np.float64), scale.astype(np.float64)
        self.n_channels_ = int(X.shape[1])
        self.grid_shape_ = tuple(int(g) for g in X.shape[2:])
        result = pcp(
            self._rows(X),
            self.lam,
            mu=self.mu,
            rho=self.rho,
            tol=self.tol,
            max_iter=self.max_iter,
            svd=self.svd,
            random_state=self.random_state,
        )
        if not result.converged:
            warnings.warn(
                f"RPCA did not converge in {result.n_iter} iterations (relative residual {result.residual:.2e} > "
                f"tol={self.tol:g}): raise max_iter or tol",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.components_ = result.Vt
        self.singular_values_ = result.singular_values
        self.rank_ = result.rank
        self.lam_ = result.lam
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.residual_ = result.residual
        self.dims_ = dims
        return self

    def _sparse_rows(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        X = self._check_X(X)
        self._check_grid(X)
        S, _ = robust_project(self._rows(X), self.components_, max_iter=self.project_max_iter, tol=self.project_tol)
        return X, S

    def decompose(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        """The low-rank ("normal") and sparse parts of ``X``, both shaped like ``X`` (float64, units of ``X``)."""
        X, S = self._sparse_rows(X)
        shape = (1, -1) + (1,) * (X.ndim - 2)
        sparse = S.reshape(X.shape) * self.scale_.reshape(shape)
        return X.astype(np.float64) - sparse, sparse

    def anomaly_map(self, X: object) -> np.ndarray:
        """``|S|`` in robust-scaled units, averaged over channels: ``(N, L)`` or ``(N, H, W)`` float64."""
        X, S = self._sparse_rows(X)
        return np.abs(S.reshape(X.shape)).mean(axis=1)

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters and the fitted model to ``path`` (``.npz``, atomically)."""
        check_fitted(self, "dims_")
        save_arrays(
            path,
            self.get_params(),
            {
                "center": self.center_,
                "scale": self.scale_,
                "components": self.components_,
                "singular_values": self.singular_values_,
                "grid_shape": np.array(self.grid_shape_, dtype=np.int64),
                "fit_info": np.array([self.lam_, self.n_iter_, float(self.converged_), self.residual_]),
                "dims": np.array(self.dims_, dtype=np.int64),
            },
            kind="RPCA",
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> RPCA:
        """Load a detector written by :meth:`save` (``np.load(allow_pickle=False)``)."""
        keys = ("center", "scale", "components", "singular_values", "grid_shape", "fit_info")
        params, arrays = load_arrays(path, kind="RPCA", keys=keys)
        det = cls(**params)
        det.dims_ = saved_dims(path, params, arrays)
        det.center_, det.scale_ = arrays["center"], arrays["scale"]
        det.components_, det.singular_values_ = arrays["components"], arrays["singular_values"]
        det.grid_shape_ = tuple(int(g) for g in arrays["grid_shape"])
        det.n_channels_ = int(det.center_.shape[0])
        det.rank_ = int(det.singular_values_.size)
        lam, n_iter, converged, residual = arrays["fit_info"]
        det.lam_, det.n_iter_, det.converged_, det.residual_ = float(lam), int(n_iter), bool(converged), float(residual)
        return det
