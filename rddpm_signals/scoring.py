"""From a trained noise predictor to anomaly maps: partial-diffusion reconstruction errors, batched, and a robust
per-position normalisation of maps learnt on (contaminated) training maps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .diffusion.noise import NoiseFn
from .diffusion.sampler import reconstruct
from .diffusion.schedule import NoiseSchedule

__all__ = ["ReconstructionSettings", "error_maps", "PositionNormalizer"]


class ReconstructionSettings:
    """How to reconstruct: ``t0`` forward steps, then ``reverse_steps`` of ``sampler`` back (see ``reconstruct``)."""

    def __init__(
        self,
        schedule: NoiseSchedule,
        t0: int,
        sampler: str = "ddpm",
        reverse_steps: int | None = None,
        eta: float = 0.0,
        noise_fn: NoiseFn | None = None,
    ):
        self.schedule, self.t0, self.sampler = schedule, t0, sampler
        self.reverse_steps, self.eta, self.noise_fn = reverse_steps, eta, noise_fn

    def run(self, eps_model: Callable, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        kwargs = {} if self.noise_fn is None else {"noise_fn": self.noise_fn}
        return reconstruct(
            eps_model,
            x,
            self.schedule,
            self.t0,
            sampler=self.sampler,
            reverse_steps=self.reverse_steps,
            eta=self.eta,
            generator=generator,
            **kwargs,
        )


@torch.no_grad()
def error_maps(
    eps_model: Callable,
    Z: torch.Tensor,
    settings: ReconstructionSettings,
    generator: torch.Generator,
    device: torch.device,
    batch_size: int = 64,
    n_reconstructions: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``|z - ẑ|`` averaged over channels and ``n_reconstructions`` draws: ``(N, …grid)`` float32 on the CPU.

    ``Z``: normalised samples ``(N, C, …)`` on the CPU. Also returns the mean reconstruction ``(N, C, …)``.
    """
    maps, recons = [], []
    for start in range(0, Z.shape[0], max(1, batch_size)):
        z = Z[start : start + batch_size]
        zd = z.to(device)
        err = torch.zeros((z.shape[0], *z.shape[2:]))
        rec = torch.zeros(z.shape)
        for _ in range(n_reconstructions):
            r = settings.run(eps_model, zd, generator).float().cpu()
            err += (z - r).abs().mean(dim=1)
            rec += r
        maps.append(err / n_reconstructions)
        recons.append(rec / n_reconstructions)
    return torch.cat(maps), torch.cat(recons)


class PositionNormalizer:
    """Robust z-score of each map position: ``(m - median_n m[n, pos]) / (1.4826 MAD_n m[n, pos])``.

    Fitted on the training maps ``(N, …grid)``; the median and MAD ignore the defects that a minority of training
    samples carry at any one position. Each position's scale is floored at 10 % of the median scale, so positions
    that are always reconstructed perfectly do not blow up.
    """

    def fit(self, maps: np.ndarray) -> PositionNormalizer:
        maps = np.asarray(maps, dtype=np.float64)
        self.center_ = np.median(maps, axis=0)
        mad = 1.4826 * np.median(np.abs(maps - self.center_), axis=0)
        floor = max(0.1 * float(np.median(mad)), 1e-12)
        self.scale_ = np.maximum(mad, floor)
        return self

    def transform(self, maps: np.ndarray) -> np.ndarray:
        maps = np.asarray(maps, dtype=np.float64)
        if maps.shape[1:] != self.center_.shape:
            raise ValueError(
                f"map_normalization='position' was fitted on a {self.center_.shape} grid, got {maps.shape[1:]}: "
                "score samples of the training size or use map_normalization='none'"
            )
        return (maps - self.center_) / self.scale_
