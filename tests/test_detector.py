"""RobustDiffusion: the estimator contract, persistence, determinism and input checks."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from helpers import TINY_1D, TINY_2D
from rddpm_signals import RobustDiffusion
from rddpm_signals.detector import channel_center_scale
from rddpm_signals.diffusion import NoiseSchedule, make_noise_fn
from rddpm_signals.losses import make_loss
from rddpm_signals.nets import UNet
from rddpm_signals.training import TrainConfig, train


def test_tiny_fit_lowers_the_loss(tiny_1d_data):
    det = RobustDiffusion(**{**TINY_1D, "train_steps": 80, "lr": 2e-3, "t0": 20}).fit(tiny_1d_data)
    history = det.loss_history_
    assert history.shape == (80,)
    assert history[-20:].mean() < 0.7 * history[:10].mean()


@pytest.mark.parametrize("cfg, data", [(TINY_1D, "tiny_1d_data"), (TINY_2D, "tiny_2d_data")])
def test_shapes(cfg, data, request):
    X = request.getfixturevalue(data)
    det = RobustDiffusion(**cfg)
    assert det.fit(X) is det
    maps = det.anomaly_map(X)
    assert maps.shape == (X.shape[0], *X.shape[2:]) and maps.dtype == np.float64
    assert det.anomaly_score(X).shape == (X.shape[0],)
    assert det.reconstruct(X).shape == X.shape


def test_maps_are_identical_call_after_call_and_after_save_load(tiny_1d_data, tmp_path):
    det = RobustDiffusion(**TINY_1D).fit(tiny_1d_data)
    first = det.anomaly_map(tiny_1d_data)
    np.testing.assert_array_equal(first, det.anomaly_map(tiny_1d_data))
    det.save(tmp_path / "det.pt")
    loaded = RobustDiffusion.load(tmp_path / "det.pt")
    np.testing.assert_array_equal(first, loaded.anomaly_map(tiny_1d_data))
    assert loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.loss_history_, det.loss_history_)


def test_same_random_state_same_fit(tiny_1d_data):
    a = RobustDiffusion(**TINY_1D).fit(tiny_1d_data).anomaly_map(tiny_1d_data)
    b = RobustDiffusion(**TINY_1D).fit(tiny_1d_data).anomaly_map(tiny_1d_data)
    c = RobustDiffusion(**{**TINY_1D, "random_state": 1}).fit(tiny_1d_data).anomaly_map(tiny_1d_data)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_does_not_touch_the_global_rng(tiny_1d_data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    RobustDiffusion(**TINY_1D).fit(tiny_1d_data)
    torch.testing.assert_close(torch.rand(3), expected)


def test_clone_and_params():
    det = RobustDiffusion(loss="lts", trim=0.3, channels=8)
    twin = clone(det)
    assert twin is not det and twin.get_params() == det.get_params()
    twin.set_params(delta=0.5)
    assert twin.delta == 0.5 and det.delta is None


def test_constructor_only_stores_parameters():
    det = RobustDiffusion(loss="no-such-loss", sampler="nope")
    assert det.loss == "no-such-loss"
    assert not hasattr(det, "net_")


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.full((4, 2, 33), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((4, 33), dtype=np.float32), "channel axis"),
        (np.zeros((0, 2, 33), dtype=np.float32), "empty"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_bad_input_raises_a_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        RobustDiffusion(**TINY_1D).fit(bad)


def test_nan_at_scoring_time_and_channel_mismatch(tiny_1d_data):
    det = RobustDiffusion(**TINY_1D).fit(tiny_1d_data)
    bad = tiny_1d_data.copy()
    bad[0, 0, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        det.anomaly_map(bad)
    with pytest.raises(ValueError, match="channels"):
        det.anomaly_map(tiny_1d_data[:, :1])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"loss": "nope"}, "unknown loss"),
        ({"sampler": "euler"}, "sampler"),
        ({"t0": 51}, "t0"),
        ({"noise": "pink"}, "noise"),
        ({"train_t_max": 3, "t0": 5}, "train_t_max"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_parameters_raise_in_fit(tiny_1d_data, params, match):
    with pytest.raises(ValueError, match=match):
        RobustDiffusion(**{**TINY_1D, **params}).fit(tiny_1d_data)


def test_unfitted_use_raises(tiny_1d_data):
    with pytest.raises(RuntimeError, match="fit"):
        RobustDiffusion(**TINY_1D).anomaly_map(tiny_1d_data)


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="no saved detector"):
        RobustDiffusion.load(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a RobustDiffusion file"):
        RobustDiffusion.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a RobustDiffusion file"):
        RobustDiffusion.load(tmp_path / "junk.pt")


@pytest.mark.parametrize(
    "params",
    [
        {"sampler": "ddim", "reverse_steps": 2},
        {"precision": "bf16"},
        {"noise": "simplex"},
        {"loss": "lts", "trim": 0.25},
        {"n_reconstructions": 2, "map_smoothing": 1.0},
        {"schedule": "cosine", "train_t_max": 10},
    ],
)
def test_configurations_run(tiny_1d_data, params):
    det = RobustDiffusion(**{**TINY_1D, **params}).fit(tiny_1d_data)
    maps = det.anomaly_map(tiny_1d_data)
    assert maps.shape == (12, 33) and np.all(np.isfinite(maps))


def test_robust_scaling_ignores_outlying_samples():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(200, 2, 50)).astype(np.float32)
    center, scale = channel_center_scale(X)
    X[:20] += 1000.0  # 10 % wildly defective samples
    c2, s2 = channel_center_scale(X)
    np.testing.assert_allclose(center, 3.0, atol=0.1)
    np.testing.assert_allclose(scale, 2.0, rtol=0.05)
    assert np.all(np.abs(c2 - center) < 0.5) and np.all(s2 < 1.5 * scale)


def test_constant_channel_gets_a_usable_scale():
    X = np.zeros((5, 2, 10), dtype=np.float32)
    X[:, 1] = np.arange(10)
    _, scale = channel_center_scale(X)
    assert np.all(scale > 0)


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    """Kill the loop after 7 of 12 steps (checkpoint every 5), resume, and compare with an uninterrupted run."""
    data = torch.randn(10, 1, 16, generator=torch.Generator().manual_seed(0))
    sched = NoiseSchedule.create("linear", 50)

    def run(path, stop_at=None):
        torch.manual_seed(0)
        net = UNet(dims=1, in_channels=1, channels=8, channel_mult=(1, 2), attention=False)
        config = TrainConfig(steps=12, batch_size=4, checkpoint_path=str(path), checkpoint_every=5)

        def on_step(step, loss):
            if stop_at is not None and step == stop_at:
                raise KeyboardInterrupt

        return train(
            net,
            data,
            sched,
            make_loss("huber"),
            make_noise_fn("gaussian"),
            config,
            torch.Generator().manual_seed(1),
            torch.device("cpu"),
            on_step=on_step,
        )

    reference = run(tmp_path / "a.pt")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "b.pt", stop_at=7)
    assert (tmp_path / "b.pt").exists() and not list(tmp_path.glob(".*tmp"))
    resumed = run(tmp_path / "b.pt")
    assert len(resumed.history) == 12
    np.testing.assert_allclose(resumed.history, reference.history, rtol=1e-6)
    for p, q in zip(resumed.ema.parameters(), reference.ema.parameters(), strict=True):
        torch.testing.assert_close(p, q)
