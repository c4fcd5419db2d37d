"""Long records scored window by window, with memory bounded by the record's length plus one chunk of windows.

``adapter.to_tensor([record])`` builds every window of a record at once: a one-hour 10 kHz record cut into windows
of 4096 with half overlap is 2 × 36 M float32 values in the tensor alone, plus the map of the same size.
:func:`stream_map` gives the same map (the windows start at the same places, including the final flush window, and
overlaps are averaged in the same order) while holding at most ``chunk_windows`` windows at a time: it cuts and
normalises one chunk of windows, calls ``map_fn`` on it, adds the maps into float64 running sums and divides each
stretch of the grid by its window count as soon as no later window reaches it, writing it to the output map (in
``dtype``). The running sums cover only the stretch that windows still to come reach, so what is held besides the
record is the output map: 4 bytes per point with ``dtype=np.float32``. A waveform map's ``time`` coordinate is lazy
(:class:`SampleTimes`, an ``xarray.indexes.RangeIndex``): its values are computed when read, not stored.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import xarray as xr
from xarray.indexes import RangeIndex
from xarray.indexes.range_index import RangeCoordinateTransform

from adapters.base import positive_int, window_starts

__all__ = ["stream_map", "iter_chunks", "coverage", "SampleTimes", "sample_time_coords"]

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
    dtype: Any = np.float64,
) -> xr.DataArray:
    """One record's anomaly map, computed ``chunk_windows`` windows at a time.

    ``adapter``: a fitted :class:`adapters.WaveformAdapter` (any ``window`` / ``hop``; ``window=None`` scores the
    record as one window) or :class:`adapters.SpectrogramAdapter` (frames are computed per chunk, so only the
    spectrogram grid of the record is held). ``map_fn``: ``X`` float32 ``(n, C, window)`` (or ``(n, C, F, frames)``)
    → maps ``(n, window)`` (``(n, F, frames)``), e.g. ``detector.anomaly_map``. ``item``: one record as the adapter
    takes it (path, :class:`adapters.Record`, ``(array, rate)`` pair, array). ``progress(done, total)`` is called
    after each chunk with the windows scored so far. ``dtype``: the map's dtype (overlaps are averaged in float64,
    then cast; ``np.float32`` halves the map's memory).

    Returns the same DataArray as ``adapter.to_signal(map_fn(X), layout)[0]`` for ``X, layout =
    adapter.to_tensor([item])`` (to float rounding when ``map_fn`` is a per-window function), cast to ``dtype``. A
    waveform map's ``time`` coordinate (seconds, the same values as ``to_signal``'s) is indexed by a lazy
    :class:`SampleTimes` range index rather than a stored array: select along it with ``isel``, or
    ``sel(..., method="nearest")``.
    """
    import adapters

    chunk_windows = positive_int(chunk_windows, "chunk_windows")
    if not callable(map_fn):
        raise ValueError(f"map_fn must be callable (e.g. detector.anomaly_map), got {type(map_fn).__name__}")
    if isinstance(adapter, adapters.SpectrogramAdapter):
        return _stream_spectrogram(adapter, map_fn, item, chunk_windows, progress, dtype)
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
    own_length, source = int(record.data.shape[-1]), record.source
    same_grid = own_length == length and abs(rate - adapter.sample_rate_) <= 1e-9 * adapter.sample_rate_
    # on the record's own grid the map is written in ``dtype`` directly; a resampled record is interpolated from the
    # float64 model-grid map first
    sums = _stitch((length,), starts, window, cut, map_fn, chunk_windows, progress, dtype if same_grid else np.float64)
    del grid, record, cut  # the samples are no longer needed here
    return _waveform_signal(sums, own_length, source, rate, adapter.sample_rate_, dtype)


def _waveform_windows(adapter: Any, grid: np.ndarray, window: int, idx: np.ndarray) -> np.ndarray:
    """The normalised windows starting at ``idx`` of the record ``grid`` ``(C, L)`` (float32 or float64) → float32
    ``(n, C, window)``, with ``to_tensor``'s arithmetic: cut in float64, normalise, then cast to float32."""
    windows = np.stack([grid[:, s : s + window] for s in idx]).astype(np.float64, copy=False)
    return adapter._normalise(windows).astype(np.float32)


def _one_record(adapter: Any, item: Any) -> tuple[Any, np.ndarray, float]:
    """The fitted ``adapter``'s record for ``item``, its samples on the model grid ``(C, L)`` (float32 samples,
    e.g. audio read as float32, stay float32: each chunk is cast to float64 when cut) and its own rate."""
    adapter._check_fitted()
    records = adapter._records([item], keep_float32=True)
    data, rates = adapter._conform(records)
    return records[0], data[0], rates[0]


