"""Example recordings for the walkthrough: the built-in forging press strokes written as one file per stroke.

The 1D development and validation sets of the model-selection protocol (``dev_signals``, ``val_signals``) can be
written the same way (``record_0000.csv`` …, channels named by the set, one sample per second: the generator has no
physical time scale), so label-free thresholds can be chosen on one family and confirmed on forging.

``rddpm-signals example forging DIR --split train --format csv`` writes ``DIR/stroke_0000.csv`` … — a header
``time_s,station_1,station_2,station_3,station_4`` then one row per sample, loads in tons — or four-channel float32
WAV files (``--format wav``, the same tons as raw float samples), and the ground truth ``DIR/_truth.csv``: one row
``file,start_s,end_s`` per contiguous run of the defect mask (``end_s`` exclusive: the last marked sample's time plus
one sample). The dataset marks a defect over time only (its mask merges the four stations and does not keep the
defect's kind), so the truth has no station or kind column. The leading underscore keeps the truth out of the data:
:func:`rddpm_signals.files.expand_paths` skips names starting with ``_`` inside folders.

Time scale: the generator draws one stroke as 256 samples of one press cycle and states one stroke per second
(60 strokes per minute, a fast transfer press), so the default rate is 256 Hz and a file lasts 1 s; ``sample_rate``
stretches the time axis (e.g. 128 Hz: 2 s strokes, 30 strokes per minute) without changing the samples.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._io import atomic_path, atomic_write_text

__all__ = [
    "write_recordings",
    "write_forging_recordings",
    "truth_rows",
    "add_example_arguments",
    "example_command",
    "main",
    "TRUTH_NAME",
]

TRUTH_NAME = "_truth.csv"
SPLITS = ("train", "test")
FORMATS = ("csv", "wav")
DATASETS = ("forging", "dev_signals", "val_signals")
_FILE_STEM = {"forging": "stroke"}  # other sets: "record"


def truth_rows(name: str, mask: np.ndarray, sample_rate: float) -> list[tuple[str, float, float]]:
    """``(file, start_s, end_s)`` for each contiguous run of the bool mask ``(L,)`` (end exclusive)."""
    from .segments import runs

    return [(name, first / sample_rate, stop / sample_rate) for first, stop in runs(mask)]


def _check_out_dir(out: Path, names: set[str]) -> None:
    """Refuse a folder that already holds other data files: they would be read with the examples."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"{str(out)!r} exists and is not a folder: pick a folder for the recordings")
    from .files import FORMATS as DATA_FORMATS

    other = sorted(
        p.name
        for p in out.iterdir()
        if p.is_file()
        and p.suffix.lower() in DATA_FORMATS
        and not p.name.startswith(("_", "."))
        and p.name not in names
    )
    if other:
        raise ValueError(
            f"{str(out)!r} already holds {len(other)} other data files ({', '.join(other[:3])}…): pick an empty "
            "folder, or remove them"
        )


def write_forging_recordings(out_dir: str | os.PathLike, **options: Any) -> list[Path]:
    """The forging strokes as files: :func:`write_recordings` of ``"forging"`` (options: ``split``,
    ``contamination``, ``n``, ``seed``, ``fmt``, ``sample_rate``)."""
    return write_recordings("forging", out_dir, **options)


