"""Robust noise-prediction losses: element-wise functions, a per-timestep residual scale, and the batch losses
that :class:`~rddpm_signals.RobustDiffusion` trains with (``make_loss(name, ...)``)."""

from .functional import cauchy, geman_mcclure, huber, l1, mse, pseudo_huber, tukey
from .objectives import DEFAULTS, LOSSES, DiffusionLoss, LossOutput, make_loss, trimmed_mask
from .scale import ResidualScale

__all__ = [
    "mse",
    "l1",
    "huber",
    "pseudo_huber",
    "tukey",
    "cauchy",
    "geman_mcclure",
    "trimmed_mask",
    "LossOutput",
    "DiffusionLoss",
    "ResidualScale",
    "make_loss",
    "LOSSES",
    "DEFAULTS",
]
