"""The bad-input suite: each case is one line of error naming the problem, a non-zero CLI exit, and no output file.

Python API cases raise ValueError with a one-line message; CLI cases run ``rddpm_signals.cli.main`` in-process (the
subprocess path is covered by tests/test_cli.py) and must exit 2 with one line on stderr and leave no file at the
output path. ``python -m pytest tests/test_bad_input.py -q -rA`` lists every case; the messages are in the test ids'
expected fragments below.
"""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import adapters
from helpers import TINY_1D
from helpers import TINY_CLI as TINY_CLI_ARGS
from rddpm_signals import RPCA, AnomalyModel, RobustDiffusion, make_detector
from rddpm_signals.cli import main as cli_main
from rddpm_signals.examples import write_forging_recordings

TINY_CLI = [*TINY_CLI_ARGS, "--quiet"]


def _x(n: int = 6, c: int = 1, length: int = 32) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, c, length)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ Python API
def _nan():
    x = _x()
    x[1, 0, 3] = np.nan
    RobustDiffusion(**TINY_1D).fit(x)


def _inf():
    x = _x()
    x[0, 0, 0] = np.inf
    RPCA().fit(x)


def _empty():
    RobustDiffusion(**TINY_1D).fit(np.zeros((0, 1, 32), dtype=np.float32))


def _wrong_rank():
    RobustDiffusion(**TINY_1D).fit(np.zeros((6, 32), dtype=np.float32))


def _zero_length():
    RobustDiffusion(**TINY_1D).fit(_x(length=0))


def _string_dtype():
    RPCA().fit(np.array([[["a", "b"]]]))


def _complex_dtype():
    RPCA().fit(_x().astype(np.complex64))


def _channels_mismatch():
    RPCA().fit(_x(c=1)).anomaly_map(_x(c=2))


def _length_mismatch_rpca():
    RPCA().fit(_x(length=32)).anomaly_map(_x(length=48))


def _unknown_method():
    make_detector("rddpm:no_such_knob=1")


def _bad_param():
    RobustDiffusion(**{**TINY_1D, "t0": 500}).fit(_x())


def _foreign_checkpoint(tmp: Path):
    (tmp / "ck.pt").write_bytes(b"\x00garbage")
    RobustDiffusion(**TINY_1D, checkpoint_path=str(tmp / "ck.pt")).fit(_x())


def _checkpoint_of_another_run(tmp: Path):
    RobustDiffusion(**TINY_1D, checkpoint_path=str(tmp / "ck.pt")).fit(_x())
    RobustDiffusion(**{**TINY_1D, "channels": 16}, checkpoint_path=str(tmp / "ck.pt")).fit(_x())


def _detector_file_as_model(tmp: Path):
    RPCA().fit(_x()).save(tmp / "rpca.det")
    AnomalyModel.load(tmp / "rpca.det")


def _model_load_missing(tmp: Path):
    AnomalyModel.load(tmp / "nope.model")


def _calibration_out_of_range():
    AnomalyModel(adapters.WaveformAdapter(sample_rate=100.0, window=16), "rpca", calibration=1.0).fit([_x()[0]])


