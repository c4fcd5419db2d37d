"""Long records scored window by window, with memory bounded by the record's length plus one chunk of windows.

``adapter.to_tensor([record])`` builds every window of a record at once: a one-hour 10 kHz record cut into windows
of 4096 with half overlap is 2 × 36 M float32 values in the tensor alone, plus the map of the same size.
:func:`stream_map` gives the same map (the windows start at the same places, including the final flush window, and
overlaps are averaged in the same order) while holding at most ``chunk_windows`` windows at a time: it cuts and
normalises one chunk of windows, calls ``map_fn`` on it, adds the maps into running sums on the record's model grid
and divides each stretch of the grid by its window count as soon as no later window reaches it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xarray as xr

from adapters.base import positive_int, window_starts

__all__ = ["stream_map", "iter_chunks", "coverage"]

MapFn = Callable[[np.ndarray], np.ndarray]
Progress = Callable[[int, int], None]


def iter_chunks(n_windows: int, chunk_windows: int) -> Iterator[tuple[int, int]]:
    """``[first, stop)`` window index ranges of at most ``chunk_windows`` windows covering ``n_windows``."""
    chunk_windows = positive_int(chunk_windows, "chunk_windows")
    for first in range(0, n_windows, chunk_windows):
        yield first, min(first + chunk_windows, n_windows)


def coverage(starts: np.ndarray, window: int, first: int, stop: int) -> np.ndarray:
    """How many windows of ``window`` points starting at sorted ``starts`` cover each position of
    ``[first, stop)`` → int64 ``(stop - first,)``."""
    pos = np.arange(first, stop)
    return np.searchsorted(starts, pos, side="right") - np.searchsorted(starts, pos - window, side="right")


def _call(map_fn: MapFn, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    maps = map_fn(x)
    if hasattr(maps, "detach"):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps)
    if maps.ndim == len(shape) + 1 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.shape != shape:
        raise ValueError(
            f"map_fn returned shape {maps.shape} for windows {x.shape}: it must return one map per window, "
            f"{shape} (a detector's anomaly_map)"
        )
    if not np.isfinite(maps).all():
        raise ValueError("map_fn returned NaN or infinite values: check the detector")
    return maps


def stream_map(
    adapter: Any,
    map_fn: MapFn,
    item: Any,
    chunk_windows: int = 256,
    progress: Progress | None = None,
) -> xr.DataArray:
    """One record's anomaly map, computed ``chunk_windows`` windows at a time.

    ``adapter``: a fitted :class:`adapters.WaveformAdapter` (any ``window`` / ``hop``; ``window=None`` scores the
    record as one window) or :class:`adapters.SpectrogramAdapter` (frames are computed per chunk, so only the
    spectrogram grid of the record is held). ``map_fn``: ``X`` float32 ``(n, C, window)`` (or ``(n, C, F, frames)``)
    → maps ``(n, window)`` (``(n, F, frames)``), e.g. ``detector.anomaly_map``. ``item``: one record as the adapter
    takes it (path, :class:`adapters.Record`, ``(array, rate)`` pair, array). ``progress(done, total)`` is called
    after each chunk with the windows scored so far.

    Returns the same DataArray as ``adapter.to_signal(map_fn(X), layout)[0]`` for ``X, layout =
    adapter.to_tensor([item])`` (to float rounding when ``map_fn`` is a per-window function).
    """
    import adapters

    chunk_windows = positive_int(chunk_windows, "chunk_windows")
    if not callable(map_fn):
        raise ValueError(f"map_fn must be callable (e.g. detector.anomaly_map), got {type(map_fn).__name__}")
    if isinstance(adapter, adapters.SpectrogramAdapter):
        return _stream_spectrogram(adapter, map_fn, item, chunk_windows, progress)
    if not isinstance(adapter, adapters.WaveformAdapter):
        raise ValueError(
            f"stream_map works with a WaveformAdapter or SpectrogramAdapter, got {type(adapter).__name__}: score "
            "other data whole with adapter.to_tensor / to_signal"
        )
    record, grid, rate = _one_record(adapter, item)
    length = grid.shape[-1]
    window, hop = adapter._window_hop([length])
    starts = window_starts(length, window, hop)
    cut = functools.partial(_waveform_windows, adapter, grid, window)
    sums = _stitch(np.zeros(length), starts, window, cut, map_fn, chunk_windows, progress)
    own_length, source = int(record.data.shape[-1]), record.source
    del grid, record, cut  # the samples are no longer needed: free them before the time axis is built
    return _waveform_signal(sums, own_length, source, rate, adapter.sample_rate_)


def _waveform_windows(adapter: Any, grid: np.ndarray, window: int, idx: np.ndarray) -> np.ndarray:
    """The normalised windows starting at ``idx`` of the record ``grid`` ``(C, L)`` → float32 ``(n, C, window)``,
    with ``to_tensor``'s arithmetic: cut in float64, normalise, then cast to float32."""
    return adapter._normalise(np.stack([grid[:, s : s + window] for s in idx])).astype(np.float32)


