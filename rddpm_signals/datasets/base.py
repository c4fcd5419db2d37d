"""The dataset container and the helpers every generator shares: split sizes, which samples carry a defect, the
loop that paints them, and the assembly of an :class:`AnomalyDataset` from its two splits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "AnomalyDataset",
    "split_counts",
    "check_contamination",
    "check_split_sizes",
    "check_splits",
    "check_defects",
    "split_streams",
    "defect_plan",
    "paint_split",
    "dataset_from_splits",
]


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

    @classmethod
    def from_masks(
        cls,
        name: str,
        dims: int,
        train_x: np.ndarray,
        train_mask: np.ndarray,
        test_x: np.ndarray,
        test_mask: np.ndarray,
        meta: dict,
    ) -> AnomalyDataset:
        """The dataset whose ``test_label`` ``(N,)`` is 1 where the test mask marks anything."""
        test_label = test_mask.reshape(len(test_mask), -1).any(axis=1).astype(int)
        return cls(name, dims, train_x, train_mask, test_x, test_mask, test_label, meta)

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


def check_split_sizes(n_train: int, n_test: int, test_anomaly_share: float) -> None:
    """One-line ValueErrors for split sizes a generator cannot honour."""
    for name, n in (("n_train", n_train), ("n_test", n_test)):
        if int(n) != n or n < 1:
            raise ValueError(f"{name} must be a positive whole number of samples, got {n}")
    if not 0.0 <= test_anomaly_share <= 1.0:
        raise ValueError(f"test_anomaly_share must lie in [0, 1], got {test_anomaly_share}")


def check_splits(contamination: float, n_train: int, n_test: int, test_anomaly_share: float) -> float:
    """:func:`check_contamination` and :func:`check_split_sizes` together; returns ``contamination`` as a float."""
    contamination = check_contamination(contamination)
    check_split_sizes(n_train, n_test, test_anomaly_share)
    return contamination


def check_defects(defects: tuple[str, ...] | None, kinds: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``defects`` (``None``: all of ``kinds``) as a tuple, or a ValueError naming the ``what`` defects unknown."""
    defects = kinds if defects is None else tuple(defects)
    unknown = set(defects) - set(kinds)
    if unknown or not defects:
        raise ValueError(f"unknown {what} defects {sorted(unknown)}: use a non-empty subset of {kinds}")
    return defects


def split_streams(
    seed: int, stream: int | tuple[int, ...], n_train: int, contamination: float, n_test: int, test_anomaly_share: float
) -> tuple[tuple[np.random.Generator, int, int], tuple[np.random.Generator, int, int]]:
    """``(rng, n, n_defective)`` for the training split (random stream ``[seed, *stream]``) and the test split
    (``stream``'s first number + 1): the test split has its own stream, so it is the same at every contamination
    level."""
    first, *rest = (stream,) if isinstance(stream, int) else stream
    return (
        (np.random.default_rng([seed, first, *rest]), n_train, split_counts(n_train, contamination)),
        (np.random.default_rng([seed, first + 1, *rest]), n_test, split_counts(n_test, test_anomaly_share)),
    )


def defect_plan(
    rng: np.random.Generator, n: int, n_defective: int, kinds: tuple[str, ...]
) -> Iterator[tuple[int, str]]:
    """Which ``n_defective`` of ``n`` samples carry a defect, and which of ``kinds``: ``(index, kind)`` pairs.

    Lazy: each kind is drawn from ``rng`` just before its pair is handed out, so the caller's own draws for that
    sample follow it in the stream."""
    for i in rng.permutation(n)[:n_defective]:
        yield int(i), kinds[rng.integers(len(kinds))]


def paint_split(
    rng: np.random.Generator,
    clean: np.ndarray,
    n_defective: int,
    kinds: tuple[str, ...],
    paint: Callable[[np.random.Generator, int, str], tuple[np.ndarray, np.ndarray]],
    attempts: int = 20,
    mask_shape: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint one defect on ``n_defective`` randomly chosen samples of ``clean`` ``(N, ...)``.

    ``paint(rng, i, kind)`` returns sample ``i`` with a ``kind`` defect and its bool mask; a draw whose mask comes
    out empty (e.g. a defect pushed off the border) is drawn again. Returns ``x`` (``clean``'s shape), ``mask``
    bool ``mask_shape`` (default ``clean``'s shape, e.g. ``(N, H, W)``; ``(N, L)`` for multichannel signals) and
    ``kind`` ``(N,)`` (the defect's name, ``""`` for normal samples).
    """
    if not kinds:
        raise ValueError("no defect kinds given: pass at least one")
    x = clean.copy()
    mask = np.zeros(clean.shape if mask_shape is None else mask_shape, dtype=bool)
    kind_of = np.full(len(clean), "", dtype="<U32")
    for i, kind in defect_plan(rng, len(clean), n_defective, kinds):
        for _ in range(attempts):
            sample, m = paint(rng, i, kind)
            if m.any():
                break
        else:
            raise RuntimeError(f"could not paint a visible {kind!r} defect in {attempts} draws")
        x[i], mask[i], kind_of[i] = sample, m, kind
    return x, mask, kind_of


def dataset_from_splits(
    name: str,
    dims: int,
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
    meta: dict,
    contamination: float,
    seed: int,
) -> AnomalyDataset:
    """The dataset of two painted splits ``(x, mask, kind)`` (as :func:`paint_split` returns them; images
    ``(N, H, W)`` gain their channel axis). ``meta`` is followed by ``train_defect`` / ``test_defect`` (the kinds),
    ``contamination`` and ``seed``."""
    (train_x, train_mask, train_kind), (test_x, test_mask, test_kind) = train, test
    if train_x.ndim == dims + 1:
        train_x, test_x = train_x[:, None], test_x[:, None]
    meta = {
        **meta,
        "train_defect": train_kind,
        "test_defect": test_kind,
        "contamination": contamination,
        "seed": seed,
    }
    return AnomalyDataset.from_masks(name, dims, train_x, train_mask, test_x, test_mask, meta)
