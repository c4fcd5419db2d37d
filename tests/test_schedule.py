"""Golden values and closed-form properties of the noise schedules and the forward process."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rddpm_signals.diffusion import NoiseSchedule, cosine_betas, linear_betas, space_timesteps

# ᾱ_t computed independently (sum of log1p in plain Python floats) from the published schedule definitions.
LINEAR_1000 = {
    0: 0.9999,
    9: 0.9981052047858346,
    99: 0.8970181456749604,
    499: 0.07858724288177824,
    999: 4.0358297653756794e-05,
}
LINEAR_100 = {0: 0.999, 9: 0.9038131959233793, 49: 0.07419699671741999, 99: 2.0390089755640775e-05}
# Cosine: ᾱ_t = f((t+1)/T) / f(0) with f(u) = cos²((u + s)/(1 + s) · π/2), s = 0.008 (no clipping before t = 999).
COSINE_1000 = {
    0: 0.999958715775178,
    9: 0.9993687184016583,
    99: 0.972092737113969,
    499: 0.49384359044063775,
    899: 0.024091724140085854,
    989: 0.00024285722793500594,
}


@pytest.mark.parametrize(
    "betas, golden",
    [(linear_betas(1000), LINEAR_1000), (linear_betas(100), LINEAR_100), (cosine_betas(1000), COSINE_1000)],
    ids=["linear-1000", "linear-100", "cosine-1000"],
)
def test_alpha_bar_golden_values(betas, golden):
    alpha_bar = NoiseSchedule(betas).alphas_cumprod
    for t, expected in golden.items():
        assert alpha_bar[t] == pytest.approx(expected, rel=1e-10), t


def test_linear_rescaling_keeps_the_total_noise():
    # β is rescaled for T ≠ 1000, so a 100-step schedule ends near the 1000-step one's noise level.
    short, long = NoiseSchedule(linear_betas(100)), NoiseSchedule(linear_betas(1000))
    assert short.alphas_cumprod[-1] < 1e-4 and long.alphas_cumprod[-1] < 1e-4
    assert abs(short.alphas_cumprod[49] - long.alphas_cumprod[499]) < 0.01


def test_cosine_betas_are_clipped():
    assert cosine_betas(1000).max() <= 0.999


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_step_counts_raise(bad):
    with pytest.raises(ValueError, match="num_steps"):
        linear_betas(bad)


def test_unknown_schedule_raises():
    with pytest.raises(ValueError, match="linear"):
        NoiseSchedule.create("quadratic", 10)


@pytest.mark.parametrize("t", [0, 99, 600])
def test_q_sample_mean_and_variance(t):
    sched = NoiseSchedule.create("linear", 1000)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((10_000, 1), 1.5, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=gen, dtype=torch.float64)
    xt = sched.q_sample(x0, torch.full((10_000,), t), noise)
    ab = sched.alphas_cumprod[t]
    # 10k draws: the sample mean's s.e. is sqrt((1-ab)/1e4); allow 4 s.e.
    assert float(xt.mean()) == pytest.approx(np.sqrt(ab) * 1.5, abs=4 * np.sqrt((1 - ab) / 1e4) + 1e-12)
    assert float(xt.var()) == pytest.approx(1 - ab, rel=0.05, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(t=st.integers(1, 999), x0=st.floats(-3, 3), xt=st.floats(-3, 3))
def test_posterior_matches_bayes_rule(t, x0, xt):
    """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): product of two Gaussians in x_{t-1}."""
    s = NoiseSchedule.create("linear", 1000)
    beta, ab_prev = s.betas[t], s.alphas_cumprod[t - 1]
    # precision-weighted combination
    prec = (1 - beta) / beta + 1 / (1 - ab_prev)
    mean = ((np.sqrt(1 - beta) / beta) * xt + (np.sqrt(ab_prev) / (1 - ab_prev)) * x0) / prec
    m, v, _ = s.q_posterior(
        torch.tensor([[x0]], dtype=torch.float64), torch.tensor([[xt]], dtype=torch.float64), torch.tensor([t])
    )
    assert float(m) == pytest.approx(mean, rel=1e-9, abs=1e-9)
    assert float(v) == pytest.approx(1 / prec, rel=1e-9)


def test_eps_and_x0_predictions_invert_each_other():
    s = NoiseSchedule.create("cosine", 200)
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 2, 9, generator=gen, dtype=torch.float64)
    eps = torch.randn(4, 2, 9, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 10, 100, 199])
    xt = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.predict_x0_from_eps(xt, t, eps), x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s.predict_eps_from_x0(xt, t, x0), eps, rtol=1e-9, atol=1e-9)


def test_respacing_keeps_alpha_bar_at_kept_steps():
    s = NoiseSchedule.create("linear", 1000)
    kept = space_timesteps(1000, 10, last=99)
    r = s.respace(kept)
    assert r.num_steps == len(kept) == 10
    np.testing.assert_allclose(r.alphas_cumprod, s.alphas_cumprod[kept], rtol=1e-12)
    np.testing.assert_array_equal(r.timestep_map, kept)
    assert kept[0] == 0 and kept[-1] == 99


def test_space_timesteps_edges():
    assert space_timesteps(1000, 1, last=49) == [49]
    assert space_timesteps(1000, 500, last=9) == list(range(10))
    with pytest.raises(ValueError):
        space_timesteps(1000, 0)
