"""From a trained noise predictor to anomaly maps: partial-diffusion reconstruction errors, batched, and a robust
per-position normalisation of maps learnt on (contaminated) training maps.

A sample's map is a function of (model, sample) alone on the CPU: bitwise the same whether it is scored alone, in
any batch, with any ``scoring_batch_size``, in any order or in any company. Two things make it so:

- scoring noise is drawn per sample, from a generator seeded by the model's seed and a hash of the sample's own
  values (:func:`sample_seeds`);
- on the CPU the network always sees exactly :data:`NET_ROWS` rows per call (:func:`fixed_rows`; the last block is
  padded with zeros), because a CPU convolution's rounding depends on how many rows it is given (measured: up to
  6e-8 apart between 1 and 13 rows), not on a row's position or its neighbours within a call of fixed size.

On CUDA the network sees the whole batch (speed first); maps then agree across batchings to float rounding only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ._robust import median_spread
from .diffusion.noise import NoiseFn, gaussian_noise
from .diffusion.sampler import reconstruct
from .diffusion.schedule import NoiseSchedule

__all__ = [
    "ReconstructionSettings",
    "error_maps",
    "PositionNormalizer",
    "sample_seeds",
    "per_sample_noise",
    "fixed_rows",
    "NET_ROWS",
]

#: Rows per network call when scoring on the CPU. Part of what a map is a function of: changing it changes maps at
#: float rounding. 8 keeps the padding waste small for one-sample calls and is within 15 % of the fastest block
#: size measured on the CPU (16) for the default 1D and 2D networks.
NET_ROWS = 8


def sample_seeds(Z: torch.Tensor, seed: int) -> list[int]:
    """One 63-bit seed per sample of ``Z`` ``(N, …)``: a hash of ``seed`` and the sample's float32 bytes."""
    values = Z.detach().to("cpu", torch.float32).contiguous().numpy()
    key = int(seed).to_bytes(8, "little", signed=True)
    return [
        int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8, key=key).digest(), "little") >> 1 for row in values
    ]


def per_sample_noise(base: NoiseFn, generators: Sequence[torch.Generator]) -> NoiseFn:
    """A noise function that draws row ``i`` of every ``(B, …)`` request from ``generators[i]`` alone."""

    def draw(shape: tuple[int, ...], _generator: torch.Generator | None = None) -> torch.Tensor:
        if shape[0] != len(generators):
            raise ValueError(f"asked for {shape[0]} noise rows but {len(generators)} sample generators exist")
        return torch.cat([base((1, *shape[1:]), g) for g in generators])

    return draw


def fixed_rows(eps_model: Callable, rows: int = NET_ROWS) -> Callable:
    """``eps_model`` evaluated in blocks of exactly ``rows`` rows: ``(B, C, …)`` in, ``(B, C, …)`` out, for any ``B``.

    The last block is padded with zero rows (their outputs are dropped), so every row is computed by a call of the
    same shape, whatever ``B`` is."""

    def blocked(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n = x_t.shape[0]
        pad = -n % rows
        if pad:
            x_t = torch.cat([x_t, x_t.new_zeros((pad, *x_t.shape[1:]))])
            t = torch.cat([t, t.new_zeros((pad, *t.shape[1:]))])
        out = torch.cat([eps_model(x_t[i : i + rows], t[i : i + rows]) for i in range(0, n + pad, rows)])
        return out[:n]

    return blocked


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

    def run(
        self,
        eps_model: Callable,
        x: torch.Tensor,
        generator: torch.Generator | None,
        noise_fn: NoiseFn | None = None,
    ) -> torch.Tensor:
        """Reconstruct ``x`` ``(B, C, …)``; ``noise_fn`` (else the settings' own) draws with ``generator``."""
        noise_fn = noise_fn or self.noise_fn
        kwargs = {} if noise_fn is None else {"noise_fn": noise_fn}
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
    seed: int,
    device: torch.device,
    batch_size: int = 64,
    n_reconstructions: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``|z - ẑ|`` averaged over channels and ``n_reconstructions`` draws: ``(N, …grid)`` float32 on the CPU.

    ``Z``: normalised samples ``(N, C, …)`` on the CPU. Also returns the mean reconstruction ``(N, C, …)``.
    Each sample's noise comes from its own generator (``seed`` and the sample's values, :func:`sample_seeds`) and,
    on the CPU, the network sees :data:`NET_ROWS` rows per call, so ``batch_size`` and the other samples do not
    change a sample's map (see the module docstring).
    """
    if torch.device(device).type == "cpu":
        eps_model = fixed_rows(eps_model)
    base = settings.noise_fn or gaussian_noise
    seeds = sample_seeds(Z, seed)
    maps, recons = [], []
    for start in range(0, Z.shape[0], max(1, batch_size)):
        z = Z[start : start + batch_size]
        zd = z.to(device)
        noise_fn = per_sample_noise(base, [torch.Generator().manual_seed(s) for s in seeds[start : start + len(z)]])
        err = torch.zeros((z.shape[0], *z.shape[2:]))
        rec = torch.zeros(z.shape)
        for _ in range(n_reconstructions):
            r = settings.run(eps_model, zd, None, noise_fn).float().cpu()
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

    def __init__(self, option: str = "map_normalization='position'", off: str = "map_normalization='none'"):
        self.option, self.off = option, off  # named in the error for a sample off the training grid

    def fit(self, maps: np.ndarray) -> PositionNormalizer:
        maps = np.asarray(maps, dtype=np.float64)
        self.center_, mad = median_spread(maps, axis=0)
        floor = max(0.1 * float(np.median(mad)), 1e-12)
        self.scale_ = np.maximum(mad, floor)
        return self

    def transform(self, maps: np.ndarray) -> np.ndarray:
        maps = np.asarray(maps, dtype=np.float64)
        if maps.shape[1:] != self.center_.shape:
            raise ValueError(
                f"{self.option} was fitted on a {self.center_.shape} grid, got {maps.shape[1:]}: "
                f"score samples of the training size or use {self.off}"
            )
        return (maps - self.center_) / self.scale_
