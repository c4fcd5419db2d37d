"""Reverse steps and partial-diffusion reconstruction."""

import pytest
import torch

from rddpm_signals.diffusion import NoiseSchedule, reconstruct


def oracle_for(x0: torch.Tensor, schedule: NoiseSchedule):
    """A perfect noise predictor for data that is exactly ``x0``."""

    def eps_model(x_t, t):
        return schedule.predict_eps_from_x0(x_t, t, x0)

    return eps_model


def zero_model(x_t, t):
    return torch.zeros_like(x_t)


@pytest.fixture
def x():
    return torch.randn(3, 2, 17, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_t0_zero_returns_the_input(x):
    s = NoiseSchedule.create("linear", 100)
    out = reconstruct(zero_model, x, s, 0)
    torch.testing.assert_close(out, x, rtol=0, atol=0)
    assert out is not x


def test_ddim_eta_zero_is_deterministic_in_the_reverse_chain(x):
    """With η = 0 only the forward noise is random: the same generator seed gives the same output, and two
    different seeds give outputs that differ only through the starting point."""
    s = NoiseSchedule.create("linear", 100)
    run = lambda seed: reconstruct(  # noqa: E731
        zero_model, x, s, 30, sampler="ddim", reverse_steps=5, generator=torch.Generator().manual_seed(seed)
    )
    torch.testing.assert_close(run(1), run(1), rtol=0, atol=0)
    assert not torch.equal(run(1), run(2))


def test_ddim_eta_zero_does_not_draw_noise_after_the_forward_step(x):
    s = NoiseSchedule.create("linear", 100)
    calls = []

    def counting_noise(shape, generator):
        calls.append(shape)
        return torch.randn(shape, generator=generator)

    reconstruct(zero_model, x, s, 30, sampler="ddim", reverse_steps=6, noise_fn=counting_noise)
    assert len(calls) == 1


@pytest.mark.parametrize("sampler, steps", [("ddpm", None), ("ddpm", 7), ("ddim", None), ("ddim", 10), ("ddim", 1)])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_oracle_model_reconstructs_exactly(x, sampler, steps, kind):
    """If the network knows x0, every chain must return x0 (up to float error): the update maths is right."""
    s = NoiseSchedule.create(kind, 200)
    out = reconstruct(oracle_for(x, s), x, s, 60, sampler=sampler, reverse_steps=steps)
    torch.testing.assert_close(out, x, rtol=1e-7, atol=1e-7)


def test_ddim_with_eta_one_is_stochastic_but_seeded(x):
    s = NoiseSchedule.create("linear", 100)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    a = reconstruct(zero_model, x, s, 40, sampler="ddim", reverse_steps=8, eta=1.0, generator=gen())
    b = reconstruct(zero_model, x, s, 40, sampler="ddim", reverse_steps=8, eta=1.0, generator=gen())
    c = reconstruct(zero_model, x, s, 40, sampler="ddim", reverse_steps=8, eta=0.0, generator=gen())
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


def test_model_is_called_with_original_timesteps(x):
    s = NoiseSchedule.create("linear", 1000)
    seen = []

    def spy(x_t, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x_t)

    reconstruct(spy, x, s, 100, sampler="ddim", reverse_steps=4)
    assert seen == [99, 66, 33, 0]
    seen.clear()
    reconstruct(spy, x, s, 10, sampler="ddpm")
    assert seen == list(range(9, -1, -1))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"t0": 101}, "t0"), ({"t0": 5, "sampler": "euler"}, "sampler"), ({"t0": 5, "reverse_steps": 0}, "reverse")],
)
def test_bad_arguments_raise(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        reconstruct(zero_model, x, NoiseSchedule.create("linear", 100), **kwargs)
