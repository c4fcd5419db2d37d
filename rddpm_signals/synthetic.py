"""Synthetic local defects for label-free choices at fit time.

A user's training set has no labels, so a choice between scoring options (e.g. ``map_structure``) cannot be made
on their data's real defects. What can be measured without labels is how well each option finds defects *we*
put into the training samples: :func:`inject_defects` writes one local defect into each sample, with its mask,
and :func:`choose_by_injection` compares the options' maps on the injected points. The kinds we inject are a
prior, not the user's defects: where the incumbent map already finds them, a challenger that finds them better
still may do worse on real defects (docs/RESULTS.md §12), so the incumbent is replaced only where it is blind.

The kinds are generic, not those of any built-in data set, and cover both ways a defect shows:

- ``"bump"``: a smooth additive bump (amplitude 0.5–2 robust standard deviations of the sample);
- ``"smooth"``: the local detail removed (texture missing; reconstructs easily, so ``|x - x̂|`` barely sees it);
- ``"noise"``: added white noise (half the sample's robust standard deviation);
- ``"gain"``: the local deviation from the sample's median scaled by 1 ± (0.5–1).

Each defect is an interval (1D) or an ellipse (2D) whose mask covers 2–8 % of the grid, flat in its inner half with
a raised-cosine edge, so its edges are no sharper than the data; its mask is where the window is ≥ 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

from ._robust import median_spread
from .metrics import pixel_auroc
from .thresholds import mad_threshold

__all__ = ["DEFECT_KINDS", "inject_defects", "choose_by_injection", "outlier_share"]

DEFECT_KINDS = ("bump", "smooth", "noise", "gain")


def _taper(grid: Sequence[int], rng: np.random.Generator, area: tuple[float, float]) -> np.ndarray:
    """A window ``(…grid)`` in [0, 1] over a random interval / ellipse: 1 on its inner half, a raised-cosine edge
    outside; where it is >= 0.5 (the mask) covers a share ``area`` (low, high) of the grid."""
    share = rng.uniform(*area)
    per_axis = share if len(grid) == 1 else np.sqrt(4 * share / np.pi)  # an ellipse's axes for that area
    radius = [max(1.0, n * per_axis / 2 / 0.75) for n in grid]  # support half-widths; the mask ends at 0.75
    # on a grid point, so the mask is never empty
    centre = [float(rng.integers(0, n)) for n in grid]
    axes = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in grid], indexing="ij")
    dist = np.sqrt(sum(((a - c) / r) ** 2 for a, c, r in zip(axes, centre, radius, strict=True)))
    edge = np.clip((dist - 0.5) / 0.5, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * edge))


def _mask_half_width(w: np.ndarray) -> float:
    """Half the smallest extent, in grid points, of the mask (``w >= 0.5``) of a window ``w`` ``(…grid)``."""
    idx = np.argwhere(w >= 0.5)
    return float((idx.max(axis=0) - idx.min(axis=0) + 1).min()) / 2


def inject_defects(
    x: np.ndarray,
    rng: np.random.Generator,
    kinds: Sequence[str] = DEFECT_KINDS,
    area: tuple[float, float] = (0.02, 0.08),
    strength: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One synthetic local defect per sample of ``x`` ``(N, C, …grid)``, the kinds taken in turn.

    Returns ``(x_defective (N, C, …grid), mask (N, …grid) bool, kind (N,) int index into kinds)``; the same
    region is used on every channel.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 3:
        raise ValueError(f"inject_defects needs samples (N, C, …grid), got shape {x.shape}")
    unknown = [k for k in kinds if k not in DEFECT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown defect kinds {unknown}: use some of {DEFECT_KINDS}")
    out = x.copy()
    grid = x.shape[2:]
    masks = np.zeros((len(x), *grid), dtype=bool)
    kind_index = np.arange(len(x)) % len(kinds)
    for i, sample in enumerate(x):
        w = _taper(grid, rng, area)[None]  # (1, …grid), shared by the channels
        median, spread = median_spread(sample.reshape(len(sample), -1), axis=1)
        median = median.reshape(-1, *([1] * len(grid)))
        spread = np.maximum(spread, 1e-3 * max(float(np.abs(sample).max()), 1e-12)).reshape(median.shape)
        kind = kinds[kind_index[i]]
        if kind == "bump":
            out[i] = sample + strength * rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 2.0) * spread * w
        elif kind == "smooth":
            sigma = max(1.0, _mask_half_width(w[0]) / 4)  # detail finer than the defect itself
            smooth = gaussian_filter(sample, sigma=(0,) + (sigma,) * len(grid), mode="nearest")
            out[i] = sample + w * (smooth - sample)
        elif kind == "noise":
            out[i] = sample + strength * 0.5 * spread * w * rng.standard_normal(sample.shape)
        else:  # gain
            factor = strength * rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0)
            out[i] = sample + factor * w * (sample - median)
        masks[i] = w[0] >= 0.5
    return out, masks, kind_index


def choose_by_injection(
    candidates: Sequence[str],
    maps_of: Callable[[str], np.ndarray],
    mask: np.ndarray,
    kind_index: np.ndarray,
    margin: float,
    blind: float = 1.0,
) -> tuple[str, np.ndarray]:
    """The candidate whose maps ``maps_of(name) → (N, …grid)`` rank the injected points ``mask`` highest.

    Each candidate's figure is its pixel AUROC averaged over the defect kinds (each kind weighs the same). The
    first candidate is the incumbent: another replaces it only when the incumbent is blind to the defects (its
    figure below ``blind``) and the other scores more than ``margin`` higher. Returns
    ``(choice, figures (len(candidates),))``.
    """
    figures = []
    for name in candidates:
        maps = np.asarray(maps_of(name))
        per_kind = [pixel_auroc(maps[kind_index == k], mask[kind_index == k]) for k in np.unique(kind_index)]
        figures.append(float(np.mean(per_kind)))
    figures = np.asarray(figures)
    best = int(np.argmax(figures))
    replace = figures[0] < blind and figures[best] > figures[0] + margin
    choice = candidates[best] if replace else candidates[0]
    return choice, figures


def outlier_share(scores: np.ndarray, k: float = 3.0) -> float:
    """Share of ``scores`` ``(N,)`` more than ``k`` robust standard deviations (1.4826 · MAD) above their median:
    how many samples a map singles out from the bulk. 0 when the scores have no spread (MAD 0)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    median = np.median(scores)
    if np.median(np.abs(scores - median)) == 0:
        return 0.0
    return float(np.mean(scores > mad_threshold(scores, k)))
