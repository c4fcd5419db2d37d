"""The 1D development and validation families: ``dev_signals`` and ``val_signals``.

Defaults are chosen on the development family and confirmed on the validation family, which shares neither the
base process nor a defect kind with it:

================  =======================================================  ==================================
family            base process                                             defect kinds
================  =======================================================  ==================================
``dev_signals``   machine cycles, 2 channels (motor current, vibration):   frequency change, amplitude
                  harmonics of a slowly wandering shaft speed               change, level shift, spike
``val_signals``   ECG-like pulse train, 1 channel: P-QRS-T beats at a       pattern change, variance change,
                  jittered beat interval on a baseline wander               trend, dropout
================  =======================================================  ==================================

One defect per defective sample, on one channel (a frequency change is the machine's speed, so it changes every
channel). Amplitudes are of order 1; sensor noise 0.01. The masks follow :mod:`._defects1d` (a segment's footprint,
or the points a spike or trend moves by more than 0.05). ``meta["train_defect"]`` / ``meta["test_defect"]`` name
each sample's defect (``""`` for normal samples).
"""

from __future__ import annotations

import numpy as np

from ._defects1d import NOISE, MachineCycles, PulseTrain, segment_defect, visible
from .base import AnomalyDataset, check_defects, check_splits, dataset_from_splits, paint_split, split_streams

__all__ = ["make_signals", "FAMILIES"]

#: family → (base process, channel names, defect kinds)
FAMILIES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "dev": (
        "machine_cycles",
        ("current", "vibration"),
        ("frequency_change", "amplitude_change", "level_shift", "spike"),
    ),
    "val": ("pulse_train", ("lead",), ("pattern_change", "variance_change", "trend", "dropout")),
}
_STREAMS = {"dev": 61, "val": 71}


def _base(family: str, rng: np.random.Generator, n: int, length: int, seed: int):
    if family == "dev":  # one machine for both splits: its settings come from the seed, not the split's stream
        return MachineCycles(rng, n, length, machine_seed=_machine_seed(seed, family))
    return PulseTrain(rng, n, length)


def _machine_seed(seed: int, family: str) -> int:
    return int(np.random.default_rng([seed, _STREAMS[family], 9]).integers(2**62))


def _paint(
    rng: np.random.Generator, base, clean: np.ndarray, i: int, kind: str, attempts: int = 30
) -> tuple[np.ndarray, np.ndarray]:
    """The change ``(C, L)`` and mask ``(L,)`` of one visible ``kind`` defect on sample ``i`` ``clean`` ``(C, L)``."""
    channels, length = clean.shape
    for _ in range(attempts):
        change = np.zeros_like(clean)
        span = int(rng.uniform(0.06, 0.3 if kind == "trend" else 0.18) * length)
        start = int(rng.integers(2, max(3, length - span - 2)))
        if kind == "pattern_change":
            change[0], lo, hi = base.pattern_change(rng, i, rng.uniform(0.1, 0.9) * length)
            mask = np.zeros(length, dtype=bool)
            mask[max(lo, 0) : min(hi, length)] = True
        elif kind == "frequency_change":
            faster = base.frequency_change(rng, i, start, start + span)
            for c in range(channels):
                change[c], mask = segment_defect(rng, clean[c], kind, start, span, lambda a, b, row=faster[c]: row)
        else:
            c = int(rng.integers(channels))
            change[c], mask = segment_defect(rng, clean[c], kind, start, span)
        if visible(np.abs(change).max(axis=0), mask):
            return change, mask
    raise RuntimeError(f"could not draw a visible {kind!r} defect in {attempts} tries")


def _make_split(
    family: str, rng: np.random.Generator, n: int, n_defective: int, length: int, kinds: tuple[str, ...], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = _base(family, rng, n, length, seed)
    clean = base.clean()

    def paint(rng_: np.random.Generator, i: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
        change, mask = _paint(rng_, base, clean[i], i, kind)
        return clean[i] + change, mask

    x, mask, kind_of = paint_split(rng, clean, n_defective, kinds, paint, mask_shape=(n, length))
    x += rng.normal(0.0, NOISE, size=x.shape)
    return x.astype(np.float32), mask, kind_of


def make_signals(
    family: str,
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 256,
    n_test: int = 128,
    length: int = 256,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] | None = None,
) -> AnomalyDataset:
    """The 1D ``family`` (``"dev"`` or ``"val"``): ``train_x`` ``(n_train, C, length)`` with a ``contamination``
    share defective, ``test_x`` ``(n_test, C, length)`` with ``test_anomaly_share`` defective (C = 2 for dev, 1 for
    val). ``defects``: a subset of the family's kinds (default all)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown 1D family {family!r}: use one of {sorted(FAMILIES)}")
    contamination = check_splits(contamination, n_train, n_test, test_anomaly_share)
    if length < 64:
        raise ValueError(f"length must be >= 64 samples (a few cycles or beats), got {length}")
    base_name, channels, kinds = FAMILIES[family]
    defects = check_defects(defects, kinds, f"{family}_signals")
    train, test = (
        _make_split(family, rng, n, n_defective, length, defects, seed)
        for rng, n, n_defective in split_streams(
            seed, _STREAMS[family], n_train, contamination, n_test, test_anomaly_share
        )
    )
    meta = {
        "family": family,
        "base": base_name,
        "channels": channels,
        "sample_rate": 1.0,
        "units": "a.u.",
        "defects": defects,
    }
    return dataset_from_splits(f"{family}_signals", 1, train, test, meta, contamination, seed)
