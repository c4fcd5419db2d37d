"""Batch losses for noise prediction: plain, robust, trimmed, and scaled per timestep.

A :class:`DiffusionLoss` turns the prediction and its target (``(B, C, …)``), the timesteps ``t`` ``(B,)`` and
optional per-element weights into a scalar to minimise *and* the per-sample values ``(B,)`` (exposed so trimming
could be decided across processes by gathering them first).

Registered names (``make_loss(name, delta=, trim=)``); ``delta`` / ``trim`` default per loss when ``None``:

=========================  =====================================================================  ===========
name                       what                                                                   default
=========================  =====================================================================  ===========
``mse``                    ½r² (plain DDPM)
``l1``                     |r|
``huber``                  Huber with a fixed δ (the RDDPM paper)                                 δ = 1
``pseudo_huber``           smooth Huber with a fixed c                                            c = 1
``lts``                    least trimmed squares: drop the ``trim`` share of worst samples        trim = 0.2
``huber_adaptive``         Huber with δ_t = δ · σ̂_t, σ̂_t the running robust residual scale       δ = 1.345
``pseudo_huber_scheduled`` pseudo-Huber with c_t = (1 - c)/(1 + σ_t)² + c, σ_t² = (1 - ᾱ_t)/ᾱ_t    c = 0.1
``lts_bucket``             LTS on per-sample losses divided by σ̂_t² (trims within noise levels)   trim = 0.2
``lts_element``            drop the ``trim`` share of elements with the largest ``|r| / σ̂_t``     trim = 0.05
``lts_test``               drop only the samples whose σ̂_t²-scaled loss is a robust outlier of    δ = 3,
                           the batch (log-scale z > δ), at most the ``trim`` share                trim = 0.2
``tukey``                  Tukey biweight with c_t = δ · σ̂_t (redescending)                      δ = 4.685
``cauchy``                 Cauchy with c_t = δ · σ̂_t                                             δ = 2.385
``geman_mcclure``          Geman–McClure with c_t = δ · σ̂_t                                      δ = 2.0
=========================  =====================================================================  ===========

The σ̂_t-scaled losses keep a :class:`~rddpm_signals.losses.scale.ResidualScale`, updated on every training batch.

Several processes (``torchrun``): the training loop sets :attr:`DiffusionLoss.shard`; each process then passes its
own rows of the global batch, and every batch-level decision is taken over the gathered global batch exactly as one
process would take it — the residual scale's update, the LTS sample mask, ``lts_element``'s cut — and ``loss`` is
scaled so that the gradient averaged over the processes (DistributedDataParallel) is the one-process gradient of
the mean over the samples kept globally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .._robust import MAD_TO_SIGMA
from ..distributed import Shard
from .functional import cauchy, geman_mcclure, huber, l1, mse, pseudo_huber, tukey
from .scale import ResidualScale

__all__ = ["LossOutput", "DiffusionLoss", "LOSSES", "make_loss", "trimmed_mask", "DEFAULTS"]


def _check_trim(trim: float) -> None:
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must lie in [0, 1), got {trim}")


def trimmed_mask(values: torch.Tensor, trim: float) -> torch.Tensor:
    """Boolean mask ``(B,)`` keeping the ``ceil((1 - trim) B)`` smallest ``values`` (ties broken by position)."""
    _check_trim(trim)
    n = values.shape[0]
    keep = max(1, math.ceil((1.0 - trim) * n - 1e-9))
    mask = torch.zeros(n, dtype=torch.bool, device=values.device)
    mask[torch.topk(values.detach(), keep, largest=False, sorted=False).indices] = True
    return mask


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar to minimise
    per_sample: torch.Tensor  # (B,) weighted mean element-wise loss of each sample, before sample trimming
    kept: torch.Tensor  # (B,) bool: samples that contributed to ``loss``
    # the loss of the whole global batch (detached, the same on every process) when ``loss`` is one process's
    # share of it; ``None`` in one process, where ``loss`` is the batch loss
    batch_loss: torch.Tensor | None = None


def _kept_mean(per_sample: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_sample`` ``(B,)`` over ``kept`` ``(B,)``. On CUDA without boolean indexing (which waits for the
    device to count the rows); on the CPU as it always was, so CPU results stay bitwise the same."""
    if per_sample.device.type == "cuda":
        return torch.where(kept, per_sample, 0.0).sum() / kept.sum()
    return per_sample[kept].mean()


