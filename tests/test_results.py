"""The result file: round trip, lazy record access, segments CSV, terminal summary, bad files.

The ``*_records`` / ``build_result`` helpers build small synthetic results that follow the result schema; the report
tests reuse them."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from rddpm_signals.results import (
    CSV_COLUMNS,
    open_result,
    segments_csv,
    summary_lines,
    write_result,
    write_segments_csv,
)

# --------------------------------------------------------------------------------------------------------------
# synthetic results (shared with tests/test_report.py)


def waveform_records(n: int = 3, rate: float = 2000.0, seconds: float = 2.0, seed: int = 0) -> list[xr.Dataset]:
    """Two-channel sines; record 0 has a 1-sample spike at 1.2 s, record 1 a 50 ms burst at 0.5 s."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    out = []
    for i in range(n):
        sig = np.stack([np.sin(2 * np.pi * 5 * t), 0.5 * np.cos(2 * np.pi * 3 * t)])
        sig += 0.02 * rng.normal(size=(2, t.size))
        amap = np.abs(0.05 * rng.normal(size=t.size))
        if i == 0:
            k = int(1.2 * rate)
            sig[0, k] += 4.0
            amap[k - 2 : k + 3] += 3.0
        if i == 1:
            sl = slice(int(0.5 * rate), int(0.55 * rate))
            sig[1, sl] += 0.8
            amap[sl] += 1.0
        time = xr.Variable("time", t, attrs={"units": "s"})
        out.append(
            xr.Dataset(
                {
                    "anomaly": (("time",), amap.astype(np.float32)),
                    "signal": (("channel", "time"), sig.astype(np.float32), {"units": "kN"}),
                },
                coords={"time": time, "channel": ["press A", "press B"]},
            )
        )
    return out


def spectrogram_records(n: int = 2, seed: int = 0) -> list[xr.Dataset]:
    """Noise in dB on 64 frequencies (0–4 kHz) × 200 frames (5 s); record 0 has a 1 kHz tone burst at 2.0–2.5 s."""
    rng = np.random.default_rng(seed)
    f = np.linspace(0, 4000, 64)
    t = np.arange(200) * 0.025
    out = []
    for i in range(n):
        sig = -60 + 3 * rng.normal(size=(1, f.size, t.size))
        amap = np.abs(0.1 * rng.normal(size=(f.size, t.size)))
        if i == 0:
            fi = np.abs(f - 1000).argmin()
            ti = (t >= 2.0) & (t < 2.5)
            sig[0, fi - 1 : fi + 2, ti] = -10
            amap[fi - 1 : fi + 2, ti] += 2.0
        out.append(
            xr.Dataset(
                {
                    "anomaly": (("frequency", "time"), amap.astype(np.float32)),
                    "signal": (("channel", "frequency", "time"), sig.astype(np.float32), {"units": "dB"}),
                },
                coords={
                    "frequency": xr.Variable("frequency", f, attrs={"units": "Hz"}),
                    "time": xr.Variable("time", t, attrs={"units": "s"}),
                },
            )
        )
    return out