def write_recordings(
    dataset: str,
    out_dir: str | os.PathLike,
    split: str = "train",
    contamination: float = 0.2,
    n: int | None = None,
    seed: int = 0,
    fmt: str = "csv",
    sample_rate: float | None = None,
) -> list[Path]:
    """Write the ``split`` of the built-in 1D ``dataset`` (one of :data:`DATASETS`; ``"train"``: ``contamination``
    share defective; ``"test"``: half defective) as ``n`` files, one per record (default: the dataset's 256 train /
    128 test records), in ``out_dir``, plus ``_truth.csv``.

    ``fmt``: ``"csv"`` or ``"wav"`` (float32, needs a whole-number ``sample_rate``). ``sample_rate``: samples per
    second (default: the dataset's own; forging 256 Hz, one stroke per second). Every file is written atomically.
    Returns the data files' paths, in order (``_truth.csv`` not included).
    """
    from . import datasets

    if dataset not in DATASETS:
        raise ValueError(f"unknown example dataset {dataset!r}: use one of {DATASETS}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if n is not None and (not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1):
        raise ValueError(f"n must be a positive number of records, got {n!r}")
    sizes = {"n_train": 1, "n_test": 1}
    if n is not None:
        sizes["n_" + split] = int(n)
    else:
        sizes = {}
    ds = datasets.load(dataset, contamination=contamination, seed=seed, **sizes)
    x = ds.train_x if split == "train" else ds.test_x
    mask = ds.train_mask if split == "train" else ds.test_mask
    rate = float(ds.meta["sample_rate"] if sample_rate is None else sample_rate)
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if fmt == "wav" and rate != round(rate):
        raise ValueError(f"a WAV file needs a whole-number sample rate, got {rate:g} Hz: round it or write CSV")
    channels = tuple(ds.meta["channels"])
    out = Path(out_dir)
    stem = _FILE_STEM.get(dataset, "record")
    names = [f"{stem}_{i:04d}.{fmt}" for i in range(len(x))]
    _check_out_dir(out, set(names))
    out.mkdir(parents=True, exist_ok=True)
    times = np.arange(x.shape[-1]) / rate
    paths, truth = [], [("file", "start_s", "end_s")]
    for name, stroke, m in zip(names, x, mask, strict=True):
        path = out / name
        if fmt == "csv":
            _write_csv(path, times, stroke, channels)
        else:
            _write_wav(path, stroke, int(round(rate)))
        paths.append(path)
        truth.extend(truth_rows(name, m, rate))
    atomic_write_text(out / TRUTH_NAME, "".join(",".join(_cell(v) for v in row) + "\n" for row in truth))
    return paths


def _cell(value: object) -> str:
    return repr(float(value)) if isinstance(value, float | np.floating) else str(value)


def _write_csv(path: Path, times: np.ndarray, stroke: np.ndarray, channels: Sequence[str]) -> None:
    """``stroke`` ``(C, L)`` float32 → CSV; ``%.9g`` keeps every float32 value exact, ``repr`` every time."""
    lines = ["time_s," + ",".join(channels)]
    for t, row in zip(times, stroke.T, strict=True):
        lines.append(repr(float(t)) + "," + ",".join(f"{v:.9g}" for v in row))
    atomic_write_text(path, "\n".join(lines) + "\n")


def _write_wav(path: Path, stroke: np.ndarray, rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.ascontiguousarray(stroke.T, dtype=np.float32), rate, subtype="FLOAT", format="WAV")


# ------------------------------------------------------------------------------------------------------ command line
def add_example_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``rddpm-signals example``: ``DATASET DIR [--split] [--format] [--contamination] [--n]
    [--seed] [--sample-rate]``."""
    parser.add_argument("dataset", choices=DATASETS, help="the built-in dataset to write as recordings")
    parser.add_argument("out_dir", metavar="DIR", help="folder for the recordings (created; must hold no other data)")
    parser.add_argument("--split", choices=SPLITS, default="train", help="train (contaminated) or test (default train)")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="csv", help="csv or wav (default csv)")
    parser.add_argument("--contamination", type=float, default=0.2, help="share of defective records (train split)")
    parser.add_argument("--n", type=int, default=None, help="number of records (default 256 train / 128 test)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--sample-rate", type=float, default=None, help="samples per second (default: the set's own, forging 256)"
    )
    return parser


def example_command(args: argparse.Namespace) -> int:
    """Run ``rddpm-signals example`` from parsed arguments; prints one summary line. Returns the exit code 0."""
    paths = write_recordings(
        args.dataset,
        args.out_dir,
        split=args.split,
        contamination=args.contamination,
        n=args.n,
        seed=args.seed,
        fmt=args.fmt,
        sample_rate=args.sample_rate,
    )
    out = Path(args.out_dir)
    truth = (out / TRUTH_NAME).read_text().splitlines()[1:]
    defective = len({row.split(",")[0] for row in truth})
    if not getattr(args, "quiet", False):
        print(
            f"wrote {len(paths)} {args.dataset} records ({defective} with a defect) to {out}/ as {args.fmt}; "
            f"ground truth in {out / TRUTH_NAME}"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rddpm_signals.examples forging DIR ...``: errors are one line on stderr and exit code 2."""
    parser = add_example_arguments(argparse.ArgumentParser(prog="rddpm-signals example", description=__doc__))
    args = parser.parse_args(argv)
    try:
        return example_command(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
