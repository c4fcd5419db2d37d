"""rddpm_signals.files (paths → adapter items), the waveform adapter reading CSV / NPY paths, and the example
recordings of rddpm_signals.examples read back."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import adapters
from rddpm_signals import datasets
from rddpm_signals.examples import TRUTH_NAME, main, write_forging_recordings
from rddpm_signals.files import (
    auto_adapter,
    cli_message,
    expand_paths,
    kind_of,
    read_items,
    read_record,
    resolve_adapter,
)
from rddpm_signals.segments import runs


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _csv(path: Path, data: np.ndarray, rate: float, header: str = "time_s", names=None) -> Path:
    names = names or [f"ch{i}" for i in range(len(data))]
    t = np.arange(data.shape[1]) / rate
    rows = [",".join([header, *names])]
    rows += [",".join(repr(float(v)) for v in (ti, *col)) for ti, col in zip(t, data.T, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


# ------------------------------------------------------------------------------------------------------ expand_paths
def test_expand_paths_folders_globs_files(tmp_path):
    a = _touch(tmp_path / "d" / "b.wav")
    b = _touch(tmp_path / "d" / "a.csv")
    c = _touch(tmp_path / "d" / "sub" / "c.npy")
    _touch(tmp_path / "d" / "notes.txt")
    _touch(tmp_path / "d" / "_truth.csv")
    _touch(tmp_path / "d" / ".hidden.wav")
    _touch(tmp_path / "d" / ".cache" / "x.wav")
    img = _touch(tmp_path / "e" / "IMG.PNG")
    assert expand_paths([str(tmp_path / "d")]) == [b, a, c]
    # argument order first, sorted inside a folder / glob, duplicates dropped
    assert expand_paths([str(img), str(tmp_path / "d" / "*.wav"), str(tmp_path / "d")]) == [img, a, b, c]
    assert expand_paths([str(tmp_path / "**" / "*.npy")]) == [c]
    assert expand_paths([str(tmp_path / "d" / "s?b")]) == [c]  # a glob matching a folder takes the folder
    # a file named on its own is taken even with a leading underscore
    assert expand_paths([str(tmp_path / "d" / "_truth.csv")]) == [tmp_path / "d" / "_truth.csv"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("missing.wav", "does not exist"),
        ("*.flac", "matches no recognised"),
        ("empty", "holds no recognised data file"),
        ("notes.txt", "unrecognised extension '.txt'"),
    ],
)
def test_expand_paths_errors_are_one_line(tmp_path, spec, words):
    (tmp_path / "empty").mkdir()
    _touch(tmp_path / "empty" / "readme.md")
    _touch(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match=words) as err:
        expand_paths([str(tmp_path / spec)])
    assert "\n" not in str(err.value)
    assert spec in str(err.value)


def test_kind_of():
    assert [kind_of(p) for p in ("a.WAV", "b.csv", "c.npz", "d.tiff", "e.nc4")] == [
        "audio",
        "csv",
        "array",
        "image",
        "netcdf",
    ]
    with pytest.raises(ValueError, match="unrecognised"):
        kind_of("x.mp3")


# ------------------------------------------------------------------------------------------------------ read_record
def test_read_csv_time_column_rate_and_channels(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 50))
    rec = read_record(_csv(tmp_path / "a.csv", data, 200.0, names=["ax", "ay", "az"]))
    np.testing.assert_allclose(rec.data, data, rtol=0, atol=1e-12)
    assert rec.sample_rate == 200.0 and rec.channels == ("ax", "ay", "az")
    assert rec.source == str(tmp_path / "a.csv")
    # times printed with 4 decimals (1/256 s steps rounded) still give 256 Hz exactly
    t = np.round(np.arange(64) / 256, 4)
    lines = ["t,x"] + [f"{ti:.4f},{v}" for ti, v in zip(t, rng.normal(size=64), strict=True)]
    (tmp_path / "r.csv").write_text("\n".join(lines))
    assert read_record(tmp_path / "r.csv").sample_rate == 256.0


def test_read_csv_without_time_column(tmp_path):
    data = np.arange(20.0).reshape(2, 10)
    path = tmp_path / "b.csv"
    path.write_text("left,right\n" + "\n".join(f"{a},{b}" for a, b in data.T))
    rec = read_record(path, sample_rate=50)
    np.testing.assert_array_equal(rec.data, data)
    assert rec.sample_rate == 50.0 and rec.channels == ("left", "right")
    # without a rate, a numeric first column is the time axis (here 0, 1, … → 1 Hz)
    rec = read_record(path)
    assert rec.sample_rate == 1.0 and rec.data.shape == (1, 10)
    # a time-like first header keeps it the time axis even when a rate is given
    rec = read_record(_csv(tmp_path / "c.csv", data, 10.0), sample_rate=99)
    assert rec.sample_rate == 10.0 and rec.data.shape == (2, 10)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("time,a\n0,1\n0.2,2\n0.1,3\n", "does not increase"),
        ("time,a\n0,1\n0.1,2\n0.2,3\n0.5,4\n0.6,5\n", "irregular"),
        ("time,a\n0,1\n0.1,oops\n", "not numeric"),
        ("time,a\n0,1\n0.1,\n0.2,3\n", "NaN"),
        ("time\n0\n1\n", "single column"),
        ("time,a\n0,1\n", "fewer than two rows"),
        ("", "could not read"),
    ],
)
def test_read_csv_refuses_bad_files(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=words) as err:
        read_record(path)
    assert "\n" not in str(err.value) and "bad.csv" in str(err.value)


def test_read_npy_npz(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 30)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    with pytest.raises(ValueError, match="no sample rate"):
        read_record(tmp_path / "a.npy")
    rec = read_record(tmp_path / "a.npy", sample_rate=100)
    assert rec.data.dtype == np.float64 and rec.data.shape == (2, 30) and rec.sample_rate == 100.0
    np.save(tmp_path / "b.npy", x[0])
    assert read_record(tmp_path / "b.npy", sample_rate=5).data.shape == (1, 30)
    np.savez(tmp_path / "c.npz", x=x, sample_rate=250.0, other=np.zeros(3))
    rec = read_record(tmp_path / "c.npz", sample_rate=1)
    assert rec.sample_rate == 250.0
    np.testing.assert_array_equal(rec.data, x)
    np.savez(tmp_path / "d.npz", signal=x)
    assert read_record(tmp_path / "d.npz", sample_rate=3).data.shape == (2, 30)
    np.savez(tmp_path / "e.npz", a=x, b=x)
    with pytest.raises(ValueError, match="name the record 'x'"):
        read_record(tmp_path / "e.npz", sample_rate=3)
    np.save(tmp_path / "f.npy", np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="shape"):
        read_record(tmp_path / "f.npy", sample_rate=3)
    (tmp_path / "g.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match="could not read .*g.npy"):
        read_record(tmp_path / "g.npy", sample_rate=3)


def test_read_audio_and_corrupt_files(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.uniform(-0.5, 0.5, size=(400, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 8000, subtype="FLOAT")
    rec = read_record(tmp_path / "a.wav")
    assert rec.sample_rate == 8000.0
    np.testing.assert_array_equal(rec.data, x.T)
    (tmp_path / "bad.wav").write_bytes(b"RIFF garbage")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="bad.wav"):
        read_items([tmp_path / "bad.wav"], "waveform")
    with pytest.raises(ValueError, match="could not read .*bad.png.* as an image"):
        read_items([tmp_path / "bad.png"], "image")


@pytest.mark.parametrize(
    ("subtype", "dtype"),
    [("PCM_16", np.float32), ("PCM_24", np.float32), ("FLOAT", np.float32), ("PCM_32", np.float64)],
)
def test_audio_is_read_as_float32_when_that_is_exact(tmp_path, subtype, dtype):
    # float32 halves a long record's memory; subtypes float32 cannot hold exactly (32-bit PCM) stay float64
    x = np.random.default_rng(5).uniform(-0.9, 0.9, size=(3000, 2))
    sf.write(tmp_path / "a.wav", x, 4000, subtype=subtype)
    rec = read_record(tmp_path / "a.wav")
    assert rec.data.dtype == dtype and rec.data.shape == (2, 3000) and rec.sample_rate == 4000.0
    as_float64, _ = sf.read(tmp_path / "a.wav", dtype="float64", always_2d=True)
    np.testing.assert_array_equal(rec.data.astype(np.float64), as_float64.T)  # the same values as a float64 read
    # adapters still compute in float64: the windows and the fitted statistics equal those of the float64 record
    ad = adapters.WaveformAdapter(window=256).fit([rec])
    ref = adapters.WaveformAdapter(window=256).fit([(as_float64.T, 4000.0)])
    np.testing.assert_array_equal(ad.center_, ref.center_)
    np.testing.assert_array_equal(ad.to_tensor([rec])[0], ref.to_tensor([(as_float64.T, 4000.0)])[0])


# ------------------------------------------------------------------------------------------------------ read_items
def test_read_items_per_adapter(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(3)
    csv = _csv(tmp_path / "a.csv", rng.normal(size=(1, 40)), 20.0)
    np.save(tmp_path / "b.npy", rng.normal(size=40))
    items = read_items([csv, tmp_path / "b.npy"], "waveform", sample_rate=20)
    assert [type(i) for i in items] == [adapters.Record, adapters.Record]
    assert read_items([csv], "spectrogram")[0].sample_rate == 20.0
    ad = adapters.WaveformAdapter(window=8).fit(items)
    assert ad.to_tensor(items)[0].shape == (10, 1, 8)

    Image.fromarray(rng.integers(0, 255, (6, 5), dtype=np.uint8)).save(tmp_path / "i.png")
    assert read_items([tmp_path / "i.png"], "image") == [str(tmp_path / "i.png")]

    import xarray as xr

    arr = xr.DataArray(rng.normal(size=(2, 16)), dims=("channel", "time"), name="v")
    adapters.write_netcdf(arr, tmp_path / "n.nc")
    (item,) = read_items([tmp_path / "n.nc"], "xarray")
    assert isinstance(item, xr.DataArray) and item.dims == ("channel", "time")

    with pytest.raises(ValueError, match="is an image file but the waveform adapter .* --adapter image"):
        read_items([tmp_path / "i.png"], "waveform")
    with pytest.raises(ValueError, match="unknown reader options"):
        read_items([csv], "waveform", rate=3)


def test_auto_adapter():
    assert auto_adapter(["a.wav", "b.csv", "c.npz"]) == "waveform"
    assert auto_adapter(["a.png"]) == "image"
    assert auto_adapter(["a.nc"]) == "xarray"
    with pytest.raises(ValueError, match="--adapter"):
        auto_adapter(["a.wav", "b.png"])


class GoodAdapter(adapters.WaveformAdapter):
    pass


class NotAnAdapter:
    def fit(self, items):
        return self


def test_resolve_adapter(monkeypatch):
    assert resolve_adapter("spectrogram") is adapters.SpectrogramAdapter
    assert resolve_adapter(f"{__name__}:GoodAdapter") is GoodAdapter
    with pytest.raises(ValueError, match="lacks to_tensor"):
        resolve_adapter(f"{__name__}:NotAnAdapter")
    with pytest.raises(ValueError, match="not an adapter class"):
        resolve_adapter(f"{__name__}:kind_of")
    with pytest.raises(ValueError, match="has no 'Missing'"):
        resolve_adapter(f"{__name__}:Missing")
    with pytest.raises(ValueError, match="could not import module 'no_such_module_xyz'"):
        resolve_adapter("no_such_module_xyz:A")
    with pytest.raises(ValueError, match=r"unknown adapter 'nope': use one of \[.*'waveform'.*module:Class"):
        resolve_adapter("nope")

    class Point:
        name = "plugged"

        def load(self):
            return GoodAdapter

    import rddpm_signals.files as files

    monkeypatch.setattr(files, "_entry_points", lambda: {"plugged": Point()})
    assert resolve_adapter("plugged") is GoodAdapter
    # a custom adapter of the waveform family gets Records
    assert files._adapter_family(GoodAdapter) == "record"


def test_resolve_adapter_does_not_instantiate(tmp_path, monkeypatch):
    module = tmp_path / "plugin_mod_abc.py"
    module.write_text(
        textwrap.dedent(
            """
            CALLS = []
            class Plug:
                def __init__(self):
                    CALLS.append("init")
                def fit(self, items): return self
                def to_tensor(self, items): pass
                def masks_to_grid(self, masks, layout): pass
                def to_signal(self, maps, layout): pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = resolve_adapter("plugin_mod_abc:Plug")
    assert cls.__name__ == "Plug" and sys.modules["plugin_mod_abc"].CALLS == []
    # an unknown custom adapter family gets the paths themselves
    assert read_items([tmp_path / "x.wav"], "plugin_mod_abc:Plug") == [str(tmp_path / "x.wav")]


