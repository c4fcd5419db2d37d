"""Training checkpoints that cannot be confused: a fingerprint of the run, refusal of another run's or a foreign
file, ``resume=False``, and a non-finite loss that stops before the update."""

import pickle

import numpy as np
import pytest
import torch

from helpers import TINY_1D
from rddpm_signals import RobustDiffusion
from rddpm_signals.diffusion import NoiseSchedule, make_noise_fn
from rddpm_signals.losses import make_loss
from rddpm_signals.nets import UNet
from rddpm_signals.training import TrainConfig, train

PARAMS = {**TINY_1D, "self_clean": False}


def _data(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(8, 1, 32)).astype(np.float32)


def test_same_run_resumes_another_run_is_refused(tmp_path):
    ckpt = str(tmp_path / "ck.pt")
    first = RobustDiffusion(**PARAMS, checkpoint_path=ckpt).fit(_data())
    again = RobustDiffusion(**PARAMS, checkpoint_path=ckpt).fit(_data())  # the finished run: nothing to train
    np.testing.assert_array_equal(again.loss_history_, first.loss_history_)
    with pytest.raises(ValueError, match=r"is of another run: data .* differ; pass resume=False") as err:
        RobustDiffusion(**PARAMS, checkpoint_path=ckpt).fit(_data(seed=1))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"is of another run: lr \(0\.001 → 0\.005\) differ"):
        RobustDiffusion(**{**PARAMS, "lr": 5e-3}, checkpoint_path=ckpt).fit(_data())
    # scoring settings are not part of the run
    RobustDiffusion(**{**PARAMS, "t0": PARAMS["t0"], "reverse_steps": 3}, checkpoint_path=ckpt).fit(_data())
    fresh = RobustDiffusion(**PARAMS, checkpoint_path=ckpt, resume=False).fit(_data(seed=1))
    plain = RobustDiffusion(**PARAMS).fit(_data(seed=1))
    np.testing.assert_array_equal(fresh.loss_history_, plain.loss_history_)


def test_a_finished_fit_is_not_mistaken_for_a_refit(tmp_path):
    ckpt = str(tmp_path / "ck.pt")
    params = {**TINY_1D, "self_clean": True, "clean_start": 0.5, "clean_rounds": 1}
    RobustDiffusion(**params, checkpoint_path=ckpt).fit(_data())
    with pytest.raises(ValueError, match=r"clean_refits \(0 → 1\)"):
        RobustDiffusion(**params, clean_refits=1, checkpoint_path=ckpt).fit(_data())


def test_foreign_or_malicious_file_at_the_checkpoint_path_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        RobustDiffusion(**PARAMS, checkpoint_path=str(tmp_path / "junk.pt")).fit(_data())
    det = RobustDiffusion(**PARAMS).fit(_data())
    det.save(tmp_path / "model.pt")  # a saved detector is not a checkpoint
    with pytest.raises(ValueError, match="is not a training checkpoint of this package"):
        RobustDiffusion(**PARAMS, checkpoint_path=str(tmp_path / "model.pt")).fit(_data())

    class Boom:
        def __reduce__(self):
            return (open, ("PWNED", "w"))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"net": Boom()}))
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        RobustDiffusion(**PARAMS, checkpoint_path=str(tmp_path / "evil.pt")).fit(_data())
    assert not (tmp_path / "PWNED").exists()


def test_checkpoint_every_is_validated():
    with pytest.raises(ValueError, match="checkpoint_every must be >= 1"):
        RobustDiffusion(**PARAMS, checkpoint_every=0).fit(_data())


def test_non_finite_loss_stops_before_the_update(tmp_path):
    """The loss of step 3 is NaN: the network keeps the weights of three good steps and the last checkpoint."""
    data = torch.randn(8, 1, 16, generator=torch.Generator().manual_seed(0))
    sched = NoiseSchedule.create("linear", 50)

    class NanAt:
        def __init__(self, bad_call: int | None):
            self.inner, self.calls, self.bad_call = make_loss("mse"), 0, bad_call

        def __call__(self, *args, **kwargs):
            out = self.inner(*args, **kwargs)
            self.calls += 1
            if self.calls - 1 == self.bad_call:
                out.loss = out.loss * float("nan")
            return out

        def state_dict(self):
            return self.inner.state_dict()

        def load_state_dict(self, state):
            self.inner.load_state_dict(state)

    def stop_after_step_2(step, loss):
        if step == 2:
            raise KeyboardInterrupt

    def run(bad_call: int | None, path, on_step=None):
        torch.manual_seed(0)
        net = UNet(dims=1, in_channels=1, channels=8, channel_mult=(1, 2), attention=False)
        config = TrainConfig(steps=10, batch_size=4, checkpoint_path=str(path), checkpoint_every=2)
        gen = torch.Generator().manual_seed(1)
        noise = make_noise_fn("gaussian")
        return net, lambda: train(net, data, sched, NanAt(bad_call), noise, config, gen, cpu, on_step=on_step)

    cpu = torch.device("cpu")
    good, go = run(None, tmp_path / "good.pt", on_step=stop_after_step_2)  # three good updates, then stop
    with pytest.raises(KeyboardInterrupt):
        go()
    net, go = run(3, tmp_path / "bad.pt")
    with pytest.raises(FloatingPointError, match=r"became nan at step 3 \(not applied\); the checkpoint \(step 2\)"):
        go()
    for p, q in zip(net.parameters(), good.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert torch.load(tmp_path / "bad.pt", weights_only=True)["step"] == 2


def test_a_failed_fit_leaves_the_detector_as_it_was(tmp_path):
    det = RobustDiffusion(**PARAMS)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    det.set_params(checkpoint_path=str(tmp_path / "junk.pt"))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        det.fit(_data())  # fails after the normalisation was computed
    assert not [k for k in vars(det) if k.endswith("_")]  # nothing half-set
    det.set_params(checkpoint_path=None).fit(_data())
    fitted = {k: v for k, v in vars(det).items() if k.endswith("_")}
    maps = det.anomaly_map(_data())
    det.set_params(checkpoint_path=str(tmp_path / "junk.pt"))
    with pytest.raises(ValueError):
        det.fit(_data(seed=1) * 100)
    assert {k: v for k, v in vars(det).items() if k.endswith("_")}.keys() == fitted.keys()
    assert all(vars(det)[k] is v for k, v in fitted.items())  # the previous fit, untouched
    np.testing.assert_array_equal(det.set_params(checkpoint_path=None).anomaly_map(_data()), maps)
