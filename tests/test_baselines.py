"""RPCA (principal component pursuit) and SSD (smooth-sparse decomposition): exactness, the detector contract,
and the separable 2D solve against a dense Kronecker solve."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from rddpm_signals.baselines import RPCA, SSD, pcp
from rddpm_signals.baselines.rpca import randomized_svd, robust_project
from rddpm_signals.baselines.ssd import Smoother, axis_basis
from rddpm_signals.metrics import pixel_auroc


def low_rank_plus_sparse(m: int, n: int, rank: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``L0`` (rank ``rank``, entries of order 1) and ``S0`` (``share`` of entries, ±1 … ±5)."""
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) / np.sqrt(rank)
    S0 = np.zeros((m, n))
    hit = rng.random((m, n)) < share
    S0[hit] = rng.choice([-1.0, 1.0], hit.sum()) * rng.uniform(1.0, 5.0, hit.sum())
    return L0, S0


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# ----------------------------------------------------------------------------------------------- RPCA maths
@pytest.mark.parametrize("svd", ["full", "randomized"])
def test_pcp_recovers_low_rank_and_sparse_exactly(svd):
    L0, S0 = low_rank_plus_sparse(100, 80, rank=3, share=0.05, seed=0)
    result = pcp(L0 + S0, svd=svd, random_state=0)
    assert result.converged
    assert rel(result.L, L0) < 1e-5
    assert rel(result.S, S0) < 1e-5
    assert result.rank == 3
    assert result.lam == pytest.approx(1 / np.sqrt(100))


def test_randomized_svd_matches_full_on_low_rank():
    L0, _ = low_rank_plus_sparse(120, 90, rank=4, share=0.0, seed=1)
    U, s, Vt = randomized_svd(L0, 4, np.random.default_rng(0))
    s_full = np.linalg.svd(L0, compute_uv=False)[:4]
    np.testing.assert_allclose(s, s_full, rtol=1e-10)
    np.testing.assert_allclose((U * s) @ Vt, L0, atol=1e-10)


def test_pcp_rejects_bad_matrices():
    with pytest.raises(ValueError, match="finite"):
        pcp(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="svd"):
        pcp(np.eye(3), svd="lanczos")


def test_robust_projection_returns_the_corruption_of_new_rows():
    L0, S0 = low_rank_plus_sparse(100, 80, rank=3, share=0.05, seed=2)
    Vt = pcp(L0 + S0).Vt
    # New rows from the same model: a low-rank part in L0's row space and fresh 5 % corruptions.
    L1, S1 = low_rank_plus_sparse(20, 80, rank=3, share=0.05, seed=3)
    rng = np.random.default_rng(4)
    L1 = rng.standard_normal((20, 3)) @ Vt
    S, _ = robust_project(L1 + S1, Vt)
    assert rel(S, S1) < 1e-4
    # A row's result does not depend on the rows scored with it.
    alone, _ = robust_project((L1 + S1)[:1], Vt)
    np.testing.assert_allclose(alone, S[:1], rtol=0, atol=1e-12)


def test_rpca_detector_projection_is_exact_on_model_data():
    L0, S0 = low_rank_plus_sparse(120, 60, rank=3, share=0.05, seed=5)
    det = RPCA(dims=1).fit(L0[:100, None] + S0[:100, None])
    assert det.rank_ <= 4  # rank 3 plus at most the direction that the robust centring adds
    low, sparse = det.decompose(L0[100:, None] + S0[100:, None])
    assert rel(sparse[:, 0], S0[100:]) < 1e-3
    np.testing.assert_allclose(low[:, 0], L0[100:], atol=1e-3 * np.abs(L0).max())
    maps = det.anomaly_map(L0[100:, None] + S0[100:, None])
    assert pixel_auroc(maps, S0[100:] != 0) > 0.999


