"""One contract, every detector: RobustDiffusion (as RDDPM, DDPM and AnoDDPM), RPCA, SSD, IsolationForest and the
matrix profile."""

import zipfile

import numpy as np
import pytest
import torch
from sklearn.base import clone

from helpers import TINY_1D, TINY_2D
from rddpm_signals import RPCA, SSD, IsolationForestDetector, MatrixProfile, RobustDiffusion, load_detector
from rddpm_signals.methods import available_methods, make_detector

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


def _strip_saved_dims(path) -> None:
    """Rewrite a saved detector as a file written before ``dims_`` was stored."""
    if zipfile.ZipFile(path).namelist()[0].endswith(".npy"):
        with np.load(path, allow_pickle=False) as saved:
            arrays = {k: saved[k] for k in saved.files if k != "dims"}
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    else:
        state = torch.load(path, weights_only=True)
        del state["dims"]
        torch.save(state, path)


@pytest.mark.parametrize("dims", [1, 2])
def test_dims_is_inferred_from_the_array(name, dims, tmp_path):
    """``dims=None`` (every detector's default): ``fit`` takes 1 from (N, C, L) and 2 from (N, C, H, W), as the
    fitted ``dims_``; the maps equal an explicit-dims detector's, and save / load keeps both."""
    assert type(FACTORIES[name](1))().dims is None
    X = data(dims)
    auto = FACTORIES[name](dims).set_params(dims=None)
    if dims not in getattr(auto, "supported_dims", (1, 2)):
        with pytest.raises(ValueError, match="1D signals"):
            auto.fit(X)
        assert not any(k.endswith("_") for k in vars(auto))
        return
    assert auto.fit(X) is auto
    assert auto.dims is None and auto.dims_ == dims
    explicit = FACTORIES[name](dims).fit(X)
    assert explicit.dims == explicit.dims_ == dims
    maps = auto.anomaly_map(X)
    np.testing.assert_array_equal(maps, explicit.anomaly_map(X))
    auto.save(tmp_path / "det.bin")
    loaded = load_detector(tmp_path / "det.bin")
    assert loaded.dims is None and loaded.dims_ == dims
    np.testing.assert_array_equal(loaded.anomaly_map(X), maps)
    with pytest.raises(ValueError, match="-D"):  # the fitted rank holds after fit
        auto.anomaly_map(data(3 - dims))


def test_dims_none_rejects_other_ranks_in_one_line(name):
    det = FACTORIES[name](1).set_params(dims=None)
    with pytest.raises(ValueError, match=r"shape \(4, 29\).*channel axis.*dims=1") as err:
        det.fit(np.zeros((4, 29), dtype=np.float32))
    assert "\n" not in str(err.value)
    assert not any(k.endswith("_") for k in vars(det))  # a failed fit sets nothing
    with pytest.raises(ValueError, match=r"dims.*3"):
        FACTORIES[name](1).set_params(dims=3).fit(data(1))


def test_explicit_dims_that_disagree_with_the_array_stay_an_error(name):
    det = FACTORIES[name](1)
    if 2 in getattr(det, "supported_dims", (1, 2)):
        with pytest.raises(ValueError, match="4-D"):
            FACTORIES[name](2).fit(data(1))
    with pytest.raises(ValueError, match="3-D|1D signals"):
        det.fit(data(2))


def test_files_saved_before_dims_was_stored_still_load(name, tmp_path):
    X = data(1)
    det = FACTORIES[name](1).fit(X)
    det.save(tmp_path / "det.bin")
    _strip_saved_dims(tmp_path / "det.bin")
    loaded = load_detector(tmp_path / "det.bin")
    assert loaded.dims == loaded.dims_ == 1
    np.testing.assert_array_equal(loaded.anomaly_map(X), det.anomaly_map(X))


@pytest.mark.parametrize("method", available_methods())
def test_make_detector_leaves_dims_to_the_array_unless_told(method):
    assert make_detector(method).dims is None
    assert make_detector(method, 1).dims == 1 and make_detector(method, dims=2).dims == 2
    assert make_detector(f"{method}:dims=2").dims == 2
    with pytest.raises(ValueError, match="dims=2 but dims=1"):
        make_detector(f"{method}:dims=2", 1)
