"""The rddpm-signals command line, run as a user runs it: in a subprocess, on files.

Every subcommand runs end to end on a small folder of forging strokes; every bad input gives one line on stderr, a
documented exit code, no traceback and no output file.
"""

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import xarray as xr

from helpers import TINY_CLI

TINY = TINY_CLI  # a tiny diffusion model: seconds on one core


def cli(*args: str, cwd: Path | None = None, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "rddpm_signals.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int, *words: str) -> None:
    err = proc.stderr.strip()
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert err.count("\n") == 0, err
    assert "Traceback" not in err and err.startswith("rddpm-signals "), err
    for word in words:
        assert word.lower() in err.lower(), (word, err)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Example recordings (train: 24 strokes, 20 % defective; test: 8) and a tiny model fitted on them."""
    root = tmp_path_factory.mktemp("cli")
    made = cli("example", "forging", str(root / "train"), "--n", "24", "--quiet")
    assert made.returncode == 0 and made.stdout == "", made.stdout  # --quiet: nothing but errors
    assert cli("example", "forging", str(root / "new"), "--split", "test", "--n", "8", "--quiet").returncode == 0
    proc = cli("fit", str(root / "train"), "--out", str(root / "press.model"), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert "thresholds" in proc.stdout and "saved to" in proc.stdout
    assert "self-cleaning left out" in proc.stdout and "(per round: " in proc.stdout  # clean_rounds=2: two shares
    assert proc.stdout.split("(per round: ")[1].split(")")[0].count("%") == 2
    return root


def test_score_writes_netcdf_csv_and_summary(workdir):
    out, seg = workdir / "result.nc", workdir / "segments.csv"
    proc = cli("score", str(workdir / "press.model"), str(workdir / "new"), "--out", str(out), "--segments", str(seg))
    assert proc.returncode == 0, proc.stderr
    assert "records," in proc.stdout and "stroke_0000.csv" in proc.stdout
    table = xr.open_dataset(out)
    assert table.sizes["record"] == 8
    assert table.attrs["modality"] == "waveform" and table.attrs["main_unit"] == "s"
    assert all(Path(s).name.startswith("stroke_") for s in table["source"].values)
    np.testing.assert_array_equal(table["flagged"].values, table["score"].values > table.attrs["score_threshold"])
    rec = xr.open_dataset(out, group="records/r00000")
    assert rec["anomaly"].dims == ("time",) and rec["time"].attrs["units"] == "s"
    assert rec["signal"].shape[0] == 4  # four stations
    assert seg.read_text().startswith("file,record,start,end,unit")
    table.close()
    rec.close()


def test_threshold_override_and_fail_on_flag(workdir):
    out = workdir / "low.nc"
    # a score threshold below every score flags every record, and --fail-on-flag turns that into exit code 1
    proc = cli(
        "score",
        str(workdir / "press.model"),
        str(workdir / "new"),
        "--out",
        str(out),
        "--score-threshold",
        "-1",
        "--map-threshold",
        "-1",
        "--fail-on-flag",
        "--quiet",
    )
    assert proc.returncode == 1, proc.stderr
    table = xr.open_dataset(out)
    assert table["flagged"].values.all() and table.attrs["threshold_method"] == "manual"
    assert table.attrs["map_threshold"] == -1.0
    # every point above −1: one segment per record spanning it
    assert (table["n_segments"].values == 1).all()
    table.close()
    high = cli("score", str(workdir / "press.model"), str(workdir / "new"), "--out", str(out), "--k", "1000")
    assert high.returncode == 0 and "0 flagged" in high.stdout


def test_report_writes_pictures_and_index(workdir):
    result = workdir / "all.nc"
    assert (
        cli("score", str(workdir / "press.model"), str(workdir / "new"), "--out", str(result), "--quiet").returncode
        == 0
    )
    proc = cli("report", str(result), "--out", str(workdir / "report"), "--all", "--top", "3")
    assert proc.returncode == 0, proc.stderr
    pngs = sorted((workdir / "report").glob("*.png"))
    assert len(pngs) == 3 and all(p.stat().st_size > 5000 for p in pngs)
    index = (workdir / "report" / "index.html").read_text()
    assert all(p.name in index for p in pngs)
    # 'plot' is the same command
    assert cli("plot", str(result), "--out", str(workdir / "report2"), "--quiet").returncode == 0


@pytest.mark.parametrize("method", ["rpca", "ssd"])
def test_classical_methods_through_the_same_files(workdir, method):
    model = workdir / f"{method}.model"
    assert cli("fit", str(workdir / "train"), "--method", method, "--out", str(model), "--quiet").returncode == 0
    proc = cli("score", str(model), str(workdir / "new" / "stroke_000*.csv"), "--out", str(workdir / f"{method}.nc"))
    assert proc.returncode == 0, proc.stderr
    assert xr.open_dataset(workdir / f"{method}.nc").attrs["method"] == method


def test_wav_folder_and_mixed_sample_rates(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "wav"
    folder.mkdir()
    for i in range(3):
        sf.write(folder / f"a{i}.wav", rng.normal(size=512).astype(np.float32), 1000, subtype="FLOAT")
    sf.write(folder / "odd.wav", rng.normal(size=512).astype(np.float32), 800, subtype="FLOAT")
    proc = cli("fit", str(folder), "--out", str(tmp_path / "m.model"), *TINY)
    assert_one_line_error(proc, 2, "Hz", "--resample")
    assert not (tmp_path / "m.model").exists()


def test_bad_inputs_are_one_line_errors(workdir, tmp_path):
    model = str(workdir / "press.model")
    out = str(tmp_path / "r.nc")
    # a missing path
    assert_one_line_error(cli("fit", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.model")), 2, "nowhere")
    # an unreadable (corrupt) file
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file")
    assert_one_line_error(cli("score", model, str(tmp_path / "broken.wav"), "--out", out), 2, "broken.wav")
    # a folder with no readable file
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    assert_one_line_error(cli("score", model, str(tmp_path / "empty"), "--out", out), 2, "empty")
    # a model file from another detector: a bare detector saved from Python, and a file that is no model at all
    from rddpm_signals import RPCA

    RPCA().fit(np.random.default_rng(0).normal(size=(8, 1, 16))).save(tmp_path / "rpca.npz")
    assert_one_line_error(cli("score", str(tmp_path / "rpca.npz"), str(workdir / "new"), "--out", out), 2, "model")
    assert_one_line_error(cli("score", str(workdir / "new" / "stroke_0000.csv"), str(workdir / "new"), "--out", out), 2)
    # an option the adapter does not take, an unknown method parameter, an unwritable output, a CUDA-less device
    assert_one_line_error(
        cli("fit", str(workdir / "train"), "--n-mels", "32", "--out", str(tmp_path / "m.model")), 2, "--n-mels"
    )
    proc = cli("fit", str(workdir / "train"), "--method", "rddpm:colour=red", "--out", str(tmp_path / "m.model"))
    assert_one_line_error(proc, 2, "colour")
    assert_one_line_error(cli("score", model, str(workdir / "new"), "--out", "/proc/no/r.nc"), 2, "writable")
    assert not Path(out).exists() and not (tmp_path / "m.model").exists()


def test_user_adapter_by_module_path_and_entry_point(workdir, tmp_path):
    """An adapter from the user's own package: as ``module:Class``, and by name through an entry point."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "myplant.py").write_text(
        'import adapters\n\n\nclass PlantAdapter(adapters.WaveformAdapter):\n    """Press CSV exports."""\n'
    )
    dist = plugins / "myplant-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplant\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rddpm_signals.adapters]\nplant = myplant:PlantAdapter\n")
    for name in ("myplant:PlantAdapter", "plant"):
        model = tmp_path / f"{name.replace(':', '_')}.model"
        proc = cli("fit", str(workdir / "train"), "--adapter", name, "--out", str(model), *TINY, pythonpath=plugins)
        assert proc.returncode == 0, proc.stderr
        proc = cli("score", str(model), str(workdir / "new"), "--out", str(tmp_path / "r.nc"), pythonpath=plugins)
        assert proc.returncode == 0, proc.stderr
        assert xr.open_dataset(tmp_path / "r.nc").attrs["adapter"] == "PlantAdapter"
    # without the plugin on the path, the model names the missing module in one line
    proc = cli("score", str(model), str(workdir / "new"), "--out", str(tmp_path / "r2.nc"))
    assert_one_line_error(proc, 2, "myplant")


