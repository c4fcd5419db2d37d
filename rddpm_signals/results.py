"""The result file of ``rddpm-signals score`` (``RESULT.nc``): write it, open it lazily, and turn its table into a
segments CSV and a terminal summary.

Layout (netCDF4 via h5netcdf, readable as an ``xarray.DataTree``): the root group is the per-record table (dim
``record``: ``source``, ``score``, ``flagged``, ``peak``, ``n_segments``) and the segments (dim ``segment``:
``segment_record``, ``segment_start``, ``segment_end``, ``segment_low``, ``segment_high``, ``segment_peak``) with the
thresholds and units as attributes; record ``i`` lives in the group ``records/r{i:05d}`` (``anomaly`` map and the
``signal`` the model saw, on the record's own axes).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from ._io import atomic_path, atomic_write_text

__all__ = [
    "RECORD_VARS",
    "SEGMENT_VARS",
    "CSV_COLUMNS",
    "Result",
    "record_group",
    "write_result",
    "open_result",
    "segments_csv",
    "write_segments_csv",
    "summary_lines",
]

RECORD_VARS = ("source", "score", "flagged", "peak", "n_segments")
SEGMENT_VARS = ("segment_record", "segment_start", "segment_end", "segment_low", "segment_high", "segment_peak")
_REQUIRED_ATTRS = ("score_threshold", "map_threshold")
CSV_COLUMNS = (
    "file",
    "record",
    "start",
    "end",
    "unit",
    "low",
    "high",
    "second_unit",
    "peak",
    "record_score",
    "record_flagged",
)
_ENGINE = "h5netcdf"
_COMPRESS_ABOVE = 1 << 16


def record_group(i: int) -> str:
    """The group path of record ``i``: ``records/r00003``."""
    return f"records/r{int(i):05d}"


def _clean_attrs(attrs: dict) -> dict:
    """netCDF attributes cannot hold bools, None or paths: bool → int 0/1, None → "", PathLike → str."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)):
            value = int(value)
        elif value is None:
            value = ""
        elif isinstance(value, os.PathLike):
            value = os.fspath(value)
        out[key] = value
    return out


