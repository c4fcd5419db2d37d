"""A running robust scale of the noise-prediction residual per timestep bucket.

The residual of a noise-prediction network is much larger at small ``t`` (little noise to find under the data's
own fine structure) than at large ``t``, so one fixed threshold δ clips almost nothing at some timesteps and almost
everything at others. :class:`ResidualScale` tracks ``σ̂_b = 1.4826 · median |r|`` per bucket ``b`` of timesteps
(log-spaced, since the residual changes fastest at small ``t``) as an exponential moving average, so thresholds can
be set in units of the residual's own robust scale. The median ignores the few large residuals that defects cause.
"""

from __future__ import annotations

import math

import torch

from .._robust import MAD_TO_SIGMA

__all__ = ["ResidualScale"]


class ResidualScale:
    """Per-timestep-bucket robust residual scale.

    Parameters
    ----------
    t_range: timesteps ``0 … t_range - 1`` are covered.
    n_buckets: log-spaced buckets of ``log(1 + t)``.
    momentum: EMA factor per update of a bucket (its first update sets it directly).
    """

    def __init__(self, t_range: int, n_buckets: int = 16, momentum: float = 0.95):
        if t_range < 1 or n_buckets < 1 or not 0.0 <= momentum < 1.0:
            raise ValueError("ResidualScale needs t_range >= 1, n_buckets >= 1 and momentum in [0, 1)")
        n_buckets = min(n_buckets, t_range)
        edges = torch.expm1(torch.linspace(0.0, math.log1p(t_range), n_buckets + 1))
        self.edges = edges[1:-1]
        self.momentum = momentum
        self.scale = torch.ones(n_buckets, dtype=torch.float64)
        self.seen = torch.zeros(n_buckets, dtype=torch.bool)

    def bucket(self, t: torch.Tensor) -> torch.Tensor:
        """Bucket index ``(B,)`` of each timestep ``t`` ``(B,)``."""
        return torch.bucketize(t.detach().cpu().double(), self.edges, right=True)

    @torch.no_grad()
    def update(self, r: torch.Tensor, t: torch.Tensor) -> None:
        """Fold the residuals ``r`` ``(B, …)`` of timesteps ``t`` ``(B,)`` into the per-bucket estimates."""
        buckets = self.bucket(t)
        a = r.detach().abs().flatten(1).float().cpu()
        for b in buckets.unique().tolist():
            value = MAD_TO_SIGMA * float(a[buckets == b].median())
            if value <= 0 or not math.isfinite(value):
                continue
            if self.seen[b]:
                self.scale[b] = self.momentum * self.scale[b] + (1.0 - self.momentum) * value
            else:
                self.scale[b], self.seen[b] = value, True

    def lookup(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Scale of each sample's bucket, shaped ``(B, 1, …)`` to broadcast against ``like`` ``(B, …)``."""
        s = self.scale[self.bucket(t)].to(device=like.device, dtype=like.dtype)
        return s.reshape(-1, *([1] * (like.ndim - 1)))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"scale": self.scale.clone(), "seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.scale, self.seen = state["scale"].clone(), state["seen"].clone()
