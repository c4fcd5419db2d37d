"""The CUDA policy of the training loop, run on the CPU through ``TrainConfig(read_every=k)``: losses read from the
device every ``k`` steps give the same history and weights as reading every step, and a non-finite loss still
stops training (late, naming the step it happened at) without a checkpoint after it."""

import numpy as np
import pytest
import torch

from rddpm_signals.diffusion import NoiseSchedule, make_noise_fn
from rddpm_signals.losses import make_loss
from rddpm_signals.nets import UNet
from rddpm_signals.training import TrainConfig, train


class NanAt:
    """The Huber loss, made NaN at one call."""

    def __init__(self, bad_call: int | None):
        self.inner, self.bad_call, self.calls, self.shard = make_loss("huber"), bad_call, 0, None

    def __call__(self, *args, **kwargs):
        out = self.inner(*args, **kwargs)
        if self.calls == self.bad_call:
            out.loss = out.loss * float("nan")
        self.calls += 1
        return out

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def _train(read_every: int | None, bad_call: int | None = None, path=None, steps: int = 9):
    torch.manual_seed(0)
    net = UNet(dims=1, in_channels=1, channels=8, channel_mult=(1, 2), attention=False)
    data = torch.randn(10, 1, 16, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(
        steps=steps, batch_size=4, read_every=read_every, checkpoint_path=path and str(path), checkpoint_every=2
    )
    sched, noise = NoiseSchedule.create("linear", 50), make_noise_fn("gaussian")
    generator = torch.Generator().manual_seed(1)
    return train(net, data, sched, NanAt(bad_call), noise, config, generator, torch.device("cpu"))


def test_reading_the_loss_every_k_steps_changes_nothing():
    every, late = _train(None), _train(4)
    assert len(late.history) == 9
    np.testing.assert_array_equal(late.history, every.history)
    for p, q in zip(late.ema.parameters(), every.ema.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_a_late_read_non_finite_loss_still_stops_and_leaves_no_checkpoint_after_it(tmp_path):
    with pytest.raises(FloatingPointError, match=r"became nan at step 5 \(found at step 7: on CUDA the loss is read"):
        _train(4, bad_call=5)
    with pytest.raises(FloatingPointError, match=r"became nan at step 3 \(found at step 3.*the checkpoint \(step 2\)"):
        _train(4, bad_call=3, path=tmp_path / "ck.pt")
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["step"] == 2
    with pytest.raises(ValueError, match="read_every must be >= 1"):
        _train(0)
