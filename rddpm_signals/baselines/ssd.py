"""Smooth-sparse decomposition (SSD; Yan, Paynabar & Shi, Technometrics 2017) and the :class:`SSD` detector.

Each signal or image ``y`` is split into a smooth background, a sparse anomaly and noise::

    y = B θ + a + e,      minimise  ½‖y − Bθ − a‖² + ½ λ θᵀ P θ + γ ‖a‖₁

with a cubic B-spline basis ``B`` on equally spaced knots and a P-spline (second-difference) roughness penalty
``P`` (Eilers & Marx 1996). In 2D the basis is the tensor product ``B = B_y ⊗ B_x`` and the penalty the
anisotropic-sum one ``P = P_y ⊗ G_x + G_y ⊗ P_x`` (``G = BᵀB``) — the usual tensor-product P-spline penalty.

**Separable solve.** For each axis, the generalised eigenproblem ``P v = s G v`` gives ``U`` with ``Uᵀ G U = I`` and
``Uᵀ P U = diag(s)``. With ``M = B U`` (orthonormal columns), the penalised smoother is diagonal in that basis:
``H y = M diag(1 / (1 + λ s)) Mᵀ y`` in 1D, and in 2D ``H Y = M_y [(M_yᵀ Y M_x) / (1 + λ (s_y ⊕ s_x))] M_xᵀ``.
So a 2D solve costs two small matrix products per side; the Kronecker matrix (``HW × k_y k_x``) is never formed.

**Sparse part.** Minimising over ``θ`` leaves ``½ (y − a)ᵀ (I − H)(y − a) + γ‖a‖₁``, whose gradient has Lipschitz
constant 1, so FISTA with unit step reads ``a ← S_γ(y − H(y − z))`` (``S_γ`` the soft threshold) — the paper's
block-coordinate update with Nesterov momentum; gradient-based adaptive restart (O'Donoghue & Candès 2015) keeps it
monotone in practice.

**Tuning.** ``λ`` is chosen by generalised cross-validation of the decomposition itself along a ``λ`` grid, on the
points the sparse part leaves alone (``tr H = Σ 1 / (1 + λs)`` is free in the eigenbasis); ``γ`` follows an
automatic rule (see :class:`SSD`).
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import BSpline
from scipy.linalg import eigh

from .._robust import median_spread
from .._validation import check_fitted
from ..base import BaseDetector
from .rpca import load_arrays, save_arrays, saved_dims

__all__ = ["SSD", "AxisBasis", "axis_basis", "Smoother", "ssd_decompose", "LAMBDA_GRID"]

LAMBDA_GRID = np.logspace(-4.0, 6.0, 21)  # GCV search grid (half decades)
_GCV_SAMPLES = 16  # training signals per channel that choose λ
GAMMA_RULES = ("universal", "otsu")
MAP_KINDS = ("residual", "sparse")
_CHUNK_ELEMENTS = 1 << 22  # grid points per solver batch (bounds the memory of one batch)


# ----------------------------------------------------------------------------------------------- bases
@dataclass(frozen=True)
class AxisBasis:
    """B-spline basis of one grid axis of ``n`` points: ``B`` ``(n, k)``, ``G = BᵀB`` and the difference penalty
    ``P`` ``(k, k)``, and the eigenbasis ``M = B U`` ``(n, k)`` with ``MᵀM = I`` and penalty eigenvalues ``s``
    ``(k,)`` (``Uᵀ P U = diag(s)``)."""

    B: np.ndarray
    G: np.ndarray
    P: np.ndarray
    M: np.ndarray
    s: np.ndarray


@functools.lru_cache(maxsize=32)
def axis_basis(n: int, knot_spacing: float = 16.0, degree: int = 3, penalty_order: int = 2) -> AxisBasis:
    """The :class:`AxisBasis` for an axis of ``n`` grid points with about ``knot_spacing`` points per B-spline
    segment (at least one segment; never more basis functions than points)."""
    if n < 1:
        raise ValueError(f"an axis needs at least one grid point, got {n}")
    if n == 1:
        one = np.ones((1, 1))
        return AxisBasis(one, one, np.zeros((1, 1)), one, np.zeros(1))
    degree = min(int(degree), n - 1)
    segments = max(1, int(round((n - 1) / float(knot_spacing))))
    segments = min(segments, n - degree)  # k = segments + degree basis functions must not exceed n points
    inner = np.linspace(0.0, n - 1.0, segments + 1)
    h = inner[1] - inner[0]
    knots = np.r_[inner[0] - h * np.arange(degree, 0, -1), inner, inner[-1] + h * np.arange(1, degree + 1)]
    B = BSpline.design_matrix(np.arange(n, dtype=np.float64), knots, degree).toarray()
    k = B.shape[1]
    G = B.T @ B
    D = np.diff(np.eye(k), n=penalty_order, axis=0) if penalty_order < k else np.zeros((0, k))
    P = D.T @ D
    # A relative ridge at round-off level keeps the generalised eigenproblem well posed on tiny grids.
    s, U = eigh(P, G + 1e-12 * np.trace(G) / k * np.eye(k))
    s = np.clip(s, 0.0, None)
    M = B @ U
    for array in (B, G, P, M, s):
        array.setflags(write=False)
    return AxisBasis(B, G, P, M, s)


class Smoother:
    """The penalised B-spline smoother ``H(λ)`` of a 1D grid ``(L,)`` or a 2D grid ``(H, W)`` in its eigenbasis.

    Fields are batched along a leading axis: ``(F, L)`` or ``(F, H, W)``, with one ``λ`` per field ``(F,)``.
    """

    def __init__(self, grid: tuple[int, ...], knot_spacing: float, degree: int, penalty_order: int):
        self.grid = tuple(int(g) for g in grid)
        self.axes = [axis_basis(n, float(knot_spacing), int(degree), int(penalty_order)) for n in self.grid]
        if len(self.axes) == 1:
            self.eig = self.axes[0].s
        else:
            self.eig = self.axes[0].s[:, None] + self.axes[1].s[None, :]
        self.n = math.prod(self.grid)

    def coefficients(self, Y: np.ndarray) -> np.ndarray:
        """``Mᵀ y`` per field: ``(F, k)`` or ``(F, k_y, k_x)``."""
        if len(self.axes) == 1:
            return Y @ self.axes[0].M
        return np.matmul(self.axes[0].M.T, Y) @ self.axes[1].M

    def synthesise(self, C: np.ndarray) -> np.ndarray:
        """``M c`` per field, back on the grid."""
        if len(self.axes) == 1:
            return C @ self.axes[0].M.T
        return np.matmul(self.axes[0].M, C) @ self.axes[1].M.T

    def shrink(self, lam: np.ndarray) -> np.ndarray:
        """``1 / (1 + λ s)`` per field, shaped to broadcast against :meth:`coefficients`."""
        lam = np.asarray(lam, dtype=np.float64).reshape((-1,) + (1,) * self.eig.ndim)
        return 1.0 / (1.0 + lam * self.eig)

    def __call__(self, Y: np.ndarray, lam: np.ndarray) -> np.ndarray:
        """``H(λ) y`` for every field of ``Y``."""
        return self.synthesise(self.coefficients(Y) * self.shrink(lam))

    def dof(self, lam: np.ndarray) -> np.ndarray:
        """Effective degrees of freedom ``tr H(λ) = Σ 1 / (1 + λ s)`` per field ``(F,)``."""
        return self.shrink(lam).reshape(len(np.atleast_1d(lam)), -1).sum(axis=1)


# ----------------------------------------------------------------------------------------------- the solver
def _soft(X: np.ndarray, tau: np.ndarray) -> np.ndarray:
    return np.sign(X) * np.maximum(np.abs(X) - tau, 0.0)


def ssd_decompose(
    smoother: Smoother,
    Y: np.ndarray,
    lam: np.ndarray,
    gamma: np.ndarray,
    *,
    max_iter: int = 300,
    tol: np.ndarray | float = 1e-4,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Solve SSD for every field of ``Y`` ``(F, *grid)`` with per-field ``λ``, threshold ``γ`` ``(F,)`` and
    stopping level ``tol`` (scalar or ``(F,)``, in the data's units: the RMS change of ``a`` per iteration),
    starting from the sparse part ``start`` (default 0).

    Returns the smooth background ``H(y − a)`` and the sparse part ``a``, both ``(F, *grid)``, and the iterations.
    """
    F = Y.shape[0]
    bshape = (F,) + (1,) * (Y.ndim - 1)
    axes = tuple(range(1, Y.ndim))
    gamma = np.asarray(gamma, dtype=np.float64).reshape(bshape)
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), (F,))
    shrink = smoother.shrink(lam)
    rms = math.sqrt(smoother.n)

    def smooth(R: np.ndarray, rows: np.ndarray | slice) -> np.ndarray:
        return smoother.synthesise(smoother.coefficients(R) * shrink[rows])

    a = np.zeros_like(Y) if start is None else start.copy()
    z = a.copy()
    t = np.ones(bshape)
    # Each field stops on its own test, so its result does not depend on the fields solved with it.
    active = np.arange(F)
    it = 0
    while active.size and it < max_iter:
        it += 1
        y, a_old, z_old, t_old = Y[active], a[active], z[active], t[active]
        a_new = _soft(y - smooth(y - z_old, active), gamma[active])
        step = a_new - a_old
        # Restart the momentum of a field whose step points against its last extrapolation (gradient restart).
        restart = np.sum((z_old - a_new) * step, axis=axes, keepdims=True) > 0
        t_old = np.where(restart, 1.0, t_old)
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_old * t_old))
        a[active], z[active], t[active] = a_new, a_new + ((t_old - 1.0) / t_new) * step, t_new
        change = np.sqrt(np.sum(step * step, axis=axes)) / rms
        active = active[change > tol[active]]
    return smooth(Y - a, slice(None)), a, it