class DiffusionLoss:
    """An element-wise loss, weighted and averaged per sample, then over the kept samples.

    Subclasses override :meth:`elementwise`; to drop elements :meth:`element_weights`; to drop samples
    :meth:`keep`. A subclass that sets ``self.scale`` (a :class:`ResidualScale`) has it updated on each call made
    with gradients enabled.
    """

    name = "base"
    scale: ResidualScale | None = None
    #: set by the training loop when several processes share each batch (``None``: one process holds the batch)
    shard: Shard | None = None

    def __init__(self, **_: object):
        """Losses without parameters ignore the ones ``make_loss`` passes to every loss."""

    def elementwise(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def element_weights(self, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
        return None

    def keep(self, per_sample: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(per_sample, dtype=torch.bool)

    def __call__(
        self, pred: torch.Tensor, target: torch.Tensor, t: torch.Tensor, weight: torch.Tensor | None = None
    ) -> LossOutput:
        """``weight``: optional per-element weights broadcasting against ``pred`` (e.g. ``(B, 1, …)`` masks)."""
        r = (pred - target).float()
        if self.scale is not None and torch.is_grad_enabled():
            if self.shard is None:
                self.scale.update(r, t)
            else:  # the global batch's residuals, so every process keeps the one-process scale
                self.scale.update(self._whole(r), self._whole(t))
        values = self.elementwise(r, t)
        w = self.element_weights(r, t)
        if weight is not None:
            weight = weight.to(values.dtype).expand_as(values)
            w = weight if w is None else w * weight
        if w is None:
            per_sample = values.flatten(1).mean(dim=1)
        else:
            per_sample = (values * w).flatten(1).sum(dim=1) / w.flatten(1).sum(dim=1).clamp_min(1e-12)
        if self.shard is not None:
            return self._sharded(per_sample, t)
        kept = self.keep(per_sample, t)
        return LossOutput(_kept_mean(per_sample, kept), per_sample.detach(), kept)

    def _whole(self, part: torch.Tensor) -> torch.Tensor:
        """The global batch ``(B_global, …)`` of a per-process ``part`` (detached); ``part`` in one process."""
        return part.detach() if self.shard is None else self.shard.gather(part)

    def _sharded(self, per_sample: torch.Tensor, t: torch.Tensor) -> LossOutput:
        """One process's share of the global batch loss: samples are kept by :meth:`keep` over the gathered global
        batch, and ``loss = world / kept_global · Σ_local kept per_sample``, so that the gradient averaged over the
        ``world`` processes is that of the mean over the globally kept samples (a per-process mean would weight a
        process's samples by how many of them were kept there)."""
        assert self.shard is not None
        whole = self._whole(per_sample)
        kept_whole = self.keep(whole, self._whole(t))
        count = kept_whole.sum()
        kept = self.shard.local(kept_whole)
        loss = torch.where(kept, per_sample, 0.0).sum() * (self.shard.world / count)
        batch_loss = torch.where(kept_whole, whole, 0.0).sum() / count
        return LossOutput(loss, per_sample.detach(), kept, batch_loss)

    def _scaled(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        assert self.scale is not None
        return self.scale.lookup(t, like)

    def state_dict(self) -> dict:
        return {} if self.scale is None else {"scale": self.scale.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if self.scale is not None and "scale" in state:
            self.scale.load_state_dict(state["scale"])


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"delta must be > 0 for the {name} loss, got {value}")
    return float(value)


class MSELoss(DiffusionLoss):
    name = "mse"

    def elementwise(self, r, t):
        return mse(r)


class L1Loss(DiffusionLoss):
    name = "l1"

    def elementwise(self, r, t):
        return l1(r)


class _ThresholdLoss(DiffusionLoss):
    """An element-wise ``function(r, threshold)`` with a fixed threshold ``delta``."""

    function = staticmethod(huber)

    def __init__(self, delta: float = 1.0, **_):
        self.delta = _positive(self.name, delta)

    def elementwise(self, r, t):
        return self.function(r, self.delta)


class HuberLoss(_ThresholdLoss):
    name = "huber"
    function = staticmethod(huber)


class PseudoHuberLoss(_ThresholdLoss):
    name = "pseudo_huber"
    function = staticmethod(pseudo_huber)


class _ScaledLoss(_ThresholdLoss):
    """A threshold of ``delta`` times the running robust residual scale σ̂_t of the sample's timestep bucket."""

    def __init__(self, delta: float, t_range: int = 1000, **_):
        super().__init__(delta)
        self.scale = ResidualScale(t_range)

    def elementwise(self, r, t):
        return self.function(r, self.delta * self._scaled(t, r))


class AdaptiveHuberLoss(_ScaledLoss):
    name = "huber_adaptive"
    function = staticmethod(huber)


class TukeyLoss(_ScaledLoss):
    name = "tukey"
    function = staticmethod(tukey)


class CauchyLoss(_ScaledLoss):
    name = "cauchy"
    function = staticmethod(cauchy)


class GemanMcClureLoss(_ScaledLoss):
    name = "geman_mcclure"
    function = staticmethod(geman_mcclure)


class ScheduledPseudoHuberLoss(DiffusionLoss):
    """Pseudo-Huber with ``c_t = (1 - c)/(1 + σ_t)² + c`` where ``σ_t = sqrt((1 - ᾱ_t)/ᾱ_t)``: close to 1 (≈ MSE on
    unit-variance noise) at low noise, falling to ``c`` at high noise (the SNR schedule of scheduled pseudo-Huber)."""

    name = "pseudo_huber_scheduled"

    def __init__(self, delta: float = 0.1, alphas_cumprod: np.ndarray | None = None, **_):
        self.c_min = _positive(self.name, delta)
        if alphas_cumprod is None:
            raise ValueError("pseudo_huber_scheduled needs the schedule's alphas_cumprod")
        sigma = np.sqrt((1.0 - alphas_cumprod) / alphas_cumprod)
        self.c_t = torch.as_tensor((1.0 - self.c_min) / (1.0 + sigma) ** 2 + self.c_min, dtype=torch.float32)
        self._c_t_on: dict[torch.device, torch.Tensor] = {}  # c_t copied once per device, not every step

    def elementwise(self, r, t):
        if r.device not in self._c_t_on:
            self._c_t_on[r.device] = self.c_t.to(r.device)
        c = self._c_t_on[r.device][t].reshape(-1, *([1] * (r.ndim - 1)))
        return pseudo_huber(r, c)


class _TrimmedLoss(DiffusionLoss):
    """½r² with a ``trim`` share of the batch dropped; the subclass says what is dropped."""

    scaled = False  # keep a running residual scale σ̂_t

    def __init__(self, trim: float = 0.2, t_range: int = 1000, **_):
        _check_trim(trim)
        self.trim = float(trim)
        if self.scaled:
            self.scale = ResidualScale(t_range)

    def elementwise(self, r, t):
        return mse(r)


class LTSLoss(_TrimmedLoss):
    """Least trimmed squares: the ``trim`` share of worst-fitting samples (per-sample ½r² means) dropped."""

    name = "lts"

    def keep(self, per_sample, t):
        return trimmed_mask(per_sample, self.trim)


class LTSBucketLoss(_TrimmedLoss):
    """LTS that compares like with like: each sample's ½r² mean is divided by σ̂_t² of its timestep bucket before
    the worst ``trim`` share is dropped, so samples are not trimmed merely for having a hard (small) ``t``."""

    name = "lts_bucket"
    scaled = True

    def keep(self, per_sample, t):
        normalised = per_sample / self._scaled(t, per_sample).square()
        return trimmed_mask(normalised, self.trim)


class LTSElementLoss(_TrimmedLoss):
    """Per-element trimming: the ``trim`` share of elements of the batch with the largest ``|r| / σ̂_t`` get weight
    0 (defects are local, so their residuals are a few elements of a sample, not whole samples)."""

    name = "lts_element"
    scaled = True

    def element_weights(self, r, t):
        z = r.detach().abs() / self._scaled(t, r)
        whole = self._whole(z)  # the cut is taken over the global batch's elements
        drop = int(self.trim * whole.numel())
        if drop == 0:
            return None
        cut = torch.topk(whole.flatten(), drop, largest=True, sorted=False).values.min()
        return (z < cut).to(r.dtype)


class LTSTestLoss(_TrimmedLoss):
    """LTS that trims only outliers: a sample is dropped when its per-sample loss divided by σ̂_t² (as
    ``lts_bucket``) is a robust outlier of the batch — its log lies more than ``delta`` robust standard deviations
    (1.4826 · MAD) above the batch median — and at most the ``trim`` share of the batch (the largest) is dropped.

    Fixed-share LTS drops ``trim`` of every batch, clean or not, so on clean data it never learns its hardest
    samples; this loss is meant to be plain MSE on clean batches and LTS on contaminated ones.
    """

    name = "lts_test"
    scaled = True

    def __init__(self, trim: float = 0.2, delta: float = 3.0, t_range: int = 1000, **_):
        super().__init__(trim=trim, t_range=t_range)
        self.delta = _positive(self.name, delta)

    def keep(self, per_sample, t):
        normalised = per_sample.detach() / self._scaled(t, per_sample).square()
        logs = torch.log(normalised.clamp_min(1e-30))
        centre = logs.median()
        spread = MAD_TO_SIGMA * (logs - centre).abs().median()
        outlier = logs > centre + self.delta * spread.clamp_min(1e-12)
        return ~outlier | trimmed_mask(normalised, self.trim)


LOSSES: dict[str, type[DiffusionLoss]] = {
    cls.name: cls
    for cls in (
        MSELoss,
        L1Loss,
        HuberLoss,
        PseudoHuberLoss,
        LTSLoss,
        AdaptiveHuberLoss,
        ScheduledPseudoHuberLoss,
        LTSBucketLoss,
        LTSElementLoss,
        LTSTestLoss,
        TukeyLoss,
        CauchyLoss,
        GemanMcClureLoss,
    )
}

#: ``delta`` / ``trim`` used when the detector passes ``None``.
DEFAULTS: dict[str, dict[str, float]] = {
    "huber": {"delta": 1.0},
    "pseudo_huber": {"delta": 1.0},
    "lts": {"trim": 0.2},
    "huber_adaptive": {"delta": 1.345},
    "pseudo_huber_scheduled": {"delta": 0.1},
    "lts_bucket": {"trim": 0.2},
    "lts_element": {"trim": 0.05},
    "lts_test": {"trim": 0.2, "delta": 3.0},
    "tukey": {"delta": 4.685},
    "cauchy": {"delta": 2.385},
    "geman_mcclure": {"delta": 2.0},
}


def make_loss(
    name: str,
    *,
    delta: float | None = None,
    trim: float | None = None,
    t_range: int = 1000,
    alphas_cumprod: np.ndarray | None = None,
) -> DiffusionLoss:
    """Build the loss ``name``; ``delta`` / ``trim`` of ``None`` take the loss's default (:data:`DEFAULTS`).

    ``t_range``: timesteps the scaled losses bucket (the training range); ``alphas_cumprod``: the schedule's ᾱ
    (needed by ``pseudo_huber_scheduled``).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: use one of {sorted(LOSSES)}")
    params = dict(DEFAULTS.get(name, {}))
    if delta is not None:
        params["delta"] = delta
    if trim is not None:
        params["trim"] = trim
    return LOSSES[name](**params, t_range=t_range, alphas_cumprod=alphas_cumprod)