# ----------------------------------------------------------------------------------------------- SSD maths
def test_separable_2d_smoother_equals_dense_kronecker_solve():
    grid, lam = (9, 11), 0.7
    smoother = Smoother(grid, knot_spacing=3.0, degree=3, penalty_order=2)
    by, bx = smoother.axes
    B = np.kron(by.B, bx.B)  # row-major vec: pixel (h, w) → h·W + w
    P = np.kron(by.P, bx.G) + np.kron(by.G, bx.P)
    Y = np.random.default_rng(0).standard_normal((2, *grid))
    theta = np.linalg.solve(B.T @ B + lam * P, B.T @ Y.reshape(2, -1).T)
    dense = (B @ theta).T.reshape(Y.shape)
    np.testing.assert_allclose(smoother(Y, np.array([lam, lam])), dense, atol=1e-9)
    H = B @ np.linalg.solve(B.T @ B + lam * P, B.T)
    assert smoother.dof(np.array([lam]))[0] == pytest.approx(np.trace(H), rel=1e-9)


def test_1d_smoother_equals_dense_penalised_solve():
    basis = axis_basis(40, 5.0, 3, 2)
    y = np.random.default_rng(1).standard_normal(40)
    lam = 2.5
    dense = basis.B @ np.linalg.solve(basis.G + lam * basis.P, basis.B.T @ y)
    smoother = Smoother((40,), 5.0, 3, 2)
    np.testing.assert_allclose(smoother(y[None], np.array([lam]))[0], dense, atol=1e-10)
    np.testing.assert_allclose(basis.M.T @ basis.M, np.eye(basis.M.shape[1]), atol=1e-10)


def smooth_image_with_defect(n: int, seed: int, amplitude: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    background = 0.5 + 0.3 * np.sin(2 * np.pi * (0.7 * xx + 0.4 * yy) + rng.uniform(0, 6))
    background += 0.2 * np.exp(-((xx - 0.4) ** 2 + (yy - 0.6) ** 2) / 0.05)
    mask = np.zeros((n, n), dtype=bool)
    mask[20:24, 30:36] = True
    mask[40:42, 10:25] = True
    image = background + amplitude * mask + 0.05 * rng.standard_normal((n, n))
    return image, background, mask


def test_ssd_finds_a_sparse_defect_on_a_smooth_background():
    images = [smooth_image_with_defect(64, seed) for seed in range(3)]
    X = np.stack([im for im, _, _ in images])[:, None]
    masks = np.stack([m for _, _, m in images])
    det = SSD(dims=2).fit(X)
    assert pixel_auroc(det.anomaly_map(X), masks) > 0.95
    background, sparse = det.decompose(X)
    truth = np.stack([b for _, b, _ in images])
    assert rel(background[:, 0], truth) < 0.05
    assert np.abs(sparse[:, 0][masks]).mean() > 5 * np.abs(sparse[:, 0][~masks]).mean()
    assert det.sigma_[0] == pytest.approx(0.05, rel=0.2)


def test_ssd_residual_map_is_sparse_map_plus_gamma_on_the_support():
    image, _, _ = smooth_image_with_defect(48, seed=7)
    X = image[None, None]
    det = SSD(dims=2, gamma="universal", tol=1e-9, max_iter=3000).fit(X)
    residual = det.anomaly_map(X)[0] * det.sigma_[0]
    sparse = det.set_params(map_kind="sparse").anomaly_map(X)[0] * det.sigma_[0]
    support = sparse > 0
    assert support.any()
    gamma = det.sigma_[0] * np.sqrt(2 * np.log(X[0, 0].size))
    np.testing.assert_allclose(residual[support] - sparse[support], gamma, rtol=1e-4)
    assert residual[~support].max() <= gamma * (1 + 1e-4)


def test_ssd_1d_finds_spikes_on_smooth_signals():
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 101)
    X = np.sin(2 * np.pi * (t[None, None] * rng.uniform(1, 2, (16, 1, 1)) + rng.uniform(0, 1, (16, 1, 1))))
    X = np.repeat(X, 2, axis=1) + 0.05 * rng.standard_normal((16, 2, 101))
    mask = np.zeros((16, 101), dtype=bool)
    for i in range(0, 16, 2):
        start = rng.integers(5, 90)
        mask[i, start : start + 4] = True
        X[i, :, start : start + 4] += 0.5
    maps = SSD(dims=1).fit(X).anomaly_map(X)
    assert pixel_auroc(maps, mask) > 0.95


# ----------------------------------------------------------------------------------------------- contract
def make(name: str, dims: int):
    return RPCA(dims=dims) if name == "rpca" else SSD(dims=dims)