def _clean_dataset(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy(deep=False)
    ds.attrs = _clean_attrs(ds.attrs)
    for name in ds.variables:
        ds[name].attrs = _clean_attrs(ds[name].attrs)
    return ds


def _empty(var: str) -> np.ndarray:
    return np.zeros(0, dtype=np.int64 if var == "segment_record" else np.float64)


def _check_table(table: xr.Dataset, n_records: int) -> xr.Dataset:
    if not isinstance(table, xr.Dataset):
        raise ValueError(f"table is a {type(table).__name__}: pass an xarray.Dataset with a 'record' dim")
    missing = [v for v in RECORD_VARS if v not in table.variables]
    if "record" not in table.dims or missing:
        raise ValueError(f"table lacks the 'record' dim or the variables {missing}: build it as the result schema says")
    if table.sizes["record"] != n_records:
        raise ValueError(f"table has {table.sizes['record']} records but {n_records} record datasets were given")
    present = [v for v in SEGMENT_VARS if v in table.variables]
    if not present:  # no segment found anywhere: add the empty segment variables so readers need no special case
        table = table.assign({v: ("segment", _empty(v)) for v in SEGMENT_VARS})
    elif len(present) != len(SEGMENT_VARS):
        missing = sorted(set(SEGMENT_VARS) - set(present))
        raise ValueError(f"table lacks the segment variables {missing}: give all of {list(SEGMENT_VARS)}")
    rec = np.asarray(table["segment_record"].values)
    if rec.size and (rec.min() < 0 or rec.max() >= n_records):
        raise ValueError(f"segment_record holds indices outside [0, {n_records}): each must index a record")
    table = table.assign(
        flagged=table["flagged"].astype(bool),
        source=table["source"].astype(str),
        segment_record=table["segment_record"].astype(np.int64),
    )
    return _clean_dataset(table)


def write_result(path: str | os.PathLike, table: xr.Dataset, records: Sequence[xr.Dataset]) -> None:
    """Write the result file atomically.

    ``table``: the root group (dims ``record`` (n) and ``segment`` (k, may be 0); variables and attrs as the result
    schema says). ``records[i]``: the Dataset of record ``i`` (``anomaly`` map, ``signal`` with a leading ``channel``
    dim), written to the group ``records/r{i:05d}``. Records are written one at a time, so ``records`` may be a lazy
    sequence that builds each Dataset on access.
    """
    import h5netcdf
    from xarray.backends import H5NetCDFStore

    table = _check_table(table, len(records))
    with atomic_path(path) as tmp, h5netcdf.File(tmp, "w") as f:
        table.dump_to_store(H5NetCDFStore(f, mode="a"))
        if len(records):
            parent = f.create_group("records")
            for i in range(len(records)):
                ds = records[i]
                if not isinstance(ds, xr.Dataset) or "anomaly" not in ds:
                    raise ValueError(f"record {i} is not an xarray.Dataset with an 'anomaly' map: build one per record")
                ds = _clean_dataset(ds)
                group = parent.create_group(record_group(i).split("/")[1])
                ds.dump_to_store(H5NetCDFStore(group, mode="a"), encoding=_coord_encoding(ds))


def _coord_encoding(ds: xr.Dataset) -> dict:
    """Compress long numeric 1D coordinates (a time axis of an hour at 10 kHz is 288 MB of float64 that gzip shrinks
    to almost nothing); the maps and signals stay uncompressed, which is 4× faster to write for a little more disk."""
    enc = {}
    for name, var in ds.coords.items():
        if var.ndim == 1 and var.size > _COMPRESS_ABOVE and np.issubdtype(var.dtype, np.number):
            chunk = min(1 << 20, var.size)  # a chunk longer than the axis is refused by HDF5
            enc[name] = {"compression": "gzip", "compression_opts": 1, "shuffle": True, "chunksizes": (chunk,)}
    return enc


class Result:
    """An opened result file: ``table`` (the root Dataset, loaded) and ``record(i)`` (one group read on demand).

    Only the root table is read on opening; a record's arrays are read when ``record(i)`` is called, so a result with
    thousands of records or one hour-long map opens at once.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(
                f"no result file at {str(self.path)!r}: pass the RESULT.nc written by 'rddpm-signals score'"
            )
        try:
            with xr.open_dataset(self.path, engine=_ENGINE) as ds:
                table = ds.load()
        except Exception as err:  # h5py / h5netcdf raise OSError, KeyError, ... on damaged files
            raise ValueError(
                f"{str(self.path)!r} is not a readable netCDF file ({type(err).__name__}: {err}): rewrite it with "
                "'rddpm-signals score'"
            ) from None
        missing = [v for v in RECORD_VARS if v not in table.variables]
        missing += [a for a in _REQUIRED_ATTRS if a not in table.attrs]
        if "record" not in table.dims or missing:
            raise ValueError(
                f"{str(self.path)!r} is not an rddpm-signals result (no 'record' dim or missing {missing}): pass the "
                "RESULT.nc written by 'rddpm-signals score'"
            )
        for v in SEGMENT_VARS:  # a table written without segments reads like one with zero
            if v not in table.variables:
                table[v] = ("segment", _empty(v))
        table["flagged"] = table["flagged"].astype(bool)
        self.table = table

    @property
    def n_records(self) -> int:
        return int(self.table.sizes["record"])

    @property
    def attrs(self) -> dict:
        return dict(self.table.attrs)

    def __len__(self) -> int:
        return self.n_records

    def record(self, i: int) -> xr.Dataset:
        """Record ``i``'s Dataset (``anomaly``, ``signal``, attrs ``source`` / ``score`` / ``flagged``), loaded."""
        if not 0 <= int(i) < self.n_records:
            raise ValueError(f"record {i} does not exist: this result holds records 0 to {self.n_records - 1}")
        group = record_group(i)
        try:
            with xr.open_dataset(self.path, engine=_ENGINE, group=group) as ds:
                return ds.load()
        except Exception as err:
            raise ValueError(
                f"cannot read group {group!r} of {str(self.path)!r} ({type(err).__name__}: {err}): the file is "
                "incomplete; rewrite it with 'rddpm-signals score'"
            ) from None

    def records(self) -> Iterator[xr.Dataset]:
        """Each record in turn, one group in memory at a time."""
        for i in range(self.n_records):
            yield self.record(i)

    def segments_of(self, i: int) -> xr.Dataset:
        """The rows of the segment table that belong to record ``i``."""
        return self.table[list(SEGMENT_VARS)].isel(segment=np.flatnonzero(self.table["segment_record"].values == i))

    def __repr__(self) -> str:
        return f"Result({str(self.path)!r}, {self.n_records} records, {self.table.sizes.get('segment', 0)} segments)"


def open_result(path: str | os.PathLike) -> Result:
    """Open a result file; raises ValueError (one line) for a missing, damaged or foreign file."""
    return Result(path)


def _fixed(x: float) -> str:
    """Up to 6 decimals without trailing zeros (seconds to the µs, Hz, pixels); NaN → empty."""
    x = float(x)
    if not np.isfinite(x):
        return "" if np.isnan(x) else str(x)
    return np.format_float_positional(x, precision=6, unique=True, trim="-")


def _general(x: float) -> str:
    x = float(x)
    return "" if np.isnan(x) else f"{x:.9g}"


def segments_csv(table: xr.Dataset) -> str:
    """The segments as CSV text, one row per segment, columns ``CSV_COLUMNS``; empty table → header only.

    ``start``/``end``/``low``/``high`` along the result's axes (``unit`` = ``main_unit``, ``second_unit``; ``low``
    and ``high`` empty for waveforms); ``record_flagged`` is ``true``/``false``.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    n_seg = table.sizes.get("segment", 0)
    if n_seg:
        unit, second = str(table.attrs.get("main_unit", "")), str(table.attrs.get("second_unit", ""))
        source = table["source"].values
        score, flagged = table["score"].values, table["flagged"].values.astype(bool)
        cols = {v: table[v].values for v in SEGMENT_VARS}
        for k in range(n_seg):
            r = int(cols["segment_record"][k])
            writer.writerow(
                [
                    str(source[r]),
                    r,
                    _fixed(cols["segment_start"][k]),
                    _fixed(cols["segment_end"][k]),
                    unit,
                    _fixed(cols["segment_low"][k]),
                    _fixed(cols["segment_high"][k]),
                    second,
                    _general(cols["segment_peak"][k]),
                    _general(score[r]),
                    "true" if flagged[r] else "false",
                ]
            )
    return buf.getvalue()


def write_segments_csv(path: str | os.PathLike, table: xr.Dataset) -> None:
    """Write :func:`segments_csv` atomically."""
    atomic_write_text(path, segments_csv(table))


def _shorten(name: str, width: int) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def summary_lines(table: xr.Dataset, top: int = 10) -> list[str]:
    """A fixed-width summary for the terminal: a header with counts and thresholds, then the ``top`` records by
    score (descending) with file name, score, flagged, segments and peak."""
    n = table.sizes["record"]
    n_seg = table.sizes.get("segment", 0)
    flagged = table["flagged"].values.astype(bool)
    st, mt = float(table.attrs.get("score_threshold", np.nan)), float(table.attrs.get("map_threshold", np.nan))
    lines = [
        f"{n} record{'s' * (n != 1)}, {int(flagged.sum())} flagged (score > {st:.4g}); "
        f"{n_seg} segment{'s' * (n_seg != 1)} (map > {mt:.4g})"
    ]
    if n == 0:
        return lines
    scores = table["score"].values.astype(float)
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[: max(int(top), 0)]
    names = [Path(str(s)).name or str(s) for s in table["source"].values]
    width = min(max([4, *(len(names[i]) for i in order)]), 40)
    lines.append(f"{'rank':>4}  {'file':<{width}}  {'score':>10}  {'flagged':>7}  {'segments':>8}  {'peak':>10}")
    peaks, segs = table["peak"].values.astype(float), table["n_segments"].values
    for rank, i in enumerate(order, 1):
        lines.append(
            f"{rank:>4}  {_shorten(names[i], width):<{width}}  {scores[i]:>10.4g}  "
            f"{'yes' if flagged[i] else 'no':>7}  {int(segs[i]):>8}  {peaks[i]:>10.4g}"
        )
    if n > len(order):
        lines.append(f"… {n - len(order)} more record{'s' * (n - len(order) != 1)} (lower scores)")
    return lines