# ------------------------------------------------------------------------------------------------------ adapter paths
def test_waveform_adapter_reads_csv_and_npy_paths(tmp_path):
    rng = np.random.default_rng(4)
    data = rng.normal(size=(2, 64))
    csv = _csv(tmp_path / "a.csv", data, 32.0)
    np.save(tmp_path / "b.npy", data)
    ad = adapters.WaveformAdapter(sample_rate=32, window=16).fit([str(csv), str(tmp_path / "b.npy")])
    X, layout = ad.to_tensor([str(csv), tmp_path / "b.npy"])
    assert X.shape == (8, 2, 16)
    np.testing.assert_allclose(X[:4], X[4:], atol=1e-6)  # the same data through both readers
    assert layout.items[0]["source"] == str(csv)
    with pytest.raises(ValueError, match="no sample rate"):
        adapters.WaveformAdapter(window=16).fit([str(tmp_path / "b.npy")])


def test_mixed_rates_message_for_the_command_line(tmp_path):
    rng = np.random.default_rng(5)
    paths = [
        _csv(tmp_path / "a.csv", rng.normal(size=(1, 64)), 32.0),
        _csv(tmp_path / "b.csv", rng.normal(size=(1, 64)), 48.0),
    ]
    items = read_items(paths, "waveform")
    with pytest.raises(ValueError) as err:
        adapters.WaveformAdapter(window=16).fit(items)
    text = cli_message(err.value, paths)
    assert "\n" not in text
    assert f"record {str(paths[1])!r} is sampled at 48 Hz" in text and "pass --resample or resample" in text
    no_rate = "none of the records carries a sample rate: pass sample_rate=... (Hz) to the adapter"
    assert "pass --sample-rate HZ to the adapter" in cli_message(no_rate)
    assert cli_message("record 7 is short: lower window=...", ["a"]) == "record 7 is short: lower --window VALUE"


