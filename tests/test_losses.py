"""Robust losses: definitions, limits and trimming."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rddpm_signals.losses import LOSSES, huber, l1, make_loss, mse, pseudo_huber, trimmed_mask

floats = st.floats(-50, 50, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(r=floats, delta=st.floats(0.01, 10))
def test_huber_definition(r, delta):
    value = float(huber(torch.tensor(r, dtype=torch.float64), delta))
    expected = 0.5 * r * r if abs(r) <= delta else delta * (abs(r) - delta / 2)
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_huber_is_continuous_with_continuous_slope_at_delta():
    delta = 0.7
    r = torch.tensor([delta - 1e-7, delta + 1e-7], dtype=torch.float64, requires_grad=True)
    h = huber(r, delta)
    assert abs(float((h[1] - h[0]).detach())) < 1e-6
    (g,) = torch.autograd.grad(h.sum(), r)
    assert abs(float(g[1] - g[0])) < 1e-6


def test_huber_approaches_mse_and_l1_in_its_limits():
    r = torch.linspace(-5, 5, 101, dtype=torch.float64)
    torch.testing.assert_close(huber(r, 1e6), mse(r))
    # huber(δ)/δ = |r| - δ/2 beyond δ → |r| as δ → 0
    for delta in (1e-2, 1e-4):
        assert float((huber(r, delta) / delta - l1(r)).abs().max()) <= delta / 2 + 1e-12


def test_pseudo_huber_limits():
    r = torch.linspace(-4, 4, 81, dtype=torch.float64)
    torch.testing.assert_close(pseudo_huber(r, 1e4), mse(r), rtol=1e-6, atol=1e-6)
    c = 1e-3
    torch.testing.assert_close(pseudo_huber(r, c) / c, l1(r), rtol=0, atol=c)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=40, unique=True),
    trim=st.floats(0, 0.95),
)
def test_trimmed_mask_drops_exactly_the_k_worst(values, trim):
    v = torch.tensor(values, dtype=torch.float64)
    mask = trimmed_mask(v, trim)
    keep = max(1, math.ceil((1 - trim) * len(values) - 1e-9))
    assert int(mask.sum()) == keep
    if keep < len(values):
        assert float(v[mask].max()) < float(v[~mask].min())


def test_lts_loss_ignores_the_worst_samples_entirely():
    loss = make_loss("lts", trim=0.25)
    target = torch.zeros(8, 1, 4)
    pred = torch.full((8, 1, 4), 0.1, requires_grad=True)
    with torch.no_grad():
        pred[3] = 10.0
        pred[6] = 5.0
    out = loss(pred, target, torch.zeros(8, dtype=torch.long))
    assert out.kept.tolist() == [True, True, True, False, True, True, False, True]
    assert float(out.loss.detach()) == pytest.approx(0.5 * 0.01)
    (g,) = torch.autograd.grad(out.loss, pred)
    assert float(g[3].abs().sum()) == 0 and float(g[6].abs().sum()) == 0
    assert float(g[0].abs().sum()) > 0
    assert out.per_sample.shape == (8,)


def test_every_registered_loss_returns_scalar_and_per_sample():
    pred, target = torch.randn(5, 2, 7), torch.randn(5, 2, 7)
    for name in LOSSES:
        loss = make_loss(name, alphas_cumprod=np.linspace(0.99, 0.01, 1000))
        out = loss(pred, target, torch.zeros(5, dtype=torch.long))
        assert out.loss.ndim == 0 and out.per_sample.shape == (5,) and out.kept.dtype == torch.bool


@pytest.mark.parametrize(
    "name, kwargs, match",
    [("tukey-ish", {}, "unknown loss"), ("huber", {"delta": 0}, "delta"), ("lts", {"trim": 1.0}, "trim")],
)
def test_bad_loss_arguments(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_loss(name, **kwargs)