def test_image_folder_end_to_end(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "tiles"
    folder.mkdir()
    for i in range(8):
        pixels = (128 + 20 * rng.normal(size=(16, 16))).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"tile_{i}.png")
    model, result = tmp_path / "m.model", tmp_path / "r.nc"
    assert cli("fit", str(folder), "--out", str(model), *TINY).returncode == 0
    proc = cli("score", str(model), str(folder), "--out", str(result), "--score-threshold", "-1")
    assert proc.returncode == 0, proc.stderr
    table = xr.open_dataset(result)
    assert table.attrs["modality"] == "image" and table.attrs["main_unit"] == "px" and table.sizes["record"] == 8
    rec = xr.open_dataset(result, group="records/r00000")
    assert rec["anomaly"].dims == ("y", "x") and rec["anomaly"].shape == (16, 16)
    assert cli("report", str(result), "--out", str(tmp_path / "rep"), "--top", "2", "--quiet").returncode == 0
    assert len(list((tmp_path / "rep").glob("*.png"))) == 2


SPECTROGRAM = ["--adapter", "spectrogram", "--n-fft", "256", "--hop-length", "128", "--n-mels", "16"]


def hum_clips(folder: Path, seed: int) -> Path:
    """Six one-second 4 kHz WAV clips of a 440 Hz hum in noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir()
    t = np.arange(4000) / 4000.0
    for i in range(6):
        hum = np.sin(2 * np.pi * 440 * t) + 0.1 * rng.normal(size=t.size)
        sf.write(folder / f"clip_{i}.wav", hum.astype(np.float32), 4000, subtype="FLOAT")
    return folder


def test_spectrogram_adapter_end_to_end(tmp_path):
    folder = hum_clips(tmp_path / "sound", 0)
    model, result = tmp_path / "m.model", tmp_path / "r.nc"
    proc = cli("fit", str(folder), *SPECTROGRAM, "--out", str(model), *TINY)
    assert proc.returncode == 0, proc.stderr
    assert cli("score", str(model), str(folder), "--out", str(result), "--quiet").returncode == 0
    table = xr.open_dataset(result)
    assert table.attrs["modality"] == "spectrogram" and table.attrs["second_unit"] == "Hz"
    rec = xr.open_dataset(result, group="records/r00000")
    assert rec["anomaly"].dims == ("frequency", "time") and rec["signal"].attrs["units"] == "dB"
    assert rec["frequency"].attrs["units"] == "Hz" and rec["time"].attrs["units"] == "s"


def test_a_label_free_map_choice_travels_in_the_model_file(tmp_path):
    """``map_structure=auto`` through the CLI: the choice made at fit is stored with the model and used by score."""
    from rddpm_signals.model import AnomalyModel

    folder = hum_clips(tmp_path / "sound", 1)
    model, result = tmp_path / "m.model", tmp_path / "r.nc"
    tiny = [a if a != TINY[1] else TINY[1] + ",map_structure=auto" for a in TINY]
    proc = cli("fit", str(folder), *SPECTROGRAM, "--out", str(model), *tiny)
    assert proc.returncode == 0, proc.stderr
    det = AnomalyModel.load(model).detector_
    assert det.map_structure == "auto" and det.map_structure_ in ("none", "bulk")
    assert det.map_structure_scores_.shape == (4,)
    assert cli("score", str(model), str(folder), "--out", str(result), "--quiet").returncode == 0
    assert np.isfinite(xr.open_dataset(result)["score"].values).all()


NC_TIME = np.arange(64) / 100.0  # 100 Hz, in seconds


@pytest.fixture(scope="module")
def netcdf_run(tmp_path_factory) -> Path:
    """Six netCDF files (a DataArray on ("channel", "time"), time in seconds) and a tiny model fitted on them
    through the xarray adapter."""
    root = tmp_path_factory.mktemp("netcdf")
    rng = np.random.default_rng(0)
    (root / "nc").mkdir()
    for i in range(6):
        values = np.sin(2 * np.pi * 3 * NC_TIME)[None] * [[1.0], [0.5]] + 0.05 * rng.normal(size=(2, 64))
        da = xr.DataArray(
            values.astype(np.float32),
            dims=("channel", "time"),
            coords={"channel": ["force", "stroke"], "time": ("time", NC_TIME, {"units": "s"})},
            name="press",
        )
        da.to_netcdf(root / "nc" / f"run_{i}.nc")
    proc = cli("fit", str(root / "nc"), "--adapter", "xarray", "--out", str(root / "m.model"), *TINY)
    assert proc.returncode == 0, proc.stderr
    return root


def test_netcdf_folder_through_the_xarray_adapter(netcdf_run):
    from rddpm_signals.results import CSV_COLUMNS, open_result

    result, seg = netcdf_run / "r.nc", netcdf_run / "s.csv"
    model, folder = str(netcdf_run / "m.model"), str(netcdf_run / "nc")
    proc = cli("score", model, folder, "--out", str(result), "--segments", str(seg))
    assert proc.returncode == 0, proc.stderr
    assert "run_0.nc" in proc.stdout
    res = open_result(result)
    assert res.n_records == 6 and res.attrs["adapter"] == "XarrayAdapter"
    assert sorted(Path(s).name for s in res.table["source"].values) == [f"run_{i}.nc" for i in range(6)]
    header = seg.read_text().splitlines()[0]
    assert header.startswith("file,record,start,end,unit,") and header == ",".join(CSV_COLUMNS)


def test_netcdf_maps_and_segments_are_on_the_time_axis_in_seconds(netcdf_run):
    from rddpm_signals.results import open_result

    result, seg = netcdf_run / "all.nc", netcdf_run / "all.csv"
    low = ["--score-threshold", "-1", "--map-threshold", "-1"]  # every record flagged, one segment spanning each
    model, folder = str(netcdf_run / "m.model"), str(netcdf_run / "nc")
    proc = cli("score", model, folder, "--out", str(result), "--segments", str(seg), *low)
    assert proc.returncode == 0, proc.stderr
    res = open_result(result)
    rec = res.record(0)
    assert rec["anomaly"].dims == ("time",)
    np.testing.assert_allclose(rec["time"].values, NC_TIME)
    # the input itself is stored beside its map, so the report can draw the trace over the map
    source = xr.open_dataarray(res.table["source"].values[0])
    assert rec["signal"].dims == ("channel", "time")
    assert list(rec["signal"]["channel"].values) == ["force", "stroke"]
    np.testing.assert_array_equal(rec["signal"].values, source.values)
    proc = cli("report", str(result), "--out", str(netcdf_run / "report"))
    assert proc.returncode == 0, proc.stderr
    assert len(list((netcdf_run / "report").glob("*.png"))) == 6
    rows = list(csv.DictReader(io.StringIO(seg.read_text())))
    assert sorted(Path(r["file"]).name for r in rows) == [f"run_{i}.nc" for i in range(6)]
    # start of the first sample to the end of the last (64 samples at 100 Hz)
    assert all(r["unit"] == "s" and float(r["start"]) == 0.0 and float(r["end"]) == pytest.approx(0.64) for r in rows)
