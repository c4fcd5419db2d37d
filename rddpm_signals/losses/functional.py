"""Element-wise losses ρ(r) in the ½r² convention: every one behaves like ½r² for small residuals, so that
``huber(δ → ∞)``, ``pseudo_huber(c → ∞)`` and the redescending losses with ``c → ∞`` all equal :func:`mse`, and
``huber(δ) / δ → l1`` as ``δ → 0`` — the two limits the RDDPM paper describes (plain DDPM and L1).

Thresholds (``delta``, ``c``) may be floats or tensors that broadcast against ``r`` (per-timestep thresholds).
"""

from __future__ import annotations

import torch

__all__ = ["mse", "l1", "huber", "pseudo_huber", "tukey", "cauchy", "geman_mcclure"]


def _like(value: float | torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=r.dtype, device=r.device)


def mse(r: torch.Tensor) -> torch.Tensor:
    """½ r²."""
    return 0.5 * r.square()


def l1(r: torch.Tensor) -> torch.Tensor:
    """|r|."""
    return r.abs()


def huber(r: torch.Tensor, delta: float | torch.Tensor) -> torch.Tensor:
    """½ r² where ``|r| <= δ``, ``δ(|r| - δ/2)`` beyond."""
    a, delta = r.abs(), _like(delta, r)
    return torch.where(a <= delta, 0.5 * r.square(), delta * (a - 0.5 * delta))


def pseudo_huber(r: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """``c² (sqrt(1 + (r/c)²) - 1)``: a smooth Huber, ≈ ½r² for small r and ≈ c|r| for large r."""
    c = _like(c, r)
    return c.square() * (torch.sqrt(1.0 + (r / c).square()) - 1.0)


def tukey(r: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Tukey's biweight, redescending: ``c²/6 (1 - (1 - (r/c)²)³)`` for ``|r| <= c``, the constant ``c²/6`` beyond
    (zero gradient: residuals beyond ``c`` do not pull the model at all)."""
    c = _like(c, r)
    u = (r / c).square().clamp(max=1.0)
    # 1 - (1 - u)³ = u (3 - 3u + u²), written so that small u loses no precision.
    return c.square() / 6.0 * u * (3.0 - 3.0 * u + u.square())


def cauchy(r: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Cauchy (Lorentzian): ``c²/2 log(1 + (r/c)²)``; its influence decays like ``1/r``."""
    c = _like(c, r)
    return 0.5 * c.square() * torch.log1p((r / c).square())


def geman_mcclure(r: torch.Tensor, c: float | torch.Tensor) -> torch.Tensor:
    """Geman–McClure: ``½ r² / (1 + (r/c)²)``, bounded by ``c²/2``; influence decays like ``1/r³``."""
    c = _like(c, r)
    return 0.5 * r.square() / (1.0 + (r / c).square())