def _one_record(adapter: Any, item: Any) -> tuple[Any, np.ndarray, float]:
    """The fitted ``adapter``'s record for ``item``, its samples on the model grid ``(C, L)`` and its own rate."""
    adapter._check_fitted()
    records = adapter._records([item])
    data, rates = adapter._conform(records)
    return records[0], data[0], rates[0]


def _stitch(
    sums: np.ndarray,
    starts: np.ndarray,
    window: int,
    cut: Callable[[np.ndarray], np.ndarray],
    map_fn: MapFn,
    chunk_windows: int,
    progress: Progress | None,
) -> np.ndarray:
    """Scores the windows at ``starts`` chunk by chunk (``cut(starts_of_chunk)`` → the model input) and averages
    their maps into ``sums`` ``(..., T)`` (zeros on entry, windows along the last axis): each stretch is divided by
    its window count as soon as no later window reaches it. Returns ``sums``."""
    total = sums.shape[-1]
    done = 0  # positions before this one are final (divided by their counts)
    for first, stop in iter_chunks(len(starts), chunk_windows):
        idx = starts[first:stop]
        x = cut(idx)
        maps = _call(map_fn, x, (len(idx), *sums.shape[:-1], window))
        del x
        for s, m in zip(idx, maps, strict=True):
            sums[..., s : s + window] += m
        final = int(starts[stop]) if stop < len(starts) else total
        if final > done:
            sums[..., done:final] /= coverage(starts, window, done, final)
            done = final
        if progress is not None:
            progress(stop, len(starts))
    return sums


def _waveform_signal(
    values: np.ndarray, length: int, source: str | None, rate: float, model_rate: float
) -> xr.DataArray:
    """The stitched map on the model grid → the record's own time axis, as ``WaveformAdapter.to_signal`` does."""
    from adapters.waveform import _to_own_times

    values = _to_own_times(values, model_rate, length, rate)
    attrs = {"sample_rate": rate}
    if source:
        attrs["source"] = source
    seconds = np.arange(length, dtype=np.float64)  # in place: the same values as arange(length) / rate, one array
    seconds /= rate
    out = xr.DataArray(values, dims=("time",), coords=_time_coords(seconds), attrs=attrs, name="anomaly")
    out["time"].attrs["units"] = "s"
    return out


def _time_coords(seconds: np.ndarray) -> Any:
    """An indexed ``time`` coordinate that shares ``seconds``' memory with its pandas index where xarray allows
    (a plain coordinate copies the values into the index: one more record-length array)."""
    import pandas as pd

    if hasattr(xr.Coordinates, "from_xindex"):
        index = xr.indexes.PandasIndex(pd.Index(seconds, copy=False, name="time"), "time")
        return xr.Coordinates.from_xindex(index)
    return {"time": seconds}