# ----------------------------------------------------------------------------------------------- helpers
def _otsu(values: np.ndarray, bins: int = 256) -> np.ndarray:
    """Otsu's threshold of each row of ``values`` ``(F, P)`` (≥ 0) → ``(F,)``, vectorised over rows."""
    F = values.shape[0]
    top = values.max(axis=1)
    top = np.where(top > 0, top, 1.0)
    idx = np.minimum((values / top[:, None] * bins).astype(np.int64), bins - 1)
    hist = np.zeros((F, bins))
    np.add.at(hist, (np.repeat(np.arange(F), values.shape[1]), idx.ravel()), 1.0)
    centres = (np.arange(bins) + 0.5) / bins
    w0 = np.cumsum(hist, axis=1)
    m0 = np.cumsum(hist * centres, axis=1)
    total, mean_total = w0[:, -1:], m0[:, -1:]
    w1 = total - w0
    between = (mean_total * w0 - m0 * total) ** 2 / np.maximum(w0 * w1 * total, 1e-300)
    between[w1 <= 0] = -1.0
    best = np.argmax(between, axis=1)
    return (best + 1) / bins * top


def _difference_sigma(X: np.ndarray) -> np.ndarray:
    """Per-channel noise scale ``(C,)`` of ``X`` ``(N, C, *grid)`` from second differences along each grid axis
    (``Var(y[i-1] − 2y[i] + y[i+1]) = 6σ²`` for white noise; a smooth background barely contributes and the MAD
    ignores sparse defects), with no smoother needed."""
    diffs = [np.diff(X, n=2, axis=axis) for axis in range(2, X.ndim) if X.shape[axis] >= 3]
    if not diffs:
        return np.ones(X.shape[1])
    pooled = [np.concatenate([np.moveaxis(d, 1, 0)[c].ravel() for d in diffs]) for c in range(X.shape[1])]
    return np.array([_robust_sigma(p) / math.sqrt(6.0) for p in pooled])


