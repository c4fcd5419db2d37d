"""The long-record case: ``long_record`` (machine cycles) and ``val_long_record`` (an ECG-like pulse train).

One long single-channel training record with anomalies at random places, cut into overlapping windows with
:class:`adapters.WaveformAdapter` (``window`` samples every ``hop``): each anomaly sits in several windows, so the
share of contaminated training windows is several times the share of anomalous points (about 7× at the defaults).
``contamination`` is, as for every dataset, the share of training *samples* — here windows — that carry a defect:
anomalies are placed one by one, each where it adds no more contaminated windows than are still missing, until the
count is exact. ``meta["point_share"]`` gives the share of anomalous points that results.

The test record is made the same way (``test_anomaly_share`` of its windows contaminated) and cut with the same
adapter; its windows are the ``test_x`` samples. A detector is scored **per point**: :func:`point_maps` stitches
the window maps back onto the record (overlaps averaged, ``WaveformAdapter.to_signal``) and returns them with the
record's point mask. The harness does this whenever ``meta["test_layout"]`` is present.

Anomaly kinds: the development record uses the ``dev_signals`` kinds (frequency change, amplitude change, level
shift, spike), the validation record the ``val_signals`` kinds (pattern change, variance change, trend, dropout),
so the validation record shares neither its base process nor a kind with development. Masks follow
:mod:`._defects1d`; events stay at least 16 points apart.
"""

from __future__ import annotations

import numpy as np

from ._defects1d import NOISE, MachineCycles, PulseTrain, segment_defect, visible
from .base import AnomalyDataset, check_contamination, check_defects, split_counts

__all__ = ["make_long_record", "point_maps", "training_windows_overlap", "FAMILIES"]

FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dev": ("machine_cycles", ("frequency_change", "amplitude_change", "level_shift", "spike")),
    "val": ("pulse_train", ("pattern_change", "variance_change", "trend", "dropout")),
}
_STREAMS = {"dev": 101, "val": 111}
_GAP = 16  # points kept free between two anomalies


def _record(family: str, rng: np.random.Generator, length: int, seed: int):
    """One record of the family's process; the training and the test record are the same machine (its period and
    harmonics come from ``seed``, not from the record's own stream)."""
    if family == "dev":
        machine_seed = int(np.random.default_rng([seed, _STREAMS[family], 9]).integers(2**62))
        base = MachineCycles(rng, 1, length, channels=1, machine_seed=machine_seed, jitter=False)
    else:
        base = PulseTrain(rng, 1, length)
    return base, base.clean()[0, 0]


def _paint(base, clean: np.ndarray, kind: str, seed: int, start: int | None) -> tuple[np.ndarray, np.ndarray]:
    """One event drawn from ``seed`` (so a trial and the final paint agree) at ``start`` (pattern changes: the beat
    nearest ``start``) → change ``(T,)`` and mask ``(T,)``."""
    rng = np.random.default_rng(seed)
    span = int(rng.uniform(24, 64) if kind == "trend" else rng.uniform(12, 40))
    if kind == "pattern_change":
        change, lo, hi = base.pattern_change(rng, 0, float(start))
        mask = np.zeros(clean.shape, dtype=bool)
        mask[max(lo, 0) : min(hi, clean.size)] = True
        return change, mask
    replacement = (lambda a, b: base.frequency_change(rng, 0, a, b)[0]) if kind == "frequency_change" else None
    return segment_defect(rng, clean, kind, start, span, replacement)


def _window_starts(length: int, window: int, hop: int) -> np.ndarray:
    from adapters.base import window_starts

    return window_starts(length, window, hop)


