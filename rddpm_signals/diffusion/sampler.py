"""Reverse-process steps (DDPM ancestral, DDIM) and partial-diffusion reconstruction.

A *model* here is any callable ``eps_model(x_t, t) -> ε̂`` with ``x_t`` of shape ``(B, C, …)`` and ``t`` a ``(B,)``
long tensor of *original-schedule* indices; it returns a tensor shaped like ``x_t``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .noise import NoiseFn, gaussian_noise
from .schedule import NoiseSchedule, space_timesteps

__all__ = ["DDPMSampler", "DDIMSampler", "reconstruct", "SAMPLERS"]

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class DDPMSampler:
    """Ancestral sampling with the posterior variance ("fixed small" in improved-diffusion).

    ``schedule`` may be a respaced one; ``step`` takes indices of that schedule.
    """

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def step(self, eps: torch.Tensor, t: int, x_t: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """One step ``x_t → x_{t-1}``. ``noise`` (shaped like ``x_t``) is ignored at ``t = 0``."""
        tt = torch.full((x_t.shape[0],), t, dtype=torch.long, device=x_t.device)
        x0 = self.schedule.predict_x0_from_eps(x_t, tt, eps)
        mean, _, log_var = self.schedule.q_posterior(x0, x_t, tt)
        if t == 0 or noise is None:
            return mean
        return mean + torch.exp(0.5 * log_var) * noise


class DDIMSampler:
    """Song et al.'s DDIM update between any two indices of a schedule; ``eta = 0`` is deterministic."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        self.schedule = schedule
        self.eta = float(eta)

    def step(
        self, eps: torch.Tensor, t: int, t_prev: int, x_t: torch.Tensor, noise: torch.Tensor | None
    ) -> torch.Tensor:
        """Move from index ``t`` to ``t_prev`` (``-1`` = clean data). ``noise`` is used only when ``eta > 0``."""
        ab = float(self.schedule.alphas_cumprod[t])
        ab_prev = 1.0 if t_prev < 0 else float(self.schedule.alphas_cumprod[t_prev])
        x0 = (x_t - np.sqrt(1.0 - ab) * eps) / np.sqrt(ab)
        sigma = self.eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab)) * np.sqrt(max(1.0 - ab / ab_prev, 0.0))
        direction = np.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
        out = np.sqrt(ab_prev) * x0 + direction
        if sigma > 0 and noise is not None:
            out = out + sigma * noise
        return out


SAMPLERS = ("ddpm", "ddim")


@torch.no_grad()
def reconstruct(
    eps_model: EpsModel,
    x: torch.Tensor,
    schedule: NoiseSchedule,
    t0: int,
    *,
    sampler: str = "ddpm",
    reverse_steps: int | None = None,
    eta: float = 0.0,
    noise_fn: NoiseFn = gaussian_noise,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Partial-diffusion reconstruction: noise ``x`` ``(B, C, …)`` with ``t0`` forward steps, then denoise back.

    ``reverse_steps=None`` runs every one of the ``t0`` reverse steps; a smaller count runs a respaced chain over
    evenly spread indices (DDPM) or DDIM jumps between them. ``t0 = 0`` returns a copy of ``x``. Noise is drawn
    on the CPU from ``generator`` and moved to ``x``'s device. Returns a tensor shaped like ``x``.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: use one of {SAMPLERS}")
    if not 0 <= t0 <= schedule.num_steps:
        raise ValueError(f"t0 must lie in [0, {schedule.num_steps}], got {t0}")
    if t0 == 0:
        return x.clone()
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    steps = t0 if reverse_steps is None else int(reverse_steps)
    if steps < 1:
        raise ValueError(f"reverse_steps must be >= 1, got {reverse_steps}")
    kept = space_timesteps(schedule.num_steps, min(steps, t0), last=t0 - 1)

    def draw() -> torch.Tensor:
        return noise_fn(tuple(x.shape), generator).to(device=x.device, dtype=x.dtype)

    def model_at(x_t: torch.Tensor, original_t: int) -> torch.Tensor:
        tt = torch.full((x_t.shape[0],), int(original_t), dtype=torch.long, device=x_t.device)
        return eps_model(x_t, tt).to(x_t.dtype)

    start = torch.full((x.shape[0],), t0 - 1, dtype=torch.long, device=x.device)
    x_t = schedule.q_sample(x, start, draw())

    if sampler == "ddpm":
        # The full chain steps through the original indices; a shorter one through a respaced schedule's.
        full = len(kept) == t0
        ddpm = DDPMSampler(schedule if full else schedule.respace(kept))
        for i in reversed(range(len(kept))):
            eps = model_at(x_t, schedule.timestep_map[kept[i]])
            x_t = ddpm.step(eps, kept[i] if full else i, x_t, draw() if i > 0 else None)
        return x_t

    ddim = DDIMSampler(schedule, eta=eta)
    for i in reversed(range(len(kept))):
        t, t_prev = kept[i], (kept[i - 1] if i > 0 else -1)
        eps = model_at(x_t, schedule.timestep_map[t])
        x_t = ddim.step(eps, t, t_prev, x_t, draw() if eta > 0 and t_prev >= 0 else None)
    return x_t
