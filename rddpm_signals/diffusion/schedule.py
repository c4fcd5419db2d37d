"""Noise schedules and the closed-form maths of the forward process.

Timestep convention (as in improved-diffusion): index ``t`` in ``0 … T-1`` means that ``t + 1`` noising steps
have been applied, so ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε`` with ``ᾱ_t = prod_{s<=t} (1 - β_s)``.
Partial diffusion "to ``t0``" (``t0`` a count of steps, ``0 … T``) therefore lands at index ``t0 - 1``; ``t0 = 0``
means no noise at all.

All tensors broadcast over any number of trailing dimensions: ``x`` may be ``(B, C, L)`` or ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["linear_betas", "cosine_betas", "make_betas", "NoiseSchedule", "space_timesteps"]


def linear_betas(num_steps: int = 1000) -> np.ndarray:
    """Ho et al.'s linear schedule, rescaled so that any ``num_steps`` spans the same total noise as T = 1000.

    Returns a float64 array of shape ``(num_steps,)``.
    """
    _check_num_steps(num_steps)
    scale = 1000.0 / num_steps
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)


def cosine_betas(num_steps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """Nichol & Dhariwal's cosine schedule: ``ᾱ(t) = cos²((t/T + s) / (1 + s) · π/2)``, β clipped at ``max_beta``.

    Returns a float64 array of shape ``(num_steps,)``.
    """
    _check_num_steps(num_steps)

    def alpha_bar(u: float) -> float:
        return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1.0 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta) for i in range(num_steps)]
    return np.asarray(betas, dtype=np.float64)


def make_betas(kind: str, num_steps: int) -> np.ndarray:
    """``"linear"`` or ``"cosine"`` betas of length ``num_steps``."""
    if kind == "linear":
        return linear_betas(num_steps)
    if kind == "cosine":
        return cosine_betas(num_steps)
    raise ValueError(f"unknown schedule {kind!r}: use 'linear' or 'cosine'")


def _check_num_steps(num_steps: int) -> None:
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")


def _gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``table[t]`` (a float64 table on ``t``'s device) as a tensor shaped ``(B, 1, …, 1)`` to broadcast against
    ``like`` ``(B, …)``."""
    return table[t].to(like.dtype).reshape(t.shape[0], *([1] * (like.ndim - 1)))


class NoiseSchedule:
    """The fixed quantities of a DDPM forward process and the Gaussian posterior ``q(x_{t-1} | x_t, x_0)``.

    Parameters
    ----------
    betas:
        Per-step variances, shape ``(T,)``, each in ``(0, 1)``.
    timestep_map:
        For a respaced schedule, the original-schedule index of each step (what the network was trained on).
        ``None`` means the identity.
    """

    def __init__(self, betas: np.ndarray | Sequence[float], timestep_map: Sequence[int] | None = None):
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or betas.size == 0:
            raise ValueError("betas must be a non-empty 1-D array")
        if np.any(betas <= 0) or np.any(betas >= 1):
            raise ValueError("every beta must lie in (0, 1)")
        self.betas = betas
        self.num_steps = int(betas.size)
        self.timestep_map = np.arange(self.num_steps) if timestep_map is None else np.asarray(timestep_map)
        if self.timestep_map.shape != betas.shape:
            raise ValueError("timestep_map must have one entry per beta")

        alphas = 1.0 - betas
        self.alphas_cumprod = np.cumprod(alphas)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # The variance is 0 at t = 0; the log is clipped there, as in improved-diffusion.
        self.posterior_log_variance_clipped = np.log(
            np.append(self.posterior_variance[1] if self.num_steps > 1 else betas[0], self.posterior_variance[1:])
        )
        self.posterior_mean_coef1 = betas * np.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)
        self.one_minus_alphas_cumprod = 1.0 - self.alphas_cumprod
        self._tables: dict[tuple[str, torch.device], torch.Tensor] = {}

    def _table(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """The float64 array attribute ``name`` as a tensor on ``t``'s device, made once per device and kept (a
        training step on CUDA must not copy the tables from the host every time)."""
        key = (name, t.device)
        if key not in self._tables:
            self._tables[key] = torch.as_tensor(getattr(self, name), device=t.device)
        return self._tables[key]

    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``self.<name>[t]`` shaped ``(B, 1, …, 1)`` in ``like``'s dtype."""
        return _gather(self._table(name, t), t, like)

    @classmethod
    def create(cls, kind: str = "linear", num_steps: int = 1000) -> NoiseSchedule:
        return cls(make_betas(kind, num_steps))

    # ----------------------------------------------------------------- forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t ~ q(x_t | x_0)``. ``x0``, ``noise``: ``(B, …)``; ``t``: ``(B,)`` long."""
        return self._at("sqrt_alphas_cumprod", t, x0) * x0 + self._at("sqrt_one_minus_alphas_cumprod", t, x0) * noise

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``(B, …)`` and variance ``(B, 1, …)`` of ``q(x_t | x_0)``."""
        return self._at("sqrt_alphas_cumprod", t, x0) * x0, self._at("one_minus_alphas_cumprod", t, x0)

    # ----------------------------------------------------------------- reverse-process helpers
    def predict_x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        return (
            self._at("sqrt_recip_alphas_cumprod", t, x_t) * x_t - self._at("sqrt_recipm1_alphas_cumprod", t, x_t) * eps
        )

    def predict_eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        return (self._at("sqrt_recip_alphas_cumprod", t, x_t) * x_t - x0) / self._at(
            "sqrt_recipm1_alphas_cumprod", t, x_t
        )

    def q_posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of ``q(x_{t-1} | x_t, x_0)``; variance ``(B, 1, …)``."""
        mean = self._at("posterior_mean_coef1", t, x_t) * x0 + self._at("posterior_mean_coef2", t, x_t) * x_t
        return (
            mean,
            self._at("posterior_variance", t, x_t),
            self._at("posterior_log_variance_clipped", t, x_t),
        )

    # ----------------------------------------------------------------- respacing
    def respace(self, use_timesteps: Sequence[int]) -> NoiseSchedule:
        """A shorter schedule over the kept indices with the same ᾱ at each kept step.

        ``β'_i = 1 - ᾱ_{k_i} / ᾱ_{k_{i-1}}``; ``timestep_map`` maps each new index to the original one, which is
        what the network must be conditioned on.
        """
        kept = sorted({int(k) for k in use_timesteps})
        if not kept or kept[0] < 0 or kept[-1] >= self.num_steps:
            raise ValueError(f"use_timesteps must be indices in [0, {self.num_steps - 1}]")
        new_betas, last = [], 1.0
        for k in kept:
            new_betas.append(1.0 - self.alphas_cumprod[k] / last)
            last = self.alphas_cumprod[k]
        return NoiseSchedule(np.asarray(new_betas), timestep_map=self.timestep_map[kept])


def space_timesteps(num_steps: int, count: int, last: int | None = None) -> list[int]:
    """``count`` indices evenly spread over ``0 … last`` (default ``num_steps - 1``), both ends included."""
    last = num_steps - 1 if last is None else last
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if count == 1:
        return [last]
    count = min(count, last + 1)
    return sorted({int(round(v)) for v in np.linspace(0, last, count)})
