"""Self-cleaning training: after a warm-up, score every training sample with the current model and give the
points it flags zero weight in the loss (iterative trimmed-loss minimisation at the level of points).

Flagging uses a robust z-score per map position (median / MAD over the training samples), so a position that is
always hard to reconstruct is not flagged merely for that. A cap on the flagged share keeps the cleaning from ever
discarding the normal mode, and a small dilation covers the soft edges of a defect. The cap counts the flagged
points before the dilation: scattered flags dilate into a much larger excluded share (``SelfCleaning.flagged_share``
records it per round; docs/RESULTS.md §8 gives measured values), and that large share is what worked best.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from .scoring import PositionNormalizer

__all__ = ["SelfCleaning", "flag_points"]


def flag_points(maps: np.ndarray, threshold: float, max_share: float, dilate: int) -> np.ndarray:
    """Bool ``(N, …grid)``: points whose per-position robust z-score exceeds ``threshold``, at most a ``max_share``
    of all points (the highest z first), then dilated by ``dilate`` points along the grid axes (so the returned share
    can be well above ``max_share``)."""
    if not 0.0 < max_share < 1.0:
        raise ValueError(f"clean_max_share must lie in (0, 1), got {max_share}")
    z = PositionNormalizer().fit(maps).transform(maps)
    cut = max(threshold, float(np.quantile(z, 1.0 - max_share)))
    flagged = z > cut
    if dilate > 0 and flagged.any():
        size = (1,) + (2 * dilate + 1,) * (maps.ndim - 1)
        flagged = ndimage.maximum_filter(flagged, size=size, mode="constant")
    return flagged


class SelfCleaning:
    """A :class:`~rddpm_signals.training.Reweighter` that re-flags the training points ``rounds`` times, evenly
    spaced from ``start`` (a share of ``steps``) to the end. The settings have no defaults here: the detector's
    ``clean_*`` parameters are the one place they are set.

    ``score(ema)`` must return the training set's anomaly maps ``(N, …grid)`` under the EMA network. ``prior``
    ``(N, …grid)`` bool, when given (a refit after an earlier cleaning run), is excluded from step 0 on and added
    to every later mask.
    """

    def __init__(
        self,
        score: Callable[[nn.Module], np.ndarray],
        steps: int,
        *,
        start: float,
        rounds: int,
        threshold: float,
        max_share: float,
        dilate: int,
        prior: np.ndarray | None = None,
    ):
        if not 0.0 <= start < 1.0 or rounds < 1:
            raise ValueError("clean_start must lie in [0, 1) and clean_rounds be >= 1")
        first = int(start * steps)
        self.steps_due = {first + (steps - first) * k // rounds for k in range(rounds)}
        if prior is not None:
            self.steps_due.add(0)
        self.prior = prior
        self.score, self.threshold, self.max_share, self.dilate = score, threshold, max_share, dilate
        self.mask: np.ndarray | None = None
        self.flagged_share: list[float] = []
        self._step = -1

    def due(self, step: int) -> bool:
        self._step = step
        return step in self.steps_due

    def __call__(self, ema: nn.Module) -> torch.Tensor:
        if self.prior is not None and self._step == 0:
            self.mask = self.prior.copy()  # nothing to score with yet
        else:
            self.mask = flag_points(self.score(ema), self.threshold, self.max_share, self.dilate)
            if self.prior is not None:
                self.mask |= self.prior
        self.flagged_share.append(float(self.mask.mean()))
        return torch.from_numpy(~self.mask).float().unsqueeze(1)
