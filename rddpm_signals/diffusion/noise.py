"""Noise generators for training and sampling.

Every generator draws from a ``torch.Generator``: scoring and CPU training pass a CPU generator (the result is then
moved, so the same seed gives the same numbers on any device); CUDA training passes a generator on the GPU for
Gaussian noise (drawn where it is used; see ``training._noise_generator``). Each returns a float tensor of
``shape`` with zero mean and unit variance per element (in distribution), which the forward-process maths assumes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["gaussian_noise", "make_noise_fn", "NOISE_KINDS"]

NoiseFn = Callable[[tuple[int, ...], torch.Generator], torch.Tensor]


def gaussian_noise(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Standard normal noise of ``shape`` ``(B, C, L)`` or ``(B, C, H, W)``, float32 on ``generator``'s device."""
    device = "cpu" if generator is None else generator.device
    return torch.randn(shape, generator=generator, dtype=torch.float32, device=device)


def _simplex(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    from .simplex import simplex_noise

    return simplex_noise(shape, generator)


NOISE_KINDS: dict[str, NoiseFn] = {"gaussian": gaussian_noise, "simplex": _simplex}


def make_noise_fn(kind: str) -> NoiseFn:
    """The noise generator named ``kind`` (``"gaussian"`` or ``"simplex"``)."""
    try:
        return NOISE_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown noise {kind!r}: use one of {sorted(NOISE_KINDS)}") from None