def data(dims: int, n: int = 12, channels: int = 2, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = (37,) if dims == 1 else (13, 17)
    axes = np.meshgrid(*[np.linspace(0, 1, g) for g in grid], indexing="ij")
    base = np.sin(2 * np.pi * sum(axes))
    X = base[None, None] * rng.uniform(0.8, 1.2, (n, channels) + (1,) * dims)
    return (X + 0.05 * rng.standard_normal(X.shape)).astype(np.float32)


DETECTORS = [("rpca", 1), ("rpca", 2), ("ssd", 1), ("ssd", 2)]


@pytest.mark.parametrize("name, dims", DETECTORS)
def test_contract_fit_shapes_and_determinism(name, dims):
    X = data(dims)
    det = make(name, dims)
    assert det.fit(X) is det
    assert det.n_channels_ == 2
    maps = det.anomaly_map(X[:5])
    assert maps.shape == (5, *X.shape[2:]) and maps.dtype == np.float64 and np.all(np.isfinite(maps))
    assert det.anomaly_score(X[:5]).shape == (5,)
    np.testing.assert_array_equal(det.anomaly_map(X[:5]), maps)
    np.testing.assert_array_equal(make(name, dims).fit(X).anomaly_map(X[:5]), maps)
    np.testing.assert_array_equal(det.fit_anomaly_map(X), det.anomaly_map(X))
    # A sample's map does not depend on the samples scored with it (up to round-off).
    np.testing.assert_allclose(det.anomaly_map(X[2:3]), maps[2:3], rtol=0, atol=1e-10)
    import torch

    np.testing.assert_array_equal(det.anomaly_map(torch.from_numpy(X[:5])), maps)


@pytest.mark.parametrize("name, dims", DETECTORS)
def test_contract_clone_and_params(name, dims):
    det = make(name, dims).set_params(score_quantile=0.9)
    twin = clone(det)
    assert twin.get_params() == det.get_params()
    assert not hasattr(twin, "n_channels_")
    X = data(dims)
    det.fit(X)
    assert not hasattr(clone(det), "n_channels_")


@pytest.mark.parametrize("name, dims", DETECTORS)
def test_contract_save_load_round_trip(name, dims, tmp_path):
    X = data(dims)
    det = make(name, dims).fit(X)
    path = tmp_path / "det.npz"
    det.save(path)
    loaded = type(det).load(path)
    assert loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.anomaly_map(X[:4]), det.anomaly_map(X[:4]))
    assert [p.name for p in tmp_path.iterdir()] == ["det.npz"]  # no temporary file left behind
    other = RPCA if name == "ssd" else SSD
    with pytest.raises(ValueError, match="not"):
        other.load(path)
    with pytest.raises(ValueError, match="no saved detector"):
        type(det).load(tmp_path / "missing.npz")


@pytest.mark.parametrize("name, dims", DETECTORS)
def test_contract_bad_input(name, dims):
    X = data(dims)
    det = make(name, dims)
    with pytest.raises(RuntimeError, match="not fitted"):
        det.anomaly_map(X)
    bad = X.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.fit(bad)
    with pytest.raises(ValueError, match="-D"):
        det.fit(X[:, 0])
    det.fit(X)
    with pytest.raises(ValueError, match="channels"):
        det.anomaly_map(X[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        det.anomaly_map(bad)
    with pytest.raises(ValueError, match="dims"):
        make(name, 3).fit(X)


def test_rpca_rejects_another_grid_and_bad_params():
    X = data(1)
    det = RPCA(dims=1).fit(X)
    with pytest.raises(ValueError, match="grid"):
        det.anomaly_map(X[..., :-1])
    with pytest.raises(ValueError, match="svd"):
        RPCA(svd="lanczos").fit(X)


def test_ssd_accepts_another_grid_and_rejects_bad_params():
    X = data(1)
    det = SSD(dims=1).fit(X)
    assert det.anomaly_map(X[:2, :, :-6]).shape == (2, 31)
    for params in ({"lam": -1.0}, {"lam": "aic"}, {"gamma": "mean"}, {"map_kind": "both"}, {"max_iter": 0}):
        with pytest.raises(ValueError):
            SSD(dims=1, **params).fit(X)
