"""Robust noise-prediction losses.

Every element-wise loss uses the ½r² convention for small residuals, so that ``huber(δ → ∞)`` and
``pseudo_huber(c → ∞)`` equal ``mse`` and ``huber(δ) / δ → l1`` as ``δ → 0`` — the two limits the RDDPM paper
describes (plain DDPM and L1).

A :class:`DiffusionLoss` turns the network's prediction and its target (both ``(B, C, …)``) plus the timesteps
``t`` ``(B,)`` into a scalar to minimise *and* the per-sample values ``(B,)``, so trimming can be decided outside
(for example across processes, by gathering the per-sample values first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "mse",
    "l1",
    "huber",
    "pseudo_huber",
    "trimmed_mask",
    "LossOutput",
    "DiffusionLoss",
    "make_loss",
    "LOSSES",
]


# ----------------------------------------------------------------------------- element-wise losses
def mse(r: torch.Tensor) -> torch.Tensor:
    """½ r², element-wise."""
    return 0.5 * r.square()


def l1(r: torch.Tensor) -> torch.Tensor:
    """|r|, element-wise."""
    return r.abs()


def huber(r: torch.Tensor, delta: float | torch.Tensor) -> torch.Tensor:
    """½ r² where ``|r| <= δ``, ``δ(|r| - δ/2)`` beyond; ``delta`` may broadcast against ``r``."""
    a = r.abs()
    delta = torch.as_tensor(delta, dtype=r.dtype, device=r.device)
    return torch.where(a <= delta, 0.5 * r.square(), delta * (a - 0.5 * delta))


def pseudo_huber(r: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``c² (sqrt(1 + (r/c)²) - 1)``: smooth Huber, ≈ ½r² for small r and ≈ c|r| for large r."""
    c = torch.as_tensor(c, dtype=r.dtype, device=r.device)
    return c.square() * (torch.sqrt(1.0 + (r / c).square()) - 1.0)


def trimmed_mask(values: torch.Tensor, trim: float) -> torch.Tensor:
    """Boolean mask ``(B,)`` keeping the ``ceil((1 - trim) B)`` smallest ``values`` (ties broken by position)."""
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must lie in [0, 1), got {trim}")
    n = values.shape[0]
    keep = max(1, math.ceil((1.0 - trim) * n - 1e-9))
    mask = torch.zeros(n, dtype=torch.bool, device=values.device)
    mask[torch.topk(values.detach(), keep, largest=False, sorted=False).indices] = True
    return mask


# ----------------------------------------------------------------------------- batch losses
@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar to minimise
    per_sample: torch.Tensor  # (B,) mean element-wise loss of each sample, before any trimming
    kept: torch.Tensor  # (B,) bool: samples that contributed to ``loss``


def _per_sample(elementwise: torch.Tensor) -> torch.Tensor:
    return elementwise.flatten(1).mean(dim=1)


class DiffusionLoss:
    """Base class: an element-wise loss averaged per sample, then over the batch.

    Subclasses override :meth:`elementwise` and, to drop samples, :meth:`keep`.
    """

    name = "base"

    def elementwise(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def keep(self, per_sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(per_sample, dtype=torch.bool)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, t: torch.Tensor) -> LossOutput:
        per_sample = _per_sample(self.elementwise((pred - target).float(), t))
        kept = self.keep(per_sample, t)
        return LossOutput(per_sample[kept].mean(), per_sample.detach(), kept)


class MSELoss(DiffusionLoss):
    name = "mse"

    def elementwise(self, r, t):
        return mse(r)


class L1Loss(DiffusionLoss):
    name = "l1"

    def elementwise(self, r, t):
        return l1(r)


class HuberLoss(DiffusionLoss):
    name = "huber"

    def __init__(self, delta: float = 1.0):
        if not delta > 0:
            raise ValueError(f"delta must be > 0 for the Huber loss, got {delta}")
        self.delta = float(delta)

    def elementwise(self, r, t):
        return huber(r, self.delta)


class PseudoHuberLoss(DiffusionLoss):
    name = "pseudo_huber"

    def __init__(self, delta: float = 1.0):
        if not delta > 0:
            raise ValueError(f"delta (the pseudo-Huber c) must be > 0, got {delta}")
        self.c = float(delta)

    def elementwise(self, r, t):
        return pseudo_huber(r, self.c)


class LTSLoss(DiffusionLoss):
    """Least trimmed squares: per-sample ½r² means, the ``trim`` share of worst-fitting samples dropped."""

    name = "lts"

    def __init__(self, trim: float = 0.2):
        if not 0.0 <= trim < 1.0:
            raise ValueError(f"trim must lie in [0, 1), got {trim}")
        self.trim = float(trim)

    def elementwise(self, r, t):
        return mse(r)

    def keep(self, per_sample, t):
        return trimmed_mask(per_sample, self.trim)


LOSSES: dict[str, type[DiffusionLoss]] = {
    cls.name: cls for cls in (MSELoss, L1Loss, HuberLoss, PseudoHuberLoss, LTSLoss)
}


def make_loss(name: str, *, delta: float = 1.0, trim: float = 0.2, **extra: float) -> DiffusionLoss:
    """Build the loss ``name`` with the detector's parameters; unknown names raise a ValueError listing the choices."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: use one of {sorted(LOSSES)}")
    cls = LOSSES[name]
    if name in ("huber", "pseudo_huber"):
        return cls(delta=delta, **extra)
    if name == "lts":
        return cls(trim=trim, **extra)
    return cls(**extra)
