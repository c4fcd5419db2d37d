"""Diffusion maths kept apart from any network: schedules, forward process, reverse steps, noise."""

from .noise import gaussian_noise, make_noise_fn
from .sampler import DDIMSampler, DDPMSampler, reconstruct
from .schedule import NoiseSchedule, cosine_betas, linear_betas, make_betas, space_timesteps

__all__ = [
    "NoiseSchedule",
    "linear_betas",
    "cosine_betas",
    "make_betas",
    "space_timesteps",
    "DDPMSampler",
    "DDIMSampler",
    "reconstruct",
    "gaussian_noise",
    "make_noise_fn",
]