# ------------------------------------------------------------------------------------------------------ examples
@pytest.mark.parametrize("fmt", ["csv", "wav"])
def test_forging_recordings_read_back(tmp_path, fmt):
    out = tmp_path / "strokes"
    paths = write_forging_recordings(out, split="train", contamination=0.25, n=8, seed=3, fmt=fmt)
    ds = datasets.load("forging", contamination=0.25, seed=3, n_train=8, n_test=1)
    assert [p.name for p in paths] == [f"stroke_{i:04d}.{fmt}" for i in range(8)]
    assert expand_paths([str(out)]) == paths  # the truth file is not data
    for path, x in zip(paths, ds.train_x, strict=True):
        rec = read_record(path)
        assert rec.sample_rate == 256.0
        np.testing.assert_allclose(rec.data, x, rtol=1e-6, atol=0)
        if fmt == "csv":
            assert rec.channels == ("station_1", "station_2", "station_3", "station_4")
    lines = (out / TRUTH_NAME).read_text().splitlines()
    assert lines[0] == "file,start_s,end_s"
    rows = [line.split(",") for line in lines[1:]]
    expected = [(f"stroke_{i:04d}.{fmt}", a / 256, b / 256) for i, m in enumerate(ds.train_mask) for a, b in runs(m)]
    assert len(rows) == len(expected) == sum(len(runs(m)) for m in ds.train_mask) and len(rows) >= 2
    for row, exp in zip(rows, expected, strict=True):
        assert row[0] == exp[0] and float(row[1]) == exp[1] and float(row[2]) == exp[2]