def _contaminate(
    rng: np.random.Generator, base, clean: np.ndarray, share: float, window: int, hop: int, kinds: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int, int]]]:
    """Anomalies on ``clean`` ``(T,)`` until exactly ``round(share · windows)`` windows hold one. Returns the change
    ``(T,)``, the point mask ``(T,)`` and the events ``(kind, first point, last point + 1)``."""
    length = clean.size
    starts = _window_starts(length, window, hop)
    target = split_counts(len(starts), share)
    change, mask = np.zeros(length), np.zeros(length, dtype=bool)
    hit = np.zeros(len(starts), dtype=bool)
    events: list[tuple[str, int, int]] = []
    for _ in range(100 * target + 100):
        remaining = target - int(hit.sum())
        if remaining <= 0:
            break
        kind = kinds[rng.integers(len(kinds))]
        seed = int(rng.integers(2**62))
        # Where can this event go? Its mask is the same shape wherever it is placed (pattern changes: one per beat).
        if kind == "pattern_change":
            where, lo, hi = base.spans(0)
            lo, hi = np.maximum(lo, 0), np.minimum(hi, length)
        else:
            probe = np.flatnonzero(_paint(base, clean, kind, seed, length // 2)[1])
            where = np.arange(_GAP, length - _GAP)
            lo, hi = where + probe[0] - length // 2, where + probe[-1] + 1 - length // 2
        busy = np.r_[0, np.cumsum(mask)]  # occupied points, with a gap around each event
        a, b = np.clip(lo - _GAP, 0, length), np.clip(hi + _GAP, 0, length)
        free = (lo >= 0) & (hi <= length) & (busy[b] - busy[a] == 0)
        k_lo = np.searchsorted(starts + window, lo, side="right")
        k_hi = np.searchsorted(starts, hi, side="left")
        hits = np.r_[0, np.cumsum(hit)]
        new = (k_hi - k_lo) - (hits[k_hi] - hits[k_lo])
        ok = np.flatnonzero(free & (new >= 1) & (new <= remaining))
        if not ok.size:
            continue
        at = int(where[rng.choice(ok)])
        event_change, event_mask = _paint(base, clean, kind, seed, at)
        if not visible(event_change, event_mask):
            continue
        change += event_change
        mask |= event_mask
        idx = np.flatnonzero(event_mask)
        events.append((kind, int(idx[0]), int(idx[-1]) + 1))
        hit[np.searchsorted(starts + window, idx[0], side="right") : np.searchsorted(starts, idx[-1] + 1)] = True
    if int(hit.sum()) != target:
        raise ValueError(
            f"could not place anomalies in exactly {target} of {len(starts)} windows: lower the share "
            f"({share}) or lengthen the record"
        )
    return change, mask, events


def training_windows_overlap(
    family: str = "dev", train_length: int = 24576, window: int = 128, hop: int | None = None, **_: object
) -> bool:
    """Whether :func:`make_long_record`'s training windows overlap (its ``train_layout.overlapping``), from its
    options alone, without making the record: the benchmark harness resolves ``clean_samples="auto"`` and
    ``loss="auto"`` by it."""
    from adapters.base import Layout, plan_windows

    hop = max(1, window // 4) if hop is None else hop
    record, offset = plan_windows([(train_length,)], (window,), (hop,))
    return Layout("WaveformAdapter", record, offset, (window,), ((train_length,),)).overlapping


def make_long_record(
    family: str,
    contamination: float = 0.2,
    seed: int = 0,
    train_length: int = 24576,
    test_length: int = 8192,
    window: int = 128,
    hop: int | None = None,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] | None = None,
) -> AnomalyDataset:
    """One long record of ``family`` (``"dev"``: machine cycles, ``"val"``: pulse train) cut into windows:
    ``train_x`` ``(N_train, 1, window)`` from a ``train_length``-point record with a ``contamination`` share of its
    windows holding an anomaly; ``test_x`` ``(N_test, 1, window)`` from a ``test_length``-point record with
    ``test_anomaly_share`` of its windows holding one. ``hop`` defaults to ``window // 4``.

    ``meta``: ``adapter`` (the fitted :class:`adapters.WaveformAdapter`), ``train_layout`` / ``test_layout`` (its
    layouts of the two records), ``test_point_mask`` ``(1, test_length)``, ``train_point_mask`` ``(1, train_length)``,
    ``point_share`` / ``window_share`` (training record), ``train_events`` / ``test_events``."""
    from adapters import WaveformAdapter

    if family not in FAMILIES:
        raise ValueError(f"unknown long-record family {family!r}: use one of {sorted(FAMILIES)}")
    contamination = check_contamination(contamination)
    if not 0.0 <= test_anomaly_share < 1.0:
        raise ValueError(f"test_anomaly_share must lie in [0, 1), got {test_anomaly_share}")
    hop = max(1, window // 4) if hop is None else hop
    if window < 32 or not 1 <= hop <= window:
        raise ValueError(f"need window >= 32 and 1 <= hop <= window, got window={window}, hop={hop}")
    if min(train_length, test_length) < 8 * window:
        raise ValueError(f"train_length and test_length must be >= 8 windows ({8 * window} points)")
    base_name, kinds = FAMILIES[family]
    defects = check_defects(defects, kinds, f"{family} long-record")

    records, masks, events = [], [], []
    for stream, length, share in ((0, train_length, contamination), (1, test_length, test_anomaly_share)):
        # The test record has its own stream, so it is the same at every contamination level.
        rng = np.random.default_rng([seed, _STREAMS[family] + stream])
        base, clean = _record(family, rng, length, seed)
        change, mask, placed = _contaminate(rng, base, clean, share, window, hop, defects)
        records.append((clean + change + rng.normal(0.0, NOISE, size=length))[None].astype(np.float32))
        masks.append(mask)
        events.append(placed)

    # No normalisation in the adapter: the detectors scale robustly themselves, and the test windows must not
    # depend on the (contaminated) training record.
    adapter = WaveformAdapter(sample_rate=1.0, window=window, hop=hop, normalise=False).fit([records[0]])
    train_x, train_layout = adapter.to_tensor([records[0]])
    test_x, test_layout = adapter.to_tensor([records[1]])
    train_mask = adapter.masks_to_grid([masks[0]], train_layout)
    test_mask = adapter.masks_to_grid([masks[1]], test_layout)
    return AnomalyDataset.from_masks(
        name=f"{'' if family == 'dev' else 'val_'}long_record",
        dims=1,
        train_x=train_x,
        train_mask=train_mask,
        test_x=test_x,
        test_mask=test_mask,
        meta={
            "family": family,
            "base": base_name,
            "channels": ("signal",),
            "sample_rate": 1.0,
            "units": "a.u.",
            "window": window,
            "hop": hop,
            "defects": defects,
            "adapter": adapter,
            "train_layout": train_layout,
            "test_layout": test_layout,
            "train_point_mask": masks[0][None],
            "test_point_mask": masks[1][None],
            "point_share": float(masks[0].mean()),
            "window_share": float(train_mask.any(axis=1).mean()),
            "train_events": events[0],
            "test_events": events[1],
            "contamination": contamination,
            "seed": seed,
        },
    )


def point_maps(data: AnomalyDataset, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Window maps ``(N_test, window)`` of ``data.test_x`` → per-point maps ``(R, T)`` of the test record(s) (the
    adapter's ``to_signal``: overlapping windows averaged) and the point masks ``(R, T)``."""
    if "test_layout" not in data.meta:
        raise ValueError(f"dataset {data.name!r} has no test layout: per-point scoring is for long records")
    signals = data.meta["adapter"].to_signal(maps, data.meta["test_layout"])
    return np.stack([s.values for s in signals]), np.asarray(data.meta["test_point_mask"])
