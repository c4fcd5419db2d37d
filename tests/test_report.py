"""Per-record pictures and the index page of a result file (synthetic results from tests/test_results.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from test_results import build_result, image_records, spectrogram_records, waveform_records

from rddpm_signals.report import block_reduce, envelope, plot_record, record_kind, write_report
from rddpm_signals.results import write_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _result(tmp_path, records, modality, **kwargs):
    table, recs = build_result(records, modality, **kwargs)
    path = tmp_path / f"{modality}.nc"
    write_result(path, table, recs)
    return path, table


def _linked_pngs(index_text: str) -> list[str]:
    return re.findall(r'<a href="([^"]+\.png)">', index_text)


@pytest.mark.parametrize(
    ("make", "modality"),
    [(waveform_records, "waveform"), (spectrogram_records, "spectrogram"), (image_records, "image")],
)
def test_report_writes_a_png_per_record_and_an_index_by_score(tmp_path, make, modality):
    path, table = _result(tmp_path, make(), modality)
    out = tmp_path / "report"
    index = write_report(path, out, which="all", dpi=40)
    assert index == out / "index.html"
    text = index.read_text()
    pngs = _linked_pngs(text)
    assert len(pngs) == table.sizes["record"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
    # ranked by score, highest first; every record named
    order = np.argsort(-table["score"].values)
    assert pngs == [f"r{i:05d}_{modality}_{i:03d}.png" for i in order]
    for source in table["source"].values:
        assert source.rsplit("/", 1)[1] in text
    # the flagged record's segment is listed with its extent and unit
    if modality == "waveform":
        assert "1.1990–1.2015 s" in text and "0.500–0.550 s" in text
    elif modality == "spectrogram":
        assert "2.00–2.50 s, 952–1143 Hz" in text
    else:
        assert "x 40–48, y 20–26 px" in text
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_flagged_only_and_top(tmp_path):
    path, table = _result(tmp_path, waveform_records(), "waveform")
    assert table["flagged"].values.tolist() == [True, True, False]
    out = tmp_path / "flagged"
    text = write_report(path, out, which="flagged", dpi=40).read_text()
    assert _linked_pngs(text) == ["r00000_waveform_000.png", "r00001_waveform_001.png"]
    assert "waveform_002.dat" not in text
    assert sorted(p.name for p in out.glob("*.png")) == ["r00000_waveform_000.png", "r00001_waveform_001.png"]
    text = write_report(path, tmp_path / "top", which="all", top=1, dpi=40).read_text()
    assert _linked_pngs(text) == ["r00000_waveform_000.png"] and "showing 1 of 3" in text


def test_nothing_flagged_says_so_and_lists_top_scores(tmp_path):
    path, table = _result(tmp_path, image_records(n=3), "image", score_threshold=100.0, map_threshold=100.0)
    assert not table["flagged"].values.any()
    out = tmp_path / "none"
    text = write_report(path, out).read_text()
    assert "No record flagged" in text and "≤ threshold 100" in text
    assert not list(out.glob("*.png")) and not _linked_pngs(text)
    for i in range(3):  # the scores are still listed
        assert f"image_{i:03d}.dat" in text
        assert f"{table['score'].values[i]:.4g}" in text


def test_bad_arguments(tmp_path):
    path, _ = _result(tmp_path, image_records(n=1), "image")
    with pytest.raises(ValueError, match="which='some'"):
        write_report(path, tmp_path / "o", which="some")
    with pytest.raises(ValueError, match="top=0"):
        write_report(path, tmp_path / "o", top=0)
    with pytest.raises(ValueError, match="no result file"):
        write_report(tmp_path / "missing.nc", tmp_path / "o")


def test_envelope_keeps_a_one_sample_spike():
    rng = np.random.default_rng(3)
    n = 1_000_003  # not a multiple of the column count
    x = rng.normal(size=(2, n)).astype(np.float32)
    x[0, 654_321], x[1, 17] = 50.0, -40.0
    t = np.arange(n) / 1000.0
    tx, ex = envelope(x, t, n_columns=500)
    assert ex.shape == (2, 1000) and tx.shape == (1000,)
    assert ex[0].max() == 50.0 and ex[1].min() == -40.0
    assert abs(tx[np.argmax(ex[0])] - 654.321) < n / 1000 / 500  # drawn within one column of where it is
    assert np.all(np.diff(tx) >= 0)
    short_t, short_x = envelope(x[:, :800], t[:800], n_columns=500)
    assert short_x.shape == (2, 800)  # short lines are drawn as they are
    with pytest.raises(ValueError, match="one coordinate per sample"):
        envelope(x, t[:-1])


def test_block_reduce_keeps_a_one_pixel_peak():
    a = np.zeros((300, 5000), dtype=np.float32)
    a[123, 4321] = 7.0
    r = block_reduce(a, (100, 1000), "max")
    assert r.shape == (100, 1000) and r.max() == 7.0
    m = block_reduce(np.ones((300, 5000)), (100, 1000), "mean")
    np.testing.assert_allclose(m, 1.0)


def test_long_waveform_plots_quickly_with_its_spike(tmp_path):
    n = 2_000_000
    t = np.arange(n) / 10_000.0
    sig = np.sin(2 * np.pi * 0.1 * t).astype(np.float32)
    sig[1_234_567] = 9.0
    amap = np.zeros(n, dtype=np.float32)
    amap[1_234_567] = 3.0
    rec = xr.Dataset(
        {"anomaly": ("time", amap), "signal": (("channel", "time"), sig[None])},
        coords={"time": xr.Variable("time", t, attrs={"units": "s"})},
        attrs={"source": "long.wav", "score": 3.0, "flagged": 1},
    )
    seg = xr.Dataset(
        {
            "segment_start": ("segment", [123.4567]),
            "segment_end": ("segment", [123.4568]),
            "segment_low": ("segment", [np.nan]),
            "segment_high": ("segment", [np.nan]),
            "segment_peak": ("segment", [3.0]),
        }
    )
    attrs = {"score_threshold": 1.0, "map_threshold": 0.5, "modality": "waveform", "main_unit": "s"}
    out = plot_record(rec, seg, attrs, tmp_path / "long.png", dpi=40)
    assert out.read_bytes().startswith(PNG_MAGIC)


def test_other_grids_plot(tmp_path):
    """xarray results: a 2D map on its own coordinates, and a 3D one drawn as its maximum over the leading dim."""
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(40, 50, 20), np.linspace(0, 30, 40)
    rec2 = xr.Dataset(
        {
            "anomaly": (("lat", "lon"), rng.random((20, 40)).astype(np.float32)),
            "signal": (("channel", "lat", "lon"), rng.random((2, 20, 40)).astype(np.float32)),
        },
        coords={"lat": lat, "lon": lon},
        attrs={"source": "grid.nc", "score": 0.9, "flagged": 1},
    )
    rec3 = xr.Dataset(
        {"anomaly": (("level", "lat", "lon"), rng.random((3, 20, 40)).astype(np.float32))},
        coords={"lat": lat, "lon": lon},
        attrs={"source": "cube.nc", "score": 0.9, "flagged": 1},
    )
    # a mel-like spectrogram: frequencies not evenly spaced
    mel = spectrogram_records(n=1)[0]
    mel = mel.assign_coords(frequency=("frequency", np.geomspace(30, 8000, mel.sizes["frequency"]), {"units": "Hz"}))
    mel.attrs.update(source="mel.wav", score=2.0, flagged=1)
    attrs = {"score_threshold": 0.5, "map_threshold": 0.8, "modality": "xarray"}
    assert record_kind(rec2, "xarray") == "grid" and record_kind(mel) == "spectrogram"
    for name, rec in (("g2", rec2), ("g3", rec3), ("mel", mel)):
        assert plot_record(rec, None, attrs, tmp_path / f"{name}.png", dpi=40).read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match="no 'anomaly' map"):
        plot_record(rec2.drop_vars("anomaly"), None, attrs, tmp_path / "x.png")
