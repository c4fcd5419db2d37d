"""Multi-octave simplex gradient noise for AnoDDPM (Wyatt et al., CVPR-W 2022), in 1D and 2D, written in torch.

AnoDDPM replaces the Gaussian noise of the forward and reverse process by spatially correlated simplex noise, so
that a partial diffusion destroys whole low-frequency structures (large defects) and not only pixel-level detail.
This module provides the generator that ``noise="simplex"`` dispatches to:

- 2D: simplex noise on the skewed triangular lattice (Perlin 2001, as described by Gustavson 2005): three
  surrounding lattice corners each add ``max(0, 0.5 - |d|²)⁴ · (g · d)`` with a pseudo-random unit gradient ``g``.
- 1D: its analogue on the integer lattice: the two surrounding points each add ``(1 - d²)⁴ · g · d`` with a
  pseudo-random slope ``g`` in ``[-1, 1]``.

Octaves: ``octaves`` layers (AnoDDPM default 6), the first with one lattice cell per ``1 / frequency`` grid points
(default ``frequency = 1/64``: a 64-pixel cell), each next one at twice the frequency and ``persistence`` (0.8)
times the amplitude. Every (sample, channel) field gets its own random gradient table (a permutation) and a random
continuous offset per octave, all drawn from the caller's ``torch.Generator``, so the noise is deterministic per
seed and independent across samples and channels. Each field is finally standardised to zero mean and unit
variance over its grid, because the forward-process maths assumes unit-variance noise.

Everything is vectorised over fields and grid points; there is no Python loop over pixels (only over octaves).
The arithmetic runs in numpy: torch's intra-op thread pool made these small element-wise kernels 100x slower on a
busy 2-core machine, while numpy's single-threaded kernels stay fast. Only the random draws use torch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["simplex_noise", "simplex_field_1d", "simplex_field_2d"]

_TABLE = 256  # lattice hash period (gradient-table size)
_F2 = 0.5 * (math.sqrt(3.0) - 1.0)  # skew factor of the 2D simplex lattice
_G2 = (3.0 - math.sqrt(3.0)) / 6.0  # unskew factor
_N_GRAD_2D = 16  # gradient directions, evenly spread on the unit circle
_ANGLES = 2.0 * np.pi * np.arange(_N_GRAD_2D) / _N_GRAD_2D
_GX, _GY = np.cos(_ANGLES), np.sin(_ANGLES)


def _lookup(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[f, index[f, p] mod 256]`` for a per-field table ``(F, 256)`` and integer indices ``(F, P)``."""
    return np.take_along_axis(table, index & (_TABLE - 1), axis=1)


def simplex_field_2d(y: np.ndarray, x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """One octave of 2D simplex noise at coordinates ``y``, ``x`` ``(F, P)`` (float64, lattice units) with a
    per-field permutation ``perm`` ``(F, 256)`` of ``0 … 255`` (int64) → ``(F, P)`` float64, roughly in
    ``[-1, 1]``."""
    skew = (x + y) * _F2
    i = np.floor(x + skew)
    j = np.floor(y + skew)
    unskew = (i + j) * _G2
    x0 = x - (i - unskew)
    y0 = y - (j - unskew)
    i, j = i.astype(np.int64), j.astype(np.int64)
    # The middle corner of the triangle: step along x first in the lower triangle, along y in the upper one.
    i1 = (x0 > y0).astype(np.int64)
    j1 = 1 - i1
    corners = (
        (x0, y0, i, j),
        (x0 - i1 + _G2, y0 - j1 + _G2, i + i1, j + j1),
        (x0 - 1.0 + 2.0 * _G2, y0 - 1.0 + 2.0 * _G2, i + 1, j + 1),
    )
    total = np.zeros_like(x)
    for dx, dy, ci, cj in corners:
        gradient = _lookup(perm, ci + _lookup(perm, cj)) % _N_GRAD_2D
        falloff = np.maximum(0.5 - dx * dx - dy * dy, 0.0)
        falloff *= falloff
        total += falloff * falloff * (_GX[gradient] * dx + _GY[gradient] * dy)
    return 70.0 * total


def simplex_field_1d(x: np.ndarray, slopes: np.ndarray) -> np.ndarray:
    """One octave of 1D simplex-style gradient noise at coordinates ``x`` ``(F, P)`` (float64, lattice units)
    with a per-field slope table ``slopes`` ``(F, 256)`` (float64 in ``[-1, 1]``) → ``(F, P)`` float64."""
    i = np.floor(x)
    d0 = x - i
    i = i.astype(np.int64)
    total = np.zeros_like(x)
    for d, ci in ((d0, i), (d0 - 1.0, i + 1)):
        falloff = np.maximum(1.0 - d * d, 0.0)
        falloff *= falloff
        total += falloff * falloff * _lookup(slopes, ci) * d
    return total


def simplex_noise(
    shape: tuple[int, ...],
    generator: torch.Generator,
    octaves: int = 6,
    persistence: float = 0.8,
    frequency: float = 1.0 / 64.0,
) -> torch.Tensor:
    """Multi-octave simplex noise of ``shape`` ``(B, C, L)`` or ``(B, C, H, W)``, float32 on the CPU, each
    ``(b, c)`` field standardised to zero mean and unit variance.

    ``generator`` (a CPU ``torch.Generator``) supplies every random choice: same generator state → same noise.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise ValueError(f"simplex noise needs a non-empty shape (B, C, L) or (B, C, H, W), got {shape}")
    if octaves < 1 or persistence <= 0.0 or frequency <= 0.0:
        raise ValueError(
            f"simplex noise needs octaves >= 1 and persistence, frequency > 0, got {octaves}, {persistence}, "
            f"{frequency}"
        )
    n_fields, grid = shape[0] * shape[1], shape[2:]
    two_d = len(grid) == 2
    if two_d:
        rows, cols = np.meshgrid(
            np.arange(grid[0], dtype=np.float64), np.arange(grid[1], dtype=np.float64), indexing="ij"
        )
        coords = (rows.reshape(1, -1), cols.reshape(1, -1))
    else:
        coords = (np.arange(grid[0], dtype=np.float64).reshape(1, -1),)

    out = np.zeros((n_fields, math.prod(grid)), dtype=np.float64)
    amplitude, scale = 1.0, float(frequency)
    for _ in range(octaves):
        # A fresh lattice per octave and field: random gradient table and a continuous offset of up to one period.
        offset = torch.rand((n_fields, len(grid)), generator=generator, dtype=torch.float64).numpy() * _TABLE
        if two_d:
            perm = torch.argsort(torch.rand((n_fields, _TABLE), generator=generator), dim=1).numpy()
            layer = simplex_field_2d(coords[0] * scale + offset[:, :1], coords[1] * scale + offset[:, 1:], perm)
        else:
            slopes = torch.rand((n_fields, _TABLE), generator=generator, dtype=torch.float64).numpy() * 2.0 - 1.0
            layer = simplex_field_1d(coords[0] * scale + offset, slopes)
        out += amplitude * layer
        amplitude *= persistence
        scale *= 2.0

    out -= out.mean(axis=1, keepdims=True)
    std = out.std(axis=1, keepdims=True)
    # A one-point grid (or a field that happens to be flat) has no variance to standardise: leave it at zero.
    out = np.divide(out, std, out=np.zeros_like(out), where=std > 1e-12)
    return torch.from_numpy(out.astype(np.float32).reshape(shape))
