"""rddpm_signals.segments: runs of a 1D map and boxes of a 2D map above a threshold, on the map's own axes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rddpm_signals.segments import Segment, find_segments, runs, segments_csv, segments_table, write_segments_csv


def _series(values, rate=10.0) -> xr.DataArray:
    values = np.asarray(values, dtype=np.float64)
    time = np.arange(len(values)) / rate
    return xr.DataArray(values, dims=("time",), coords={"time": time}, attrs={"sample_rate": rate})


def _brute_runs(above: np.ndarray, min_gap: int, min_size: int) -> list[tuple[int, int]]:
    """Scan point by point: open a run at the first point above, close it after the last point above once more
    than ``min_gap`` points below follow."""
    out, first, last = [], None, None
    for i, a in enumerate(above):
        if a:
            if first is not None and i - last - 1 > min_gap:
                out.append((first, last + 1))
                first = None
            if first is None:
                first = i
            last = i
    if first is not None:
        out.append((first, last + 1))
    return [(a, b) for a, b in out if b - a >= min_size]


def test_runs_on_the_time_axis():
    da = _series([0, 5, 6, 0, 0, 7, 0, 0, 0, 9], rate=10.0)
    segs = find_segments(da, 1.0)
    assert [(s.start, s.end, s.peak) for s in segs] == [(0.1, 0.3, 6.0), (0.5, 0.6, 7.0), (0.9, 1.0, 9.0)]
    assert all(math.isnan(s.low) and math.isnan(s.high) for s in segs)
    merged = find_segments(da, 1.0, min_gap=2)
    assert [(s.start, s.end, s.peak) for s in merged] == [(0.1, 0.6, 7.0), (0.9, 1.0, 9.0)]
    assert [(s.start, s.end) for s in find_segments(da, 1.0, min_size=2)] == [(0.1, 0.3)]
    assert find_segments(da, 9.0) == []  # strictly above


def test_non_uniform_and_missing_coordinates():
    da = xr.DataArray([0.0, 2.0, 2.0, 0.0, 3.0], dims=("time",), coords={"time": [0.0, 1.0, 3.0, 7.0, 8.0]})
    assert [(s.start, s.end) for s in find_segments(da, 1.0)] == [(1.0, 7.0), (8.0, 9.0)]
    plain = xr.DataArray([0.0, 2.0, 2.0], dims=("sample",))
    assert [(s.start, s.end) for s in find_segments(plain, 1.0)] == [(1.0, 3.0)]
    one = xr.DataArray([5.0], dims=("time",), coords={"time": [2.0]}, attrs={"sample_rate": 4.0})
    assert [(s.start, s.end) for s in find_segments(one, 1.0)] == [(2.0, 2.25)]
    times = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:01", "2024-01-01T00:00:02"], dtype="datetime64[ns]")
    dated = xr.DataArray([0.0, 4.0, 0.0], dims=("time",), coords={"time": times})
    (seg,) = find_segments(dated, 1.0)
    assert seg.end - seg.start == 1.0 and seg.start == times[1].astype("datetime64[s]").astype(np.int64)


def test_boxes_on_a_spectrogram():
    values = np.zeros((4, 6))
    values[1:3, 1:3] = 2.0
    values[3, 5] = 5.0
    values[0, 4] = 3.0
    da = xr.DataArray(
        values,
        dims=("frequency", "time"),
        coords={"frequency": [0.0, 100.0, 200.0, 400.0], "time": np.arange(6) * 0.5},
    )
    segs = find_segments(da, 1.0)
    assert [(s.start, s.end, s.low, s.high, s.peak) for s in segs] == [
        (0.5, 1.5, 100.0, 400.0, 2.0),
        (2.0, 2.5, 0.0, 100.0, 3.0),
        (2.5, 3.0, 400.0, 600.0, 5.0),
    ]
    # 8-connectivity: a diagonal neighbour joins the region
    values[3, 3] = 4.0
    grown = find_segments(da.copy(data=values), 1.0)
    assert len(grown) == 3 and (grown[0].end, grown[0].high, grown[0].peak) == (2.0, 600.0, 4.0)
    # min_size counts the region's points
    assert len(find_segments(da.copy(data=values), 1.0, min_size=2)) == 1


def test_boxes_on_an_image_and_gap_closing():
    img = np.zeros((8, 10))
    img[2, 1:3] = 1.0
    img[2, 5:7] = 1.0  # two points apart from the first run
    img[7, 9] = 1.0  # in the corner: closing must not erode it
    da = xr.DataArray(img, dims=("y", "x"), coords={"y": np.arange(8), "x": np.arange(10)})
    assert len(find_segments(da, 0.5)) == 3
    assert len(find_segments(da, 0.5, min_gap=1)) == 3
    segs = find_segments(da, 0.5, min_gap=2)
    assert [(s.start, s.end, s.low, s.high) for s in segs] == [(1.0, 7.0, 2.0, 3.0), (9.0, 10.0, 7.0, 8.0)]


def test_bad_input():
    with pytest.raises(ValueError, match="DataArray"):
        find_segments(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="dims"):
        find_segments(xr.DataArray(np.zeros((2, 2, 2))), 0.0)
    with pytest.raises(ValueError, match="min_gap"):
        find_segments(_series([1.0]), 0.0, min_gap=-1)


def test_tables(tmp_path):
    per_record = [
        [Segment(0.0, 1.0, math.nan, math.nan, 3.0), Segment(2.0, 2.5, math.nan, math.nan, 4.0)],
        [],
        [Segment(1.0, 2.0, 10.0, 20.0, 5.0)],
    ]
    ds = segments_table(per_record)
    assert ds["n_segments"].values.tolist() == [2, 0, 1]
    assert ds["segment_record"].values.tolist() == [0, 0, 2]
    assert ds["segment_start"].dtype == np.float64 and ds["segment_end"].values.tolist() == [1.0, 2.5, 2.0]
    assert ds.sizes["segment"] == 3
    empty = segments_table([[], []])
    assert empty.sizes["segment"] == 0 and empty["segment_peak"].dtype == np.float64
    write_segments_csv(tmp_path / "s.csv", per_record, ["a.wav", "b.wav", "c.wav"])
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "record,source,start,end,low,high,peak"
    assert lines[3] == "2,c.wav,1.0,2.0,10.0,20.0,5.0" and len(lines) == 4
    assert segments_csv([[]]) == "record,source,start,end,low,high,peak\n"


# ------------------------------------------------------------------------------------------------------ properties
maps_1d = arrays(np.float64, st.integers(1, 60), elements=st.floats(-3, 3, allow_nan=False, width=32))


@settings(max_examples=150, deadline=None)
@given(values=maps_1d, threshold=st.floats(-3, 3, width=32), min_gap=st.integers(0, 4), min_size=st.integers(1, 4))
def test_runs_equal_a_brute_force_scan(values, threshold, min_gap, min_size):
    above = values > threshold
    expected = _brute_runs(above, min_gap, min_size)
    assert [tuple(r) for r in runs(above, min_gap, min_size).tolist()] == expected
    rate = 8.0
    segs = find_segments(_series(values, rate), threshold, min_gap, min_size)
    assert [(s.start, s.end) for s in segs] == [(a / rate, b / rate) for a, b in expected]
    assert [s.peak for s in segs] == [values[a:b][above[a:b]].max() for a, b in expected]


@settings(max_examples=150, deadline=None)
@given(values=maps_1d, threshold=st.floats(-3, 3, width=32), min_gap=st.integers(0, 4))
def test_every_point_above_lies_in_exactly_one_run(values, threshold, min_gap):
    segs = find_segments(_series(values, 1.0), threshold, min_gap)
    t = np.arange(len(values))
    inside = np.array([sum(s.start <= ti < s.end for s in segs) for ti in t])
    assert (inside[values > threshold] == 1).all()
    assert (inside <= 1).all()
    assert find_segments(_series(values), values.max()) == []


@settings(max_examples=100, deadline=None)
@given(
    values=arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.floats(0, 1, width=32)),
    threshold=st.floats(0, 1, width=32),
    min_gap=st.integers(0, 2),
)
def test_boxes_cover_every_point_above(values, threshold, min_gap):
    from scipy import ndimage

    da = xr.DataArray(
        values, dims=("y", "x"), coords={"y": np.arange(values.shape[0]), "x": np.arange(values.shape[1])}
    )
    segs = find_segments(da, threshold, min_gap)
    ys, xs = np.nonzero(values > threshold)
    # boxes of different regions may overlap (an L and a dot in its corner), so "at least one" is the property
    for y, x in zip(ys, xs, strict=True):
        assert any(s.start <= x < s.end and s.low <= y < s.high for s in segs)
    if min_gap == 0:
        assert len(segs) == ndimage.label(values > threshold, structure=np.ones((3, 3)))[1]
    assert all(s.peak > threshold for s in segs)
    assert find_segments(da, values.max()) == []
