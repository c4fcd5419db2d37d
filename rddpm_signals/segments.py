"""Where a map is above a threshold: contiguous runs of a 1D map, bounding boxes of connected regions of a 2D map.

The main axis is the map's last dim (``time`` for waveforms and spectrograms, ``x`` for images); the second axis is
the other dim of a 2D map (``frequency``, ``y``). A segment's ``start`` is the coordinate of its first point and its
``end`` the coordinate of its last point plus one grid step (end exclusive); ``low`` / ``high`` likewise along the
second axis (NaN for a 1D map). Coordinates are the DataArray's own (seconds, Hz, pixels); a dim without a numeric
coordinate uses point indices, datetimes become seconds since 1970-01-01. On a non-uniform axis a point's step is
the distance to the next point (the previous one for the last point).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["Segment", "find_segments", "runs", "segments_table", "segments_csv", "write_segments_csv"]


@dataclass(frozen=True)
class Segment:
    """One region above the threshold: ``[start, end)`` along the main axis, ``[low, high)`` along the second axis
    (NaN for 1D maps), and the map's ``peak`` inside it."""

    start: float
    end: float
    low: float
    high: float
    peak: float


def runs(above: np.ndarray, min_gap: int = 0, min_size: int = 1) -> np.ndarray:
    """Runs of ``True`` in a 1D bool array → int ``(n, 2)`` ``[first, stop)`` index pairs, in order.

    Runs separated by at most ``min_gap`` ``False`` points are merged; runs (after merging) shorter than
    ``min_size`` points are dropped."""
    above = np.asarray(above, dtype=bool).ravel()
    padded = np.zeros(above.size + 2, dtype=np.int8)  # int8 throughout: a one-hour map is 36 M points
    padded[1:-1] = above
    edges = np.diff(padded)
    starts, stops = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
    if len(starts) and min_gap > 0:
        keep = np.concatenate([[True], starts[1:] - stops[:-1] > min_gap])
        starts, stops = starts[keep], stops[np.concatenate([keep[1:], [True]])]
    long = stops - starts >= min_size
    return np.stack([starts[long], stops[long]], axis=1).astype(np.int64).reshape(-1, 2)


class _Axis:
    """Coordinates along one dim of a map, read point by point (a one-hour map has 36 M points: no float64 copy
    of the whole axis is made). ``at(i)``: the coordinate of point ``i`` in float (datetimes in seconds since 1970,
    a dim without a numeric coordinate in point indices); ``end(i)``: ``at(i)`` plus the step to the next point
    (the last point takes the step before it)."""

    def __init__(self, da: xr.DataArray, dim: str):
        self.n = da.sizes[dim]
        self.coord = None
        if dim in da.coords:
            coord = da.coords[dim].values
            if (
                np.issubdtype(coord.dtype, np.datetime64)
                or np.issubdtype(coord.dtype, np.timedelta64)
                or (np.issubdtype(coord.dtype, np.number) and not np.iscomplexobj(coord))
            ):
                self.coord = coord
        rate = da.attrs.get("sample_rate") if dim == "time" else None
        self.single_step = 1.0 / float(rate) if rate else 1.0

    def at(self, i: int) -> float:
        if self.coord is None:
            return float(i)
        value = self.coord[i]
        if np.issubdtype(self.coord.dtype, np.datetime64):
            return float(value.astype("datetime64[ns]").astype(np.int64)) / 1e9
        if np.issubdtype(self.coord.dtype, np.timedelta64):
            return float(value.astype("timedelta64[ns]").astype(np.int64)) / 1e9
        return float(value)

    def end(self, i: int) -> float:
        if self.n < 2:
            return self.at(i) + self.single_step
        j = i if i + 1 < self.n else i - 1
        return self.at(i) + (self.at(j + 1) - self.at(j))


def _check_map(anomaly: xr.DataArray) -> xr.DataArray:
    if not isinstance(anomaly, xr.DataArray):
        raise ValueError(f"find_segments needs an xarray.DataArray map, got {type(anomaly).__name__}: pass to_signal's")
    if anomaly.ndim not in (1, 2):
        raise ValueError(
            f"the map has dims {anomaly.dims}: pass one record's map, 1D (time) or 2D (frequency, time) / (y, x)"
        )
    if anomaly.size == 0:
        raise ValueError("the map is empty: pass a map with at least one point")
    return anomaly


