"""The dataset container and the helpers every generator shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["AnomalyDataset", "split_counts", "check_contamination"]


@dataclass
class AnomalyDataset:
    """A contaminated training set and a labelled test set.

    ``train_x`` / ``test_x``: ``(N, C, L)`` (``dims=1``) or ``(N, C, H, W)`` (``dims=2``), float32.
    ``train_mask`` / ``test_mask``: bool ``(N, L)`` or ``(N, H, W)``, the ground truth on the map grid
    (``train_mask`` is never used for training). ``test_label``: int ``(N,)``, 1 = the sample holds a defect.
    ``meta``: what an adapter needs to map back (sample rate, channel names, axes) and the generator's settings.
    """

    name: str
    dims: int
    train_x: np.ndarray
    train_mask: np.ndarray
    test_x: np.ndarray
    test_mask: np.ndarray
    test_label: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def train_label(self) -> np.ndarray:
        """1 for training samples that carry a defect (ground truth, for reporting only)."""
        return self.train_mask.reshape(len(self.train_mask), -1).any(axis=1).astype(int)

    def __repr__(self) -> str:
        return (
            f"AnomalyDataset({self.name!r}, dims={self.dims}, train={self.train_x.shape} "
            f"({int(self.train_label.sum())} defective), test={self.test_x.shape} "
            f"({int(self.test_label.sum())} defective))"
        )


def check_contamination(contamination: float) -> float:
    if not 0.0 <= contamination < 1.0:
        raise ValueError(f"contamination must lie in [0, 1), got {contamination}")
    return float(contamination)


def split_counts(n: int, share: float) -> int:
    """How many of ``n`` samples carry a defect at ``share`` (rounded to the nearest count)."""
    return int(round(n * share))
