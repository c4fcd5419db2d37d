"""Multi-octave simplex noise (AnoDDPM): shape, determinism, standardisation, spatial correlation, and the
AnoDDPM configuration of RobustDiffusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rddpm_signals import RobustDiffusion
from rddpm_signals.diffusion.noise import make_noise_fn
from rddpm_signals.diffusion.simplex import simplex_noise


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def lag1(x: torch.Tensor, axis: int) -> float:
    """Lag-1 autocorrelation along ``axis`` of zero-mean fields, pooled over everything else."""
    a = x.double()
    n = a.shape[axis]
    head, tail = a.narrow(axis, 0, n - 1), a.narrow(axis, 1, n - 1)
    return float((head * tail).mean() / (a * a).mean())


@pytest.mark.parametrize("shape", [(3, 2, 37), (2, 3, 13, 17), (1, 1, 64, 64), (4, 4, 256)])
def test_shape_dtype_and_standardisation(shape):
    noise = simplex_noise(shape, gen(0))
    assert noise.shape == shape and noise.dtype == torch.float32 and noise.device.type == "cpu"
    fields = noise.reshape(shape[0] * shape[1], -1).double()
    np.testing.assert_allclose(fields.mean(dim=1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(fields.var(dim=1, unbiased=False).numpy(), 1.0, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 2, 50), (2, 1, 24, 20)])
def test_deterministic_per_seed_and_different_across_seeds(shape):
    a, b, c = simplex_noise(shape, gen(3)), simplex_noise(shape, gen(3)), simplex_noise(shape, gen(4))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # Successive draws from one generator differ too (fresh noise at every diffusion step).
    g = gen(5)
    assert not torch.allclose(simplex_noise(shape, g), simplex_noise(shape, g))


def test_samples_and_channels_are_independent_fields():
    noise = simplex_noise((8, 4, 32, 32), gen(1)).reshape(32, -1).double()
    corr = torch.corrcoef(noise)
    off_diagonal = corr[~torch.eye(32, dtype=torch.bool)]
    assert off_diagonal.abs().max() < 0.9
    assert off_diagonal.abs().mean() < 0.25


def test_spatially_correlated_unlike_gaussian_noise():
    simplex_2d = simplex_noise((8, 1, 64, 64), gen(2))
    gaussian_2d = torch.randn((8, 1, 64, 64), generator=gen(2))
    for axis in (2, 3):
        assert lag1(simplex_2d, axis) > 0.5
        assert abs(lag1(gaussian_2d, axis)) < 0.05
    simplex_1d = simplex_noise((16, 2, 256), gen(2))
    assert lag1(simplex_1d, 2) > 0.5
    assert abs(lag1(torch.randn((16, 2, 256), generator=gen(2)), 2)) < 0.05


def test_octaves_persistence_and_frequency_change_the_field():
    base = simplex_noise((2, 1, 48, 48), gen(6))
    smoother = simplex_noise((2, 1, 48, 48), gen(6), octaves=1)
    assert lag1(smoother, 3) > lag1(base, 3)
    assert not torch.allclose(base, simplex_noise((2, 1, 48, 48), gen(6), persistence=0.5))
    assert not torch.allclose(base, simplex_noise((2, 1, 48, 48), gen(6), frequency=1 / 16))


def test_bad_shapes_and_parameters_raise():
    with pytest.raises(ValueError, match="shape"):
        simplex_noise((4, 16), gen(0))
    with pytest.raises(ValueError, match="shape"):
        simplex_noise((2, 1, 0, 5), gen(0))
    with pytest.raises(ValueError, match="octaves"):
        simplex_noise((2, 1, 8), gen(0), octaves=0)


def test_noise_dispatch_and_anoddpm_configuration():
    noise = make_noise_fn("simplex")((2, 1, 16, 16), gen(0))
    torch.testing.assert_close(noise, simplex_noise((2, 1, 16, 16), gen(0)), rtol=0, atol=0)
    X = np.random.default_rng(0).standard_normal((4, 1, 16, 16)).astype(np.float32)
    det = RobustDiffusion(
        dims=2,
        loss="mse",
        noise="simplex",
        channels=8,
        channel_mult=(1, 2),
        attention=False,
        train_steps=2,
        timesteps=50,
        t0=3,
        batch_size=4,
        verbose=False,
        device="cpu",
    )
    maps = det.fit(X).anomaly_map(X[:2])
    assert maps.shape == (2, 16, 16) and np.all(np.isfinite(maps))
    np.testing.assert_array_equal(det.anomaly_map(X[:2]), maps)