def _stitch(
    shape: tuple[int, ...],
    starts: np.ndarray,
    window: int,
    cut: Callable[[np.ndarray], np.ndarray],
    map_fn: MapFn,
    chunk_windows: int,
    progress: Progress | None,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Scores the windows at ``starts`` chunk by chunk (``cut(starts_of_chunk)`` → the model input) and averages
    their maps into a map of ``shape`` ``(..., T)`` (windows along the last axis) in ``dtype``.

    The maps are summed in float64 in the order of ``starts`` (as :func:`adapters.base.stitch` sums them); each
    stretch is divided by its window count and cast to ``dtype`` as soon as no later window reaches it. The float64
    sums are kept only for the stretch ``[done, reach)`` that later windows may still add to (one chunk's span)."""
    *lead, total = shape
    out = np.empty(shape, dtype=dtype)
    pending = np.zeros((*lead, 0))  # float64 sums of positions [done, done + pending.shape[-1])
    done = 0  # positions before this one are final (divided by their counts, written to ``out``)
    for first, stop in iter_chunks(len(starts), chunk_windows):
        idx = starts[first:stop]
        x = cut(idx)
        maps = _call(map_fn, x, (len(idx), *lead, window))
        del x
        final = int(starts[stop]) if stop < len(starts) else total
        pending = _grow(pending, max(int(idx[-1]) + window, final) - done)
        for s, m in zip(idx, maps, strict=True):
            pending[..., s - done : s - done + window] += m
        del maps
        if final > done:
            n = final - done
            out[..., done:final] = pending[..., :n] / coverage(starts, window, done, final)
            pending, done = pending[..., n:], final
        if progress is not None:
            progress(stop, len(starts))
    return out


def _grow(pending: np.ndarray, size: int) -> np.ndarray:
    """``pending`` ``(..., n)`` extended with zeros to ``(..., size)`` (itself when it is long enough)."""
    if size <= pending.shape[-1]:
        return pending
    grown = np.zeros((*pending.shape[:-1], size))
    grown[..., : pending.shape[-1]] = pending
    return grown


def _waveform_signal(
    values: np.ndarray, length: int, source: str | None, rate: float, model_rate: float, dtype: Any = np.float64
) -> xr.DataArray:
    """The stitched map on the model grid → the record's own time axis (as ``WaveformAdapter.to_signal`` does),
    in ``dtype``, with a lazy ``time`` coordinate in seconds."""
    from adapters.waveform import _to_own_times

    values = _to_own_times(values, model_rate, length, rate).astype(dtype, copy=False)
    attrs = {"sample_rate": rate}
    if source:
        attrs["source"] = source
    return xr.DataArray(values, dims=("time",), coords=sample_time_coords(length, rate), attrs=attrs, name="anomaly")


class SampleTimes(RangeCoordinateTransform):
    """The times in seconds of samples ``first, first + stride, …`` (``size`` of them) at ``rate`` Hz, computed as
    ``sample / rate`` — bit for bit ``np.arange(n) / rate``, the values ``to_signal`` stores — when read, never
    stored. A :class:`xarray.indexes.RangeIndex` transform, so ``isel`` slices stay lazy."""

    __slots__ = ("first", "rate", "stride")

    def __init__(
        self, size: int, rate: float, coord_name: Any = "time", dim: str = "time", first: int = 0, stride: int = 1
    ):
        self.rate, self.first, self.stride = float(rate), int(first), int(stride)
        start, step = self.first / self.rate, self.stride / self.rate
        super().__init__(start, start + size * step, size, coord_name, dim, step=step)

    def _seconds(self, samples: Any) -> Any:
        return (self.first + np.asarray(samples) * self.stride) / self.rate

    def forward(self, dim_positions: dict[str, Any]) -> dict[Any, Any]:
        return {self.coord_name: self._seconds(dim_positions[self.dim])}

    def reverse(self, coord_labels: dict[Any, Any]) -> dict[str, Any]:
        labels = np.asarray(coord_labels[self.coord_name], dtype=np.float64)
        return {self.dim: (labels * self.rate - self.first) / self.stride}

    def generate_coords(self, dims: tuple[str, ...] | None = None) -> dict[Any, Any]:
        """All the times at once, in one float64 array (xarray's default would hold int64 positions besides)."""
        values = np.arange(self.size, dtype=np.float64)  # exact integers, as arange(n) / rate converts them
        if self.stride != 1:
            values *= self.stride
        if self.first:
            values += self.first
        values /= self.rate
        return {self.coord_name: values}

    def equals(self, other: Any, exclude: Any = None, *, exact: bool = False) -> bool:
        if not isinstance(other, SampleTimes):
            return False
        return (self.rate, self.first, self.stride, self.size) == (other.rate, other.first, other.stride, other.size)

    def slice(self, sl: slice) -> SampleTimes:
        picked = range(self.size)[sl]
        first = self.first + picked.start * self.stride
        return SampleTimes(len(picked), self.rate, self.coord_name, self.dim, first, self.stride * picked.step)


def sample_time_coords(length: int, rate: float, dim: str = "time") -> xr.Coordinates:
    """A lazy, indexed ``dim`` coordinate of ``length`` sample times in seconds at ``rate`` Hz (attrs ``units``
    ``"s"``): the values of ``np.arange(length) / rate`` without storing them (an hour at 10 kHz is 288 MB)."""
    coords = xr.Coordinates.from_xindex(RangeIndex(SampleTimes(int(length), rate, dim, dim)))
    coords[dim].attrs["units"] = "s"
    return coords


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
    adapter: Any, map_fn: MapFn, item: Any, chunk_windows: int, progress: Progress | None, dtype: Any = np.float64
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
    sums = _stitch((bins, n_frames), starts, window, cut, map_fn, chunk_windows, progress, dtype)
    freq = xr.Variable("frequency", adapter.frequencies_.copy(), attrs={"units": "Hz"})
    times = np.arange(n_frames) * hop_length / rate
    attrs = {"sample_rate": record_rate, "n_samples": int(record.data.shape[-1])}
    attrs["scale"] = "linear" if adapter.n_mels is None else "mel"
    if record.source:
        attrs["source"] = record.source
    coords = {"frequency": freq, "time": xr.Variable("time", times, attrs={"units": "s"})}
    return xr.DataArray(sums, dims=("frequency", "time"), coords=coords, attrs=attrs, name="anomaly")