def test_forging_recordings_test_split_rate_and_refusals(tmp_path, capsys):
    paths = write_forging_recordings(tmp_path / "t", split="test", n=3, seed=1, sample_rate=128)
    ds = datasets.load("forging", seed=1, n_train=1, n_test=3)
    rec = read_record(paths[2])
    assert rec.sample_rate == 128.0
    np.testing.assert_allclose(rec.data, ds.test_x[2], rtol=1e-6)
    _touch(tmp_path / "busy" / "other.wav")
    with pytest.raises(ValueError, match="already holds 1 other data files"):
        write_forging_recordings(tmp_path / "busy", n=2)
    with pytest.raises(ValueError, match="whole-number sample rate"):
        write_forging_recordings(tmp_path / "w", n=2, fmt="wav", sample_rate=100.5)
    # rewriting the same folder is fine; the command line prints one line
    assert (
        main(["forging", str(tmp_path / "t"), "--split", "test", "--n", "3", "--seed", "1", "--sample-rate", "128"])
        == 0
    )
    assert "wrote 3 forging records" in capsys.readouterr().out
    assert main(["forging", str(tmp_path / "busy"), "--n", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


@pytest.mark.parametrize("dataset", ["dev_signals", "val_signals"])
def test_selection_sets_written_as_records_with_their_truth(tmp_path, dataset):
    from rddpm_signals.examples import write_recordings
    from rddpm_signals.segments import runs

    paths = write_recordings(dataset, tmp_path / dataset, split="test", n=4, seed=2)
    ds = datasets.load(dataset, seed=2, n_train=1, n_test=4)
    assert [p.name for p in paths] == [f"record_{i:04d}.csv" for i in range(4)]
    header = paths[0].read_text().splitlines()[0]
    assert header == "time_s," + ",".join(ds.meta["channels"])
    rec = read_record(paths[1])
    assert rec.sample_rate == float(ds.meta["sample_rate"])
    np.testing.assert_allclose(rec.data, ds.test_x[1], rtol=1e-6)
    rows = (tmp_path / dataset / TRUTH_NAME).read_text().splitlines()[1:]
    expected = [f"record_{i:04d}.csv,{float(a)!r},{float(b)!r}" for i, m in enumerate(ds.test_mask) for a, b in runs(m)]
    assert rows == expected and rows
    with pytest.raises(ValueError, match="unknown example dataset"):
        write_recordings("rolling", tmp_path / "x")