# ------------------------------------------------------------------------------------------------------ spectrograms
def _padded_slice(grid: np.ndarray, first: int, stop: int, pad: int) -> np.ndarray:
    """Samples ``[first, stop)`` of ``grid`` ``(C, L)`` reflect-padded by ``pad`` on both ends (as torch.stft's
    ``center=True`` pads), without building the padded record."""
    length = grid.shape[-1]
    q = np.arange(first, stop) - pad
    q = np.where(q < 0, -q, q)
    q = np.where(q >= length, 2 * (length - 1) - q, q)
    return grid[:, q]


def _frames_db(adapter: Any, transform: Any, grid: np.ndarray, f0: int, f1: int, keep: np.ndarray | None) -> np.ndarray:
    """dB spectrogram frames ``[f0, f1)`` of the record ``grid`` ``(C, L)`` → float64 ``(C, F, f1 - f0)``, the
    same values as the adapter's whole-record spectrogram (its ``_power_db``) has there."""
    import torch

    n_fft, hop = int(adapter.n_fft), int(adapter.hop_length)
    samples = _padded_slice(grid, f0 * hop, (f1 - 1) * hop + n_fft, n_fft // 2)
    floor = 10.0 ** (float(adapter.floor_db) / 10.0)
    with torch.no_grad():
        power = transform(torch.from_numpy(samples[None].astype(np.float32))).double().clamp_min(floor)
        db = (10.0 * torch.log10(power)).numpy()[0]
    return db if keep is None else db[:, keep]


def _uncentred(transform: Any) -> Any:
    """The adapter's transform computing frames from already padded samples (``center=False``)."""
    inner = getattr(transform, "spectrogram", transform)
    inner.center = False
    return transform


def _spectrogram_windows(
    adapter: Any, transform: Any, grid: np.ndarray, keep: np.ndarray | None, window: int, idx: np.ndarray
) -> np.ndarray:
    """The normalised spectrogram windows starting at frames ``idx`` of the record ``grid`` ``(C, L)`` → float32
    ``(n, C, F, window)``; only the frames they span are computed."""
    f0, f1 = int(idx[0]), int(idx[-1]) + window
    db = _frames_db(adapter, transform, grid, f0, f1, keep)
    return adapter._normalise(np.stack([db[..., s - f0 : s - f0 + window] for s in idx])).astype(np.float32)


def _stream_spectrogram(
    adapter: Any, map_fn: MapFn, item: Any, chunk_windows: int, progress: Progress | None
) -> xr.DataArray:
    record, grid, record_rate = _one_record(adapter, item)
    length = grid.shape[-1]
    n_fft, hop_length = int(adapter.n_fft), int(adapter.hop_length)
    if length < n_fft:
        raise ValueError(
            f"record 0 has {length} samples, fewer than n_fft={n_fft}: lower n_fft or drop records shorter than "
            f"{n_fft} samples"
        )
    rate = adapter.sample_rate_
    transform = _uncentred(adapter._transform(rate))
    _, keep = adapter._frequencies(rate)
    n_frames = 1 + (length + 2 * (n_fft // 2) - n_fft) // hop_length
    window, hop = adapter._window_hop([n_frames])
    starts = window_starts(n_frames, window, hop)
    bins = len(adapter.frequencies_)
    cut = functools.partial(_spectrogram_windows, adapter, transform, grid, keep, window)
    sums = _stitch(np.zeros((bins, n_frames)), starts, window, cut, map_fn, chunk_windows, progress)
    freq = xr.Variable("frequency", adapter.frequencies_.copy(), attrs={"units": "Hz"})
    times = np.arange(n_frames) * hop_length / rate
    attrs = {"sample_rate": record_rate, "n_samples": int(record.data.shape[-1])}
    attrs["scale"] = "linear" if adapter.n_mels is None else "mel"
    if record.source:
        attrs["source"] = record.source
    coords = {"frequency": freq, "time": xr.Variable("time", times, attrs={"units": "s"})}
    return xr.DataArray(sums, dims=("frequency", "time"), coords=coords, attrs=attrs, name="anomaly")