def _non_negative(value: int, name: str) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def find_segments(anomaly: xr.DataArray, threshold: float, min_gap: int = 0, min_size: int = 1) -> list[Segment]:
    """The regions of one record's map where ``anomaly > threshold``, ordered by start (then low).

    1D map ``(L,)``: runs of points above the threshold; runs separated by at most ``min_gap`` points are merged,
    runs shorter than ``min_size`` points dropped. 2D map ``(second, main)``: connected regions (8-connectivity)
    after a binary closing over ``min_gap`` points (gaps of up to ``min_gap`` points bridged), regions of fewer than
    ``min_size`` points dropped, each reported by its bounding box. ``peak`` is the largest map value above the
    threshold inside the segment.
    """
    anomaly = _check_map(anomaly)
    min_gap = _non_negative(min_gap, "min_gap")
    min_size = _non_negative(min_size, "min_size")
    threshold = float(threshold)
    values = np.asarray(anomaly.values)  # kept in its own dtype: no copy of a long map
    above = values > threshold  # NaN is never above
    if not above.any():
        return []
    main = _Axis(anomaly, anomaly.dims[-1])
    if anomaly.ndim == 1:
        out = []
        for first, stop in runs(above, min_gap, min_size):
            peak = float(values[first:stop][above[first:stop]].max())
            out.append(Segment(main.at(first), main.end(stop - 1), float("nan"), float("nan"), peak))
        return out
    return _boxes(anomaly, values, above, min_gap, min_size, main)


def _boxes(
    anomaly: xr.DataArray,
    values: np.ndarray,
    above: np.ndarray,
    min_gap: int,
    min_size: int,
    main: _Axis,
) -> list[Segment]:
    from scipy import ndimage

    second = _Axis(anomaly, anomaly.dims[0])
    region = above
    if min_gap > 0:
        # pad so that the erosion never meets the array's border (scipy's closing is not extensive there)
        pad = min_gap + 1
        padded = np.pad(above, pad)
        closed = ndimage.binary_closing(padded, structure=np.ones((min_gap + 1, min_gap + 1), dtype=bool))
        region = closed[pad:-pad, pad:-pad] | above
    labels, n = ndimage.label(region, structure=np.ones((3, 3), dtype=bool))
    out = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == k
        if int(inside.sum()) < min_size:
            continue
        hits = inside & above[box]
        if not hits.any():
            continue
        rows, cols = box
        peak = float(values[box][hits].max())
        last_col, last_row = cols.stop - 1, rows.stop - 1
        out.append(Segment(main.at(cols.start), main.end(last_col), second.at(rows.start), second.end(last_row), peak))
    return sorted(out, key=lambda s: (s.start, s.low, s.end, s.high))


# ------------------------------------------------------------------------------------------------------ tables
_COLUMNS = ("start", "end", "low", "high", "peak")


def segments_table(segments: Sequence[Sequence[Segment]]) -> xr.Dataset:
    """Segments of each record (``segments[i]``: record ``i``'s list) → the result file's segment variables.

    Returns a Dataset with ``n_segments(record)`` int64 and, over dim ``segment`` (possibly 0 long),
    ``segment_record`` int64 and ``segment_start`` / ``_end`` / ``_low`` / ``_high`` / ``_peak`` float64.
    """
    counts = np.array([len(s) for s in segments], dtype=np.int64)
    rows = [seg for per_record in segments for seg in per_record]
    record = np.repeat(np.arange(len(segments), dtype=np.int64), counts)
    data = {"n_segments": ("record", counts), "segment_record": ("segment", record)}
    for col in _COLUMNS:
        data[f"segment_{col}"] = ("segment", np.array([getattr(s, col) for s in rows], dtype=np.float64))
    return xr.Dataset(data)


def segments_csv(segments: Sequence[Sequence[Segment]], sources: Sequence[str] | None = None) -> str:
    """One CSV line per segment: ``record,source,start,end,low,high,peak`` (``source`` empty without sources)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("record", "source", *_COLUMNS))
    for i, per_record in enumerate(segments):
        source = "" if sources is None else str(sources[i])
        for seg in per_record:
            writer.writerow((i, source, *(repr(float(getattr(seg, c))) for c in _COLUMNS)))
    return buf.getvalue()


def write_segments_csv(
    path: str | os.PathLike, segments: Sequence[Sequence[Segment]], sources: Sequence[str] | None = None
) -> None:
    """Write :func:`segments_csv` to ``path`` atomically."""
    from ._io import atomic_write_text

    atomic_write_text(path, segments_csv(segments, sources))