def image_records(n: int = 2, height: int = 48, width: int = 64, seed: int = 0) -> list[xr.Dataset]:
    """Grey striped texture in [0, 1]; record 0 has a dark 6 × 8 blob at rows 20–25, columns 40–47."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = 0.6 + 0.1 * np.sin(np.arange(height) / 2)[:, None] + 0.03 * rng.normal(size=(height, width))
        amap = np.abs(0.05 * rng.normal(size=(height, width)))
        if i == 0:
            img[20:26, 40:48] = 0.1
            amap[20:26, 40:48] += 1.0
        out.append(
            xr.Dataset(
                {
                    "anomaly": (("y", "x"), amap.astype(np.float32)),
                    "signal": (("channel", "y", "x"), np.clip(img, 0, 1)[None].astype(np.float32)),
                },
                coords={"y": np.arange(height), "x": np.arange(width)},
            )
        )
    return out


def _edges(coord: np.ndarray, lo: int, hi: int) -> tuple[float, float]:
    """[start, end) of the index run lo..hi-1 along ``coord``: end = last coordinate + one step."""
    step = float(coord[1] - coord[0]) if coord.size > 1 else 1.0
    return float(coord[lo]), float(coord[hi - 1]) + step


def build_result(
    records: list[xr.Dataset],
    modality: str,
    map_threshold: float = 0.5,
    score_threshold: float = 0.3,
    sources: list[str] | None = None,
) -> tuple[xr.Dataset, list[xr.Dataset]]:
    """(table, records) as ``rddpm-signals score`` would write them: score = 0.999 quantile, segments = connected
    regions of the map above ``map_threshold``."""
    sources = sources or [f"/data/line 3/{modality}_{i:03d}.dat" for i in range(len(records))]
    seg = {k: [] for k in ("record", "start", "end", "low", "high", "peak")}
    scores, peaks, counts = [], [], []
    out = []
    for i, ds in enumerate(records):
        amap = ds["anomaly"].values
        score = float(np.quantile(amap, 0.999))
        labels, k = ndimage.label(amap > map_threshold)
        for region, sl in enumerate(ndimage.find_objects(labels), 1):
            if amap.ndim == 1:
                start, end = _edges(ds["time"].values, sl[0].start, sl[0].stop)
                low = high = np.nan
            else:
                main, second = ("time", "frequency") if modality == "spectrogram" else ("x", "y")
                start, end = _edges(ds[main].values, sl[1].start, sl[1].stop)
                low, high = _edges(ds[second].values, sl[0].start, sl[0].stop)
            for key, value in zip(seg, (i, start, end, low, high, float(amap[labels == region].max())), strict=True):
                seg[key].append(value)
        scores.append(score)
        peaks.append(float(amap.max()))
        counts.append(k)
        out.append(ds.assign_attrs(source=sources[i], score=score, flagged=int(score > score_threshold)))
    table = xr.Dataset(
        {
            "source": ("record", np.array(sources, dtype=object)),
            "score": ("record", np.array(scores)),
            "flagged": ("record", np.array(scores) > score_threshold),
            "peak": ("record", np.array(peaks)),
            "n_segments": ("record", np.array(counts, dtype=np.int64)),
            "segment_record": ("segment", np.array(seg["record"], dtype=np.int64)),
            **{
                f"segment_{k}": ("segment", np.array(seg[k], dtype=np.float64))
                for k in ("start", "end", "low", "high", "peak")
            },
        },
        attrs={
            "score_threshold": score_threshold,
            "map_threshold": map_threshold,
            "threshold_method": "manual",
            "modality": modality,
            "main_unit": "px" if modality == "image" else "s",
            "second_unit": {"waveform": "", "spectrogram": "Hz", "image": "px"}[modality],
            "signal_units": "dB" if modality == "spectrogram" else "",
            "model": "/models/press.pt",
            "method": "rddpm",
            "adapter": modality,
            "rddpm_signals_version": "0.1.0",
        },
    )
    return table, out


# --------------------------------------------------------------------------------------------------------------
# round trip


def test_round_trip_keeps_strings_bools_nan_and_segments(tmp_path):
    table, records = build_result(waveform_records(), "waveform", sources=["/data/ü b/r0.wav", "r1.wav", "r2.wav"])
    path = tmp_path / "RESULT.nc"
    write_result(path, table, records)
    assert not [p for p in tmp_path.iterdir() if p.name != "RESULT.nc"]  # no temp file left behind

    res = open_result(path)
    assert res.n_records == 3 and len(res) == 3
    t = res.table
    assert list(t["source"].values) == ["/data/ü b/r0.wav", "r1.wav", "r2.wav"]
    assert t["flagged"].dtype == bool
    np.testing.assert_array_equal(t["flagged"].values, table["flagged"].values)
    assert t["flagged"].values.tolist() == [True, True, False]
    np.testing.assert_array_equal(t["score"].values, table["score"].values)
    np.testing.assert_array_equal(t["segment_record"].values, [0, 1])
    assert np.isnan(t["segment_low"].values).all()
    assert t.attrs["second_unit"] == "" and t.attrs["modality"] == "waveform"
    assert t.attrs["score_threshold"] == 0.3

    r0 = res.record(0)
    np.testing.assert_array_equal(r0["anomaly"].values, records[0]["anomaly"].values)
    np.testing.assert_array_equal(r0["signal"].values, records[0]["signal"].values)
    assert r0["anomaly"].dtype == np.float32 and r0["signal"].dims == ("channel", "time")
    assert list(r0["channel"].values) == ["press A", "press B"]
    assert r0["time"].attrs["units"] == "s" and r0["signal"].attrs["units"] == "kN"
    assert r0.attrs["source"] == "/data/ü b/r0.wav" and r0.attrs["flagged"] == 1

    # what the schema promises to plain xarray readers
    with xr.open_dataset(path, engine="h5netcdf", group="records/r00002") as g:
        assert g.attrs["flagged"] == 0
    tree = xr.open_datatree(path, engine="h5netcdf")
    assert sorted(tree["records"].children) == ["r00000", "r00001", "r00002"]


def test_zero_segments_and_bool_attrs_round_trip(tmp_path):
    table, records = build_result(image_records(n=2), "image", map_threshold=50.0, score_threshold=50.0)
    assert table.sizes["segment"] == 0
    table.attrs["extra_flag"] = True  # a bool attr must not break netCDF writing
    path = tmp_path / "r.nc"
    write_result(path, table, records)
    res = open_result(path)
    assert res.table.sizes["segment"] == 0 and res.table["segment_low"].dtype == np.float64
    assert res.table["flagged"].values.tolist() == [False, False]
    assert res.table.attrs["extra_flag"] == 1
    assert segments_csv(res.table) == ",".join(CSV_COLUMNS) + "\n"


def test_table_without_segment_variables_reads_as_zero_segments(tmp_path):
    table, records = build_result(image_records(n=1), "image", map_threshold=50.0)
    table = table.drop_vars([v for v in table.data_vars if v.startswith("segment_")])
    write_result(tmp_path / "r.nc", table, records)
    assert open_result(tmp_path / "r.nc").table.sizes["segment"] == 0


def test_records_are_read_lazily_one_group_at_a_time(tmp_path):
    class Lazy:  # a sequence that builds each record on access and counts the accesses
        def __init__(self, records):
            self.records, self.calls = records, []

        def __len__(self):
            return len(self.records)

        def __getitem__(self, i):
            self.calls.append(i)
            return self.records[i]

    table, records = build_result(spectrogram_records(n=2), "spectrogram")
    lazy = Lazy(records)
    path = tmp_path / "r.nc"
    write_result(path, table, lazy)
    assert lazy.calls == [0, 1]

    res = open_result(path)
    # the opened result holds only the table, no record arrays
    assert "anomaly" not in res.table and res.table.sizes["record"] == 2
    r1 = res.record(1)
    assert r1["anomaly"].dims == ("frequency", "time") and r1["signal"].attrs["units"] == "dB"
    np.testing.assert_array_equal(r1["anomaly"].values, records[1]["anomaly"].values)
    np.testing.assert_allclose(r1["frequency"].values, records[1]["frequency"].values)
    seg = res.segments_of(0)
    assert seg.sizes["segment"] == table.sizes["segment"] >= 1
    assert res.segments_of(1).sizes["segment"] == 0
    with pytest.raises(ValueError, match="record 2 does not exist"):
        res.record(2)


def test_streamed_record_with_a_lazy_time_axis_round_trips_in_seconds(tmp_path):
    from xarray.indexes import RangeIndex

    from rddpm_signals.streaming import sample_time_coords

    # 100 000 points: above the size from which the time axis is compressed and below one compression chunk (1 M)
    n, rate = 100_000, 8000.0
    rng = np.random.default_rng(4)
    amap = xr.DataArray(
        np.abs(rng.normal(size=n)).astype(np.float32), dims=("time",), coords=sample_time_coords(n, rate)
    )
    signal = amap.expand_dims(channel=1).copy(deep=False, data=rng.normal(size=(1, n)).astype(np.float32))
    ds = xr.Dataset({"anomaly": amap, "signal": signal})
    assert isinstance(ds.xindexes["time"], RangeIndex)  # one lazy axis shared by map and signal
    table, records = build_result([ds], "waveform", map_threshold=3.5)
    path = tmp_path / "r.nc"
    write_result(path, table, records)
    back = open_result(path).record(0)
    assert back["time"].attrs["units"] == "s" and back["time"].dtype == np.float64
    np.testing.assert_array_equal(back["time"].values, np.arange(n) / rate)
    np.testing.assert_array_equal(back["anomaly"].values, amap.values)
    np.testing.assert_array_equal(back["signal"].values, signal.values)
    assert back["anomaly"].dtype == back["signal"].dtype == np.float32


# --------------------------------------------------------------------------------------------------------------
# CSV and summary


def test_segments_csv_columns_and_values(tmp_path):
    table, _ = build_result(spectrogram_records(n=2), "spectrogram")
    table["segment_start"].values[0] = 3600.0000012  # an hour in: still to the microsecond
    text = segments_csv(table)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == table.sizes["segment"]
    row = rows[0]
    assert row["file"] == "/data/line 3/spectrogram_000.dat" and row["record"] == "0"
    assert row["start"] == "3600.000001" and row["unit"] == "s" and row["second_unit"] == "Hz"
    assert float(row["end"]) == pytest.approx(2.5) and float(row["low"]) < 1000 < float(row["high"])
    assert float(row["peak"]) == pytest.approx(float(table["segment_peak"][0]), rel=1e-8)
    assert float(row["record_score"]) == pytest.approx(float(table["score"][0]), rel=1e-8)
    assert row["record_flagged"] == "true"

    wave, _ = build_result(waveform_records(), "waveform")
    rows = list(csv.DictReader(io.StringIO(segments_csv(wave))))
    assert [r["record"] for r in rows] == ["0", "1"]
    assert rows[0]["low"] == "" and rows[0]["high"] == "" and rows[0]["second_unit"] == ""
    assert float(rows[0]["start"]) == pytest.approx(1.2 - 2 / 2000) and rows[0]["unit"] == "s"

    out = tmp_path / "sub" / "SEGMENTS.csv"
    write_segments_csv(out, wave)
    assert out.read_text() == segments_csv(wave)


def test_summary_lines_orders_by_score_and_counts():
    table, _ = build_result(waveform_records(), "waveform")
    lines = summary_lines(table, top=2)
    assert lines[0] == "3 records, 2 flagged (score > 0.3); 2 segments (map > 0.5)"
    body = lines[2:4]
    assert "waveform_000.dat" in body[0] and "yes" in body[0]  # the spike record scores highest
    assert "waveform_001.dat" in body[1]
    assert lines[-1].startswith("… 1 more record")
    assert len({len(line) for line in lines[1:4]}) == 1  # fixed width
    table["flagged"].values[:] = False
    assert summary_lines(table)[0].startswith("3 records, 0 flagged")


# --------------------------------------------------------------------------------------------------------------
# bad input


def test_bad_files_raise_one_line_value_errors(tmp_path):
    with pytest.raises(ValueError, match="no result file"):
        open_result(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"this is not netCDF at all" * 10)
    with pytest.raises(ValueError, match="not a readable netCDF") as err:
        open_result(junk)
    assert "\n" not in str(err.value)
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1.0, 2.0])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="not an rddpm-signals result"):
        open_result(other)
    # a table whose record group is missing
    table, records = build_result(image_records(n=1), "image")
    partial = tmp_path / "partial.nc"
    table.to_netcdf(partial, engine="h5netcdf")
    with pytest.raises(ValueError, match="cannot read group 'records/r00000'"):
        open_result(partial).record(0)


def test_write_result_rejects_mismatched_input(tmp_path):
    table, records = build_result(image_records(n=2), "image")
    with pytest.raises(ValueError, match="2 records but 1 record datasets"):
        write_result(tmp_path / "r.nc", table, records[:1])
    with pytest.raises(ValueError, match="lacks the 'record' dim or the variables \\['peak'\\]"):
        write_result(tmp_path / "r.nc", table.drop_vars("peak"), records)
    with pytest.raises(ValueError, match="not an xarray.Dataset with an 'anomaly' map"):
        write_result(tmp_path / "r.nc", table, [records[0], records[1].drop_vars("anomaly")])
    assert not list(tmp_path.iterdir())  # nothing half-written
