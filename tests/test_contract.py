"""One contract, every detector: RobustDiffusion (as RDDPM, DDPM and AnoDDPM), RPCA and SSD."""

import numpy as np
import pytest
from sklearn.base import clone

from helpers import TINY_1D, TINY_2D
from rddpm_signals import RPCA, SSD, IsolationForestDetector, MatrixProfile, RobustDiffusion

FACTORIES = {
    # the library default: LTS with self-cleaning
    "rddpm_default": lambda dims: RobustDiffusion(**(TINY_1D if dims == 1 else TINY_2D)),
    "rddpm": lambda dims: RobustDiffusion(**{**(TINY_1D if dims == 1 else TINY_2D), "loss": "huber"}),
    "ddpm": lambda dims: RobustDiffusion(**{**(TINY_1D if dims == 1 else TINY_2D), "loss": "mse"}),
    "anoddpm": lambda dims: RobustDiffusion(
        **{**(TINY_1D if dims == 1 else TINY_2D), "loss": "mse", "noise": "simplex"}
    ),
    "rddpm_self_clean": lambda dims: RobustDiffusion(
        **{
            **(TINY_1D if dims == 1 else TINY_2D),
            "loss": "huber_adaptive",
            "self_clean": True,
            "map_normalization": "position",
            "train_steps": 8,
        }
    ),
    "rpca": lambda dims: RPCA(dims=dims, max_iter=100),
    "ssd": lambda dims: SSD(dims=dims, knot_spacing=4.0),
    "iforest": lambda dims: IsolationForestDetector(dims=dims, n_estimators=50),
}
# 1D-only detectors: every test below that runs on 1D data
FACTORIES_1D = {"discord": lambda dims: MatrixProfile(dims=dims, m=6)}


def data(dims: int, n: int = 10) -> np.ndarray:
    rng = np.random.default_rng(dims)
    if dims == 1:
        t = np.linspace(0, 1, 29)
        x = np.sin(2 * np.pi * (t + rng.uniform(0, 0.1, (n, 1, 1)))) + 0.05 * rng.normal(size=(n, 2, 29))
    else:
        yy, xx = np.mgrid[0:11, 0:13] / 10.0
        x = (yy + xx)[None, None] + 0.05 * rng.normal(size=(n, 1, 11, 13))
    return x.astype(np.float32)


@pytest.fixture(params=[*FACTORIES, *FACTORIES_1D], ids=[*FACTORIES, *FACTORIES_1D])
def name(request):
    return request.param


FACTORIES.update(FACTORIES_1D)


@pytest.mark.parametrize("dims", [1, 2])
def test_fit_returns_self_and_shapes(name, dims):
    if dims not in getattr(FACTORIES[name](1), "supported_dims", (1, 2)):
        pytest.skip(f"{name} is 1D only")
    X = data(dims)
    det = FACTORIES[name](dims)
    assert det.fit(X) is det
    maps = det.anomaly_map(X)
    assert maps.shape == (X.shape[0], *X.shape[2:])
    assert np.all(np.isfinite(maps))
    scores = det.anomaly_score(X)
    assert scores.shape == (X.shape[0],) and np.all(np.isfinite(scores))
    assert det.fit_anomaly_map(X).shape == maps.shape


def test_deterministic_call_after_call_and_refit(name):
    X = data(1)
    a = FACTORIES[name](1).fit(X)
    first = a.anomaly_map(X)
    np.testing.assert_array_equal(first, a.anomaly_map(X))
    np.testing.assert_array_equal(first, FACTORIES[name](1).fit(X).anomaly_map(X))


def test_clone_and_params(name):
    det = FACTORIES[name](1)
    twin = clone(det)
    assert twin.get_params() == det.get_params()
    assert not any(k.endswith("_") for k in vars(twin))  # constructor stores parameters only
    original = det.score_quantile
    twin.set_params(score_quantile=0.5)
    assert twin.score_quantile == 0.5 and det.score_quantile == original


def test_save_load_gives_identical_maps(name, tmp_path):
    X = data(1)
    det = FACTORIES[name](1).fit(X)
    path = tmp_path / "det.bin"
    det.save(path)
    loaded = type(det).load(path)
    np.testing.assert_array_equal(det.anomaly_map(X), loaded.anomaly_map(X))


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((4, 2, 29), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((4, 29), dtype=np.float32), "channel axis"),
        (np.zeros((0, 2, 29), dtype=np.float32), "empty"),
        (np.array([[["x"]]]), "numeric"),
    ],
    ids=["nan", "rank", "empty", "text"],
)
def test_bad_input_raises_value_error(name, bad, match):
    with pytest.raises(ValueError, match=match):
        FACTORIES[name](1).fit(bad)


def test_channel_mismatch_and_unfitted(name):
    X = data(1)
    with pytest.raises(RuntimeError, match="fit"):
        FACTORIES[name](1).anomaly_map(X)
    det = FACTORIES[name](1).fit(X)
    with pytest.raises(ValueError, match="channels"):
        det.anomaly_map(X[:, :1])


def test_higher_map_on_a_planted_defect(name):
    """A detector fitted on smooth normal signals must score a planted bump above the rest of its sample."""
    if name == "iforest":
        pytest.skip("IsolationForest scores whole samples: its map has no localisation, by design")
    X = data(1, n=40)
    det = FACTORIES[name](1)
    if isinstance(det, RobustDiffusion):
        det.set_params(train_steps=150, lr=3e-3, t0=3)
    det.fit(X)
    probe = X[:2].copy()
    probe[:, :, :] += 4.0 * np.exp(-0.5 * ((np.arange(29) - 14) / 1.5) ** 2)
    maps = det.anomaly_map(probe)
    # the matrix profile resolves a defect to within one subsequence length m
    assert np.all(np.abs(maps.argmax(axis=1) - 14) <= 2 + getattr(det, "m_", 0))