def _robust_sigma(R: np.ndarray) -> float:
    """Noise scale of residuals ``R`` (any shape): 1.4826 MAD, then the standard deviation, then 1."""
    flat = R.ravel()
    for value in (median_spread(flat)[1], flat.std()):
        if value > 1e-12 * (np.abs(flat).max() + 1e-300) and value > 0:
            return float(value)
    return 1.0


class SSD(BaseDetector):
    """Smooth-sparse decomposition detector for ``(N, C, L)`` signals (``dims=1``) or ``(N, C, H, W)`` images
    (``dims=2``), one signal / image channel at a time.

    Parameters
    ----------
    dims: 1, 2 or ``None`` (the default: from the rank of the array ``fit`` gets; the resolved value is the fitted
        attribute ``dims_``).
    knot_spacing: grid points per B-spline segment on each axis (more = smoother background and a faster solve).
        The default 16 beat 8 on both the smooth-background benchmark and the forging set (fewer knots keep the
        background from bending into defects whose height is below the threshold).
    degree: B-spline degree (3 = cubic). penalty_order: order of the coefficient differences in the P-spline penalty.
    lam: roughness weight ``λ``: a float, or ``"gcv"`` to choose it per channel in ``fit``.
    gamma: sparsity threshold ``γ``: ``"otsu"`` (default; per signal, Otsu's threshold of the absolute residual of
        the plain smooth fit with ``lam_``: it splits the residuals into a "noise" and a "defect" class, so ``γ``
        adapts to each signal's defect strength and keeps the soft threshold's shrinkage small),
        ``"universal"`` (``σ √(2 log n)``, the universal threshold of Donoho & Johnstone, with the channel's noise
        scale ``σ`` learnt in ``fit`` and ``n`` grid points: with Gaussian noise almost no defect-free point passes
        it, but every detected defect keeps ``γ`` of its height in the background's data), or a float ``k`` for
        ``γ = k σ``. On the smooth-background benchmark (``benchmarks/baselines.py``, 256 × 256, defect heights 2,
        3 and 6 σ) Otsu gave the highest pixel AUROC and the smallest background error of the three rules at
        every height.
    map_kind: ``"residual"`` — ``|y − background|`` (the pre-threshold statistic: where ``a ≠ 0`` it equals
        ``|a| + γ``, so it ranks exactly like ``|a|`` on the detected support and also ranks the points below
        ``γ`` instead of tying them at 0); or ``"sparse"`` — ``|a|`` itself. Both in units of ``σ``, averaged over
        channels.
    max_iter, tol: FISTA iterations and stopping level (RMS change of ``a`` per iteration, in units of ``σ``).
    score_quantile: ``anomaly_score`` is this quantile of each map.

    What ``fit`` learns, per channel (the decomposition itself is per signal, so nothing else can be learnt):
    ``lam_`` ``(C,)`` — the geometric median over (up to 16, evenly spread) training signals of the ``λ`` that
    minimises the GCV of their decomposition (see :meth:`_select_lambda`). The background's smoothness is a
    property of the process, so it is learnt from many (mostly normal) signals and then held fixed: a defect in a
    test signal cannot pull ``λ`` down to fit itself, and scoring costs no GCV. ``sigma_`` ``(C,)`` — the noise
    scale (1.4826 · MAD of the training residuals ``y − background``, robust to the defects in contaminated
    training data); it sets ``γ`` for the ``"universal"`` and numeric rules and puts every channel's map in noise
    units so that channels (and samples) are comparable. During ``fit`` itself the noise scale comes from second
    differences of the data, which need no smoother.
    Also ``dims_``, ``n_channels_``, ``n_iter_`` (FISTA iterations of the last fitting pass).
    """

    def __init__(
        self,
        dims: int | None = None,
        knot_spacing: float = 16.0,
        degree: int = 3,
        penalty_order: int = 2,
        lam: float | str = "gcv",
        gamma: float | str = "otsu",
        map_kind: str = "residual",
        max_iter: int = 300,
        tol: float = 1e-3,
        score_quantile: float = 0.99,
    ):
        self.dims = dims
        self.knot_spacing = knot_spacing
        self.degree = degree
        self.penalty_order = penalty_order
        self.lam = lam
        self.gamma = gamma
        self.map_kind = map_kind
        self.max_iter = max_iter
        self.tol = tol
        self.score_quantile = score_quantile

    # ----------------------------------------------------------------------------------------------- checks
    def _check_params(self) -> None:
        if not (isinstance(self.lam, str) and self.lam == "gcv") and not (
            isinstance(self.lam, numbers.Real) and self.lam > 0
        ):
            raise ValueError(f"lam must be 'gcv' or a positive number, got {self.lam!r}")
        if isinstance(self.gamma, str):
            if self.gamma not in GAMMA_RULES:
                raise ValueError(f"unknown gamma rule {self.gamma!r}: use one of {GAMMA_RULES} or a number >= 0")
        elif not (isinstance(self.gamma, numbers.Real) and self.gamma >= 0):
            raise ValueError(f"gamma must be one of {GAMMA_RULES} or a number >= 0, got {self.gamma!r}")
        if self.map_kind not in MAP_KINDS:
            raise ValueError(f"unknown map_kind {self.map_kind!r}: use one of {MAP_KINDS}")
        if self.knot_spacing <= 0 or self.degree < 0 or self.penalty_order < 1:
            raise ValueError("knot_spacing must be > 0, degree >= 0 and penalty_order >= 1")
        if self.max_iter < 1 or self.tol <= 0:
            raise ValueError(f"max_iter must be >= 1 and tol > 0, got {self.max_iter}, {self.tol}")

    def _smoother(self, grid: tuple[int, ...]) -> Smoother:
        return Smoother(grid, self.knot_spacing, self.degree, self.penalty_order)

    # ----------------------------------------------------------------------------------------------- core
    def _gammas(self, smoother: Smoother, Y: np.ndarray, lam: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Threshold ``γ`` per field ``(F,)`` for fields ``Y`` with ``λ``, noise scales ``σ`` ``(F,)``."""
        if self.gamma == "universal":
            return sigma * math.sqrt(2.0 * math.log(max(smoother.n, 2)))
        if self.gamma == "otsu":
            residual = np.abs(Y - smoother(Y, lam)).reshape(Y.shape[0], -1)
            return _otsu(residual)
        return float(self.gamma) * sigma

    def _solve(self, X: np.ndarray, lam: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """SSD of every channel of ``X`` ``(N, C, *grid)`` with per-channel ``λ`` and ``σ`` ``(C,)``: background
        and sparse part, both ``(N, C, *grid)`` float64, and the most FISTA iterations any batch took."""
        N, C, grid = X.shape[0], X.shape[1], X.shape[2:]
        smoother = self._smoother(grid)
        fields = X.reshape(N * C, *grid).astype(np.float64)
        lam_f, sigma_f = np.tile(lam, N), np.tile(sigma, N)
        background = np.empty_like(fields)
        sparse = np.empty_like(fields)
        step = max(1, _CHUNK_ELEMENTS // smoother.n)
        n_iter = 0
        for start in range(0, N * C, step):
            part = slice(start, min(N * C, start + step))
            gamma = self._gammas(smoother, fields[part], lam_f[part], sigma_f[part])
            background[part], sparse[part], it = ssd_decompose(
                smoother, fields[part], lam_f[part], gamma, max_iter=self.max_iter, tol=self.tol * sigma_f[part]
            )
            n_iter = max(n_iter, it)
        return background.reshape(X.shape), sparse.reshape(X.shape), n_iter

    def _select_lambda(self, fields: np.ndarray, sigma: np.ndarray, C: int) -> np.ndarray:
        """GCV choice of ``λ`` per channel ``(C,)`` from training ``fields`` ``(N·C, *grid)`` with noise scales
        ``sigma`` ``(N·C,)``.

        For each ``λ`` of :data:`LAMBDA_GRID` (from smooth to rough, each solve warm-started from the last) the SSD
        of every field is solved and the background is judged by GCV on the points the sparse part leaves alone
        (those where ``a = 0``; the detected points count as missing): ``GCV(λ) = n₀ RSS₀ / (n₀ − tr H(λ))²``.
        Judging it on all points instead would count the soft threshold's leftover ``γ`` at every defect point as
        signal and favour a ``λ`` small enough for the background to bend into the defects. The support is set by
        the universal threshold ``σ √(2 log n)`` whatever the ``gamma`` rule: with a threshold that adapts to the
        residual (Otsu), a rougher fit lowers its own threshold, drops more points and games the criterion. Each
        field votes for its minimiser; a channel takes the geometric median of its votes.
        """
        smoother = self._smoother(fields.shape[1:])
        axes = tuple(range(1, fields.ndim))
        gamma = sigma * math.sqrt(2.0 * math.log(max(smoother.n, 2)))
        scores = np.empty((len(LAMBDA_GRID), len(fields)))
        sparse = None
        for g in range(len(LAMBDA_GRID) - 1, -1, -1):
            lam = np.full(len(fields), LAMBDA_GRID[g])
            background, sparse, _ = ssd_decompose(
                smoother, fields, lam, gamma, max_iter=self.max_iter, tol=self.tol * sigma, start=sparse
            )
            off = sparse == 0
            rss = np.sum(np.where(off, fields - background, 0.0) ** 2, axis=axes)
            n_off = off.sum(axis=axes)
            scores[g] = n_off * rss / np.maximum(n_off - smoother.dof(lam), 1e-12) ** 2
        votes = np.log(LAMBDA_GRID[np.argmin(scores, axis=0)]).reshape(-1, C)
        return np.exp(np.median(votes, axis=0))

    # ----------------------------------------------------------------------------------------------- API
    def fit(self, X: object, y: object = None) -> SSD:
        """Learn the per-channel roughness ``lam_`` and noise scale ``sigma_`` from ``X`` (which may hold
        unlabelled defects). Returns ``self``."""
        self._check_params()
        X, dims = self._check_fit_X(X)
        X = X.astype(np.float64)
        N, C, grid = X.shape[0], X.shape[1], X.shape[2:]
        sigma = _difference_sigma(X)
        if self.lam == "gcv":
            # λ only needs a handful of signals per channel; spread them over the training set.
            pick = np.unique(np.linspace(0, N - 1, min(N, _GCV_SAMPLES)).round().astype(int))
            fields = X[pick].reshape(len(pick) * C, *grid)
            lam = self._select_lambda(fields, np.tile(sigma, len(pick)), C)
        else:
            lam = np.full(C, float(self.lam))
        background, _, n_iter = self._solve(X, lam, sigma)
        # The noise scale of the full decomposition's residual (robust to the defects it leaves in place).
        residual = np.moveaxis(X - background, 1, 0).reshape(C, -1)
        self.sigma_ = np.array([_robust_sigma(r) for r in residual])
        self.lam_ = lam
        self.n_iter_ = n_iter
        self.n_channels_ = int(C)
        self.dims_ = dims
        return self

    def decompose(self, X: object) -> tuple[np.ndarray, np.ndarray]:
        """The smooth background and the sparse anomaly part of ``X``, both shaped like ``X`` (float64, in the
        units of ``X``)."""
        X = self._check_X(X).astype(np.float64)
        background, sparse, _ = self._solve(X, self.lam_, self.sigma_)
        return background, sparse

    def anomaly_map(self, X: object) -> np.ndarray:
        """``(N, L)`` or ``(N, H, W)`` float64: ``|y − background|`` (``map_kind="residual"``) or ``|a|``
        (``"sparse"``) in noise units ``σ``, averaged over channels; higher = more anomalous."""
        self._check_params()
        X = self._check_X(X).astype(np.float64)
        background, sparse, _ = self._solve(X, self.lam_, self.sigma_)
        part = X - background if self.map_kind == "residual" else sparse
        shape = (1, -1) + (1,) * (part.ndim - 2)
        return (np.abs(part) / self.sigma_.reshape(shape)).mean(axis=1)

    # ----------------------------------------------------------------------------------------------- persistence
    def save(self, path: str) -> None:
        """Write parameters and the fitted ``lam_`` / ``sigma_`` / ``dims_`` to ``path`` (``.npz``, atomically)."""
        check_fitted(self, "dims_")
        save_arrays(
            path,
            self.get_params(),
            {
                "lam": self.lam_,
                "sigma": self.sigma_,
                "n_channels": np.array(self.n_channels_),
                "n_iter": np.array(self.n_iter_),
                "dims": np.array(self.dims_, dtype=np.int64),
            },
            kind="SSD",
        )

    @classmethod
    def load(cls, path: str) -> SSD:
        """Load a detector written by :meth:`save` (``np.load(allow_pickle=False)``)."""
        params, arrays = load_arrays(path, kind="SSD", keys=("lam", "sigma", "n_channels", "n_iter"))
        det = cls(**params)
        det.dims_ = saved_dims(path, params, arrays)
        det.lam_ = arrays["lam"]
        det.sigma_ = arrays["sigma"]
        det.n_channels_ = int(arrays["n_channels"])
        det.n_iter_ = int(arrays["n_iter"])
        return det