API_CASES = {
    "nan": (_nan, "NaN"),
    "inf": (_inf, "inf"),
    "empty": (_empty, "empty"),
    "wrong-rank": (_wrong_rank, "shape"),
    "zero-length": (_zero_length, "empty"),
    "string-dtype": (_string_dtype, "dtype"),
    "complex-dtype": (_complex_dtype, "complex"),
    "channels-mismatch": (_channels_mismatch, "channel"),
    "length-mismatch": (_length_mismatch_rpca, "grid"),
    "unknown-method-option": (_unknown_method, "no_such_knob"),
    "parameter-out-of-range": (_bad_param, "t0"),
    "foreign-checkpoint": (_foreign_checkpoint, "not a training checkpoint"),
    "checkpoint-of-another-run": (_checkpoint_of_another_run, "another run: channels"),
    "detector-file-as-model": (_detector_file_as_model, "not an rddpm-signals model file"),
    "missing-model-file": (_model_load_missing, "no model file"),
    "calibration-out-of-range": (_calibration_out_of_range, "calibration must lie"),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_python_api_bad_input_is_one_line(case, tmp_path):
    fn, fragment = API_CASES[case]
    with pytest.raises(ValueError) as err:
        fn(tmp_path) if fn.__code__.co_argcount else fn()
    message = str(err.value)
    assert fragment.lower() in message.lower(), message
    assert "\n" not in message and len(message) < 400, message


# ------------------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    write_forging_recordings(root / "train", split="train", n=10, seed=0)
    assert cli_main(["fit", str(root / "train"), "--out", str(root / "m.model"), *TINY_CLI]) == 0
    return root


def _corrupt(root: Path, name: str, payload: bytes) -> Path:
    folder = root / f"corrupt_{Path(name).suffix[1:]}"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(payload)
    return folder


def _cli_cases(root: Path) -> dict[str, tuple[list[str], str]]:
    model, train = str(root / "m.model"), str(root / "train")
    score = ["score", model]
    out = ["--out", str(root / "out" / "r.nc")]

    def fit_out(tag: str) -> list[str]:
        return ["--out", str(root / "out" / f"{tag}.model"), *TINY_CLI]

    (root / "out").mkdir(exist_ok=True)
    (root / "empty").mkdir(exist_ok=True)
    (root / "empty" / "notes.txt").write_text("nothing to read")
    rates = root / "rates"
    rates.mkdir(exist_ok=True)
    sf.write(rates / "a.wav", np.zeros((2000, 1), np.float32), 1000, subtype="FLOAT")
    sf.write(rates / "b.wav", np.zeros((2000, 1), np.float32), 2000, subtype="FLOAT")
    RPCA().fit(_x()).save(root / "rpca.det")
    images = root / "images"
    images.mkdir(exist_ok=True)
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(images / "a.png")
    return {
        "missing-path": ([*score, str(root / "nope"), *out], "nope"),
        "no-readable-file": ([*score, str(root / "empty"), *out], "no"),
        "corrupt-wav": ([*score, str(_corrupt(root, "x.wav", b"RIFF0000WAVEjunk")), *out], "x.wav"),
        "corrupt-png": (
            ["fit", str(_corrupt(root, "x.png", b"\x89PNG\r\n\x1a\njunk")), "--adapter", "image", *fit_out("i")],
            "x.png",
        ),
        "corrupt-netcdf": (
            ["fit", str(_corrupt(root, "x.nc", b"CDF\x01junk")), "--adapter", "xarray", *fit_out("x")],
            "x.nc",
        ),
        "corrupt-csv": ([*score, str(_corrupt(root, "x.csv", b"time_s,a\n0,zz\n")), *out], "x.csv"),
        "mixed-sample-rates": (["fit", str(rates), "--out", str(root / "out" / "m2.model"), *TINY_CLI], "rate"),
        "bare-detector-as-model": (["score", str(root / "rpca.det"), train, *out], "model file"),
        "images-to-a-waveform-model": ([*score, str(images), *out], "image"),
        "unknown-method-option": (
            ["fit", train, "--out", str(root / "out" / "m3.model"), *TINY_CLI, "--method", "rddpm:nope=1"],
            "nope",
        ),
        "cuda-on-a-cpu-machine": (["fit", train, "--out", str(root / "out" / "m4.model"), "--device", "cuda"], "cuda"),
        "negative-k": ([*score, train, *out, "--k", "-1"], "k"),
        "unwritable-out": ([*score, train, "--out", str(root / "m.model" / "r.nc")], "m.model"),
        "out-is-a-folder": ([*score, train, "--out", str(root / "out")], "folder"),
    }


CLI_CASE_NAMES = [
    "missing-path",
    "no-readable-file",
    "corrupt-wav",
    "corrupt-png",
    "corrupt-netcdf",
    "corrupt-csv",
    "mixed-sample-rates",
    "bare-detector-as-model",
    "images-to-a-waveform-model",
    "unknown-method-option",
    "cuda-on-a-cpu-machine",
    "negative-k",
    "unwritable-out",
    "out-is-a-folder",
]


@pytest.mark.parametrize("case", CLI_CASE_NAMES)
def test_cli_bad_input_is_one_line_exit_2_and_no_file(case, folder, capsys):
    if case == "cuda-on-a-cpu-machine" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv, fragment = _cli_cases(folder)[case]
    capsys.readouterr()
    outputs = {Path(a) for a in argv if a.endswith((".nc", ".model", ".csv")) and "out" in Path(a).parts}
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert fragment.lower() in err.lower(), err
    for path in outputs:
        assert not path.exists(), path
    assert not list((folder / "out").glob(".*tmp*")), "a temporary file was left behind"


def test_disk_full_while_writing_leaves_no_file(folder, capsys, monkeypatch):
    """ENOSPC during the atomic write: one line, exit 2, neither the output nor its temporary file remains."""
    import rddpm_signals._io as io_mod

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io_mod.os, "fsync", full)
    out = folder / "out" / "full.nc"
    code = cli_main(["score", str(folder / "m.model"), str(folder / "train"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "space" in err.lower(), err
    assert not out.exists() and not list(out.parent.glob(".*tmp*")) and not list(out.parent.glob("*.tmp"))
