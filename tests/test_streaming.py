"""rddpm_signals.streaming: a long record scored chunk by chunk gives the whole-record map."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

import adapters
from adapters.base import window_starts
from rddpm_signals.streaming import coverage, iter_chunks, stream_map


class MovingAbs:
    """A per-window map: |x| averaged over channels, then a 5-point moving average inside the window (so windows
    that overlap disagree and the averaging of overlaps matters). Records the largest batch it saw."""

    def __init__(self):
        self.largest = 0
        self.calls = 0

    def __call__(self, X: np.ndarray) -> np.ndarray:
        self.largest = max(self.largest, len(X))
        self.calls += 1
        a = np.abs(X.astype(np.float64)).mean(axis=1)
        flat = a.reshape(-1, a.shape[-1])
        k = np.ones(5) / 5
        return np.stack([np.convolve(r, k, mode="same") for r in flat]).reshape(a.shape) + 0.01 * np.arange(a.shape[-1])


def _whole(adapter, fn, item):
    X, layout = adapter.to_tensor([item])
    return adapter.to_signal(fn(X), layout)[0]


@pytest.fixture
def record():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 3001)) + np.sin(np.arange(3001) / 20.0)


@pytest.mark.parametrize(("window", "hop"), [(64, 32), (100, None), (64, 17), (None, None), (3001, None)])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_waveform_stream_equals_the_whole_record(record, window, hop, chunk):
    adapter = adapters.WaveformAdapter(sample_rate=100, window=window, hop=hop).fit([(record, 100)])
    fn = MovingAbs()
    expected = _whole(adapter, fn, (record, 100))
    fn = MovingAbs()
    seen = []
    got = stream_map(
        adapter, fn, adapters.Record(record, 100, "r.wav"), chunk, progress=lambda d, t: seen.append((d, t))
    )
    np.testing.assert_array_equal(got.values, expected.values)
    np.testing.assert_array_equal(got.time.values, expected.time.values)
    assert got.dims == ("time",) and got.name == "anomaly" and got.attrs == {"sample_rate": 100.0, "source": "r.wav"}
    assert got.time.attrs == expected.time.attrs == {"units": "s"} and "time" in got.indexes
    n = len(window_starts(3001, window or 3001, hop or window or 3001))
    assert fn.largest == min(chunk, n) and fn.calls == -(-n // chunk)
    assert seen[-1] == (n, n) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_waveform_stream_resampled_record(record):
    adapter = adapters.WaveformAdapter(sample_rate=100, window=64, hop=32, resample=True).fit([(record, 100)])
    item = (record[:, :2000], 150)
    expected = _whole(adapter, MovingAbs(), item)
    got = stream_map(adapter, MovingAbs(), item, chunk_windows=4)
    assert got.shape == (2000,) and got.attrs["sample_rate"] == 150.0
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got.time.values, expected.time.values)


@pytest.mark.parametrize(
    "options",
    [
        {"n_mels": 16, "n_fft": 128, "hop_length": 32, "window_frames": 16, "hop_frames": 8},
        {"n_mels": None, "n_fft": 127, "hop_length": 30, "window_frames": 10, "f_min": 5.0, "f_max": 40.0},
    ],
)
@pytest.mark.parametrize("chunk", [1, 5])
def test_spectrogram_stream_equals_the_whole_record(record, options, chunk):
    adapter = adapters.SpectrogramAdapter(sample_rate=100, **options).fit([(record, 100)])
    expected = _whole(adapter, MovingAbs(), (record, 100))
    fn = MovingAbs()
    got = stream_map(adapter, fn, (record, 100), chunk_windows=chunk)
    assert fn.largest == chunk
    assert got.dims == ("frequency", "time") and got.shape == expected.shape
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got.time.values, expected.time.values)
    np.testing.assert_array_equal(got.frequency.values, expected.frequency.values)
    assert got.attrs == expected.attrs


def test_stream_refusals(record):
    adapter = adapters.WaveformAdapter(sample_rate=100, window=64).fit([(record, 100)])
    with pytest.raises(ValueError, match="map_fn returned shape"):
        stream_map(adapter, lambda X: X, (record, 100))
    with pytest.raises(ValueError, match="NaN"):
        stream_map(adapter, lambda X: np.full((len(X), 64), np.nan), (record, 100))
    # a channel axis of one is dropped, as check_maps does
    got = stream_map(adapter, lambda X: np.abs(X).mean(axis=1, keepdims=True), (record, 100))
    assert got.shape == (3001,)
    with pytest.raises(ValueError, match="chunk_windows"):
        stream_map(adapter, MovingAbs(), (record, 100), chunk_windows=0)
    with pytest.raises(ValueError, match="WaveformAdapter or SpectrogramAdapter"):
        stream_map(adapters.ImageAdapter(), MovingAbs(), np.zeros((4, 4)))
    with pytest.raises(NotFittedError):
        stream_map(adapters.WaveformAdapter(window=8), MovingAbs(), (record, 100))
    with pytest.raises(ValueError, match="shorter than one window"):
        stream_map(adapter, MovingAbs(), (record[:, :10], 100))


def test_chunks_and_coverage():
    assert list(iter_chunks(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(iter_chunks(0, 3)) == []
    starts = window_starts(50, 8, 3)
    brute = np.zeros(50, dtype=int)
    for s in starts:
        brute[s : s + 8] += 1
    np.testing.assert_array_equal(coverage(starts, 8, 0, 50), brute)
    np.testing.assert_array_equal(coverage(starts, 8, 13, 29), brute[13:29])


def test_streamed_time_axis_is_lazy_and_in_seconds(record):
    from xarray.indexes import RangeIndex

    adapter = adapters.WaveformAdapter(sample_rate=100, window=64, hop=32).fit([(record, 100)])
    expected = _whole(adapter, MovingAbs(), (record, 100))
    got = stream_map(adapter, MovingAbs(), (record, 100), chunk_windows=5, dtype=np.float32)
    # the map in float32 is the whole-record map cast once (overlaps are still averaged in float64)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.values, expected.values.astype(np.float32))
    # time in seconds, the same values as to_signal's stored axis, from an index that stores none of them
    assert isinstance(got.xindexes["time"], RangeIndex) and got.time.attrs == {"units": "s"}
    assert got.time.dtype == np.float64 and got.time.shape == (3001,)
    np.testing.assert_array_equal(got.time.values, np.arange(3001) / 100.0)
    assert float(got.time[-1]) == 30.0 and float(got.time[1]) == 0.01
    part = got.isel(time=slice(1000, 2000, 3))
    np.testing.assert_array_equal(part.time.values, expected.time.values[1000:2000:3])
    np.testing.assert_array_equal(part.values, got.values[1000:2000:3])
    assert float(got.sel(time=12.344, method="nearest").time) == 12.34


def test_float32_record_streams_without_a_float64_copy(record):
    x32 = record.astype(np.float32)
    adapter = adapters.WaveformAdapter(sample_rate=100, window=64, hop=17).fit([(x32, 100)])
    expected = _whole(adapter, MovingAbs(), (x32, 100))  # the whole-record path computes in float64
    got = stream_map(adapter, MovingAbs(), adapters.Record(x32, 100), chunk_windows=3)
    np.testing.assert_array_equal(got.values, expected.values)
    # resampled: the float32 record is resampled in float64, as its float64 copy is
    adapter = adapters.WaveformAdapter(sample_rate=100, window=64, hop=32, resample=True).fit([(x32, 100)])
    item = (x32[:, :2000], 150)
    expected = _whole(adapter, MovingAbs(), (x32[:, :2000].astype(np.float64), 150))
    got = stream_map(adapter, MovingAbs(), item, chunk_windows=4, dtype=np.float32)
    assert got.dtype == np.float32 and got.shape == (2000,)
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(got.time.values, np.arange(2000) / 150.0)


def test_stream_memory_is_the_map_not_float64_copies():
    import tracemalloc

    n = 1 << 20
    x = np.random.default_rng(1).normal(size=(1, n)).astype(np.float32)
    adapter = adapters.WaveformAdapter(sample_rate=1000, window=1024, hop=512).fit([(x[:, :8192], 1000)])
    tracemalloc.start()
    try:
        got = stream_map(adapter, MovingAbs(), adapters.Record(x, 1000), chunk_windows=8, dtype=np.float32)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.shape == (n,) and got.dtype == np.float32
    # the float32 map (4 B per point) and one chunk's float64 work; no record-length float64 array (8 B per point:
    # a copy of the record, running sums over the whole record, a stored time axis)
    assert peak < 4 * n + (1 << 21), peak
