"""Label-free flagging from files, measured against ground truth (labels are used only for the measurement).

The whole path a user takes: recordings written to a folder → ``rddpm-signals fit`` → ``rddpm-signals score`` →
``RESULT.nc`` + ``segments.csv``; then the reported segments and flagged records are compared with the truth:

- segment precision: share of reported segments that overlap a true defect of the same file;
- segment recall: share of true defects overlapped by at least one reported segment;
- record precision / recall: flagged records against records that hold a defect.

Each is computed twice: with the CLI's default ``--segments-in flagged`` (segments only in flagged records) and with
``--segments-in all`` (segments in every record), to see whether the record gate matters.

Datasets:
- ``forging`` (1D): ``rddpm-signals example forging`` writes the train split (``--contamination``) and the test split
  as CSV files plus ``_truth.csv`` (``file,start_s,end_s``); a true defect is one row (one run of the mask).
- ``dev_signals`` / ``val_signals`` (1D): the model-selection sets, written the same way (``rddpm-signals example
  dev_signals``); label-free threshold rules are chosen on ``dev_signals`` and confirmed on forging and ``val_signals``.
- ``rolling`` (2D): the rolled-steel tiles written as 16-bit greyscale PNGs (one dataset-wide min / max scale), the
  test masks in ``_truth_masks.npz``; a true defect is one connected component (8-connectivity) of a mask, and a
  reported box hits it when the box covers at least one of the component's pixels. ``defect_recall`` also counts
  each defective image as one defect (hit when any box covers any of its mask pixels), since a patchy defect can
  break into several components.

Usage::

    python benchmarks/flagging.py                                   # forging, rddpm, seed 0 → results/flagging
    python benchmarks/flagging.py --dataset rolling --train-steps 600 --channels 16
    python benchmarks/flagging.py --method ddpm --seeds 0 1
    python benchmarks/flagging.py --k-grid 2 3 4 5 6               # also re-score at other k (chosen with labels!)
    python benchmarks/flagging.py --split-k 1.5,5 1,6              # record k and map k apart (chosen with labels!)
    python benchmarks/flagging.py --tied-k 1 1.5 2 3               # one threshold for records and map (a sweep)
    python benchmarks/flagging.py -- --k 4                         # anything after -- goes to 'score'

A fitted model is kept in ``OUT/work/<dataset>_<method>_s<seed>/`` and re-used by later runs with the same settings
(``--refit`` to fit again), so extra scoring options cost only a ``score``. Rows are merged into ``OUT/flagging.csv``
(keyed by dataset, method, fit settings, seed, threshold and segments_in) and ``OUT/flagging.md`` is rewritten from it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rddpm_signals._io import atomic_path, atomic_write_text  # noqa: E402
from rddpm_signals._io import markdown_table as _markdown_table  # noqa: E402

__all__ = [
    "interval_metrics",
    "box_metrics",
    "record_metrics",
    "read_truth_intervals",
    "read_segments",
    "write_rolling_pngs",
    "run_one",
    "main",
]

DATASETS = ("forging", "rolling", "dev_signals", "val_signals")
_INTERVAL_SETS = ("forging", "dev_signals", "val_signals")  # 1D: truth as time intervals
KEY = ("dataset", "method", "train_steps", "channels", "seed", "threshold", "segments_in")
COLUMNS = (
    *KEY,
    "n_records",
    "n_defective",
    "n_flagged",
    "record_precision",
    "record_recall",
    "n_segments",
    "n_true",
    "n_wrong_in_defective",
    "seg_precision",
    "seg_recall",
    "seg_f1",
    "defect_recall",
    "score_threshold",
    "map_threshold",
    "fit_s",
    "score_s",
    "score_args",
)
#: sizes of the runs (the robust preset's sizes for both sets)
SIZES = {
    "forging": {"n_train": 192, "n_test": 96},
    "rolling": {"size": 32, "n_train": 160, "n_test": 64},
    # the model-selection sets at the develop / validate presets' sizes
    "dev_signals": {"n_train": 192, "n_test": 96},
    "val_signals": {"n_train": 192, "n_test": 96},
}


# ---------------------------------------------------------------------------------------------------- metrics
def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else float("nan")


def interval_metrics(
    reported: Mapping[str, Sequence[tuple[float, float]]], truth: Mapping[str, Sequence[tuple[float, float]]]
) -> dict:
    """Segment precision / recall of half-open time intervals ``[start, end)``, per file name.

    ``reported[file]`` / ``truth[file]``: lists of ``(start, end)``. A reported interval is correct when it overlaps a
    true interval of the same file (``start < t_end and t_start < end``); a true interval is found when a reported
    one overlaps it. Returns ``n_segments``, ``n_true``, ``seg_precision``, ``seg_recall`` (NaN when the count is 0).
    """
    n_rep = hit_rep = n_true = hit_true = wrong_in_defective = 0
    for name in set(reported) | set(truth):
        rep = [(float(a), float(b)) for a, b in reported.get(name, ())]
        tru = [(float(a), float(b)) for a, b in truth.get(name, ())]
        n_rep += len(rep)
        n_true += len(tru)
        hits = sum(any(a < tb and ta < b for ta, tb in tru) for a, b in rep)
        hit_rep += hits
        wrong_in_defective += (len(rep) - hits) if tru else 0
        hit_true += sum(any(a < tb and ta < b for a, b in rep) for ta, tb in tru)
    return {
        "n_segments": n_rep,
        "n_true": n_true,
        "n_wrong_in_defective": wrong_in_defective,
        "seg_precision": _ratio(hit_rep, n_rep),
        "seg_recall": _ratio(hit_true, n_true),
    }


def box_metrics(
    reported: Mapping[str, Sequence[tuple[float, float, float, float]]], masks: Mapping[str, np.ndarray]
) -> dict:
    """Segment precision / recall of pixel boxes against the connected components of bool masks ``(H, W)``.

    ``reported[file]``: ``(x0, x1, y0, y1)`` half-open pixel boxes (the segments CSV's start, end, low, high);
    ``masks[file]``: the file's true mask. Components use 8-connectivity. A box is correct when it covers a pixel of
    some component; a component is found when a box covers one of its pixels. ``defect_recall``: defective files
    (mask not empty) in which a box covers a mask pixel, over defective files; ``n_wrong_in_defective``: boxes that
    miss every component of a defective file. Files missing from ``masks`` count as clean.
    """
    from scipy import ndimage

    n_rep = hit_rep = n_true = hit_true = n_def = hit_def = wrong_in_defective = 0
    for name in set(reported) | set(masks):
        mask = np.asarray(masks.get(name, np.zeros((1, 1), dtype=bool)), dtype=bool)
        labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
        found: set[int] = set()
        boxes = list(reported.get(name, ()))
        for x0, x1, y0, y1 in boxes:
            r0, r1 = max(int(np.floor(y0)), 0), max(int(np.ceil(y1)), 0)
            c0, c1 = max(int(np.floor(x0)), 0), max(int(np.ceil(x1)), 0)
            inside = set(np.unique(labels[r0:r1, c0:c1]).tolist()) - {0}
            hit_rep += bool(inside)
            wrong_in_defective += bool(n) and not inside
            found |= inside
        n_rep += len(boxes)
        n_true += n
        hit_true += len(found)
        if n:
            n_def += 1
            hit_def += bool(found)
    return {
        "n_segments": n_rep,
        "n_true": n_true,
        "n_wrong_in_defective": wrong_in_defective,
        "seg_precision": _ratio(hit_rep, n_rep),
        "seg_recall": _ratio(hit_true, n_true),
        "defect_recall": _ratio(hit_def, n_def),
    }


def record_metrics(flagged: Mapping[str, bool], defective: set[str]) -> dict:
    """Record precision / recall: ``flagged[file]`` against the set of files that hold a defect."""
    flagged_set = {name for name, f in flagged.items() if f}
    tp = len(flagged_set & defective)
    return {
        "n_records": len(flagged),
        "n_defective": len(defective & set(flagged)),
        "n_flagged": len(flagged_set),
        "record_precision": _ratio(tp, len(flagged_set)),
        "record_recall": _ratio(tp, len(defective & set(flagged))),
    }


# ---------------------------------------------------------------------------------------------------- files
def read_truth_intervals(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """``_truth.csv`` (``file,start_s,end_s``) → ``{file name: [(start, end), ...]}``."""
    out: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(Path(row["file"]).name, []).append((float(row["start_s"]), float(row["end_s"])))
    return out


def read_segments(path: str | Path) -> dict[str, list[tuple[float, ...]]]:
    """A segments CSV written by ``score --segments`` → ``{file name: [(start, end[, low, high]), ...]}`` (low /
    high only where the CSV has them: 2D maps)."""
    out: dict[str, list[tuple[float, ...]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            seg = (float(row["start"]), float(row["end"]))
            if row.get("low") not in (None, ""):
                seg = (*seg, float(row["low"]), float(row["high"]))
            out.setdefault(Path(row["file"]).name, []).append(seg)
    return out


def _flags(result_path: Path) -> tuple[dict[str, bool], dict]:
    from rddpm_signals.results import open_result

    res = open_result(result_path)
    table = res.table
    flags = {Path(str(s)).name: bool(f) for s, f in zip(table["source"].values, table["flagged"].values, strict=True)}
    return flags, res.attrs


def write_rolling_pngs(
    train_dir: Path, test_dir: Path, seed: int, contamination: float, sizes: Mapping[str, int] | None = None
) -> None:
    """The rolling set as 16-bit greyscale PNGs (one min / max over train and test, so all share one scale) and the
    test masks ``(N, H, W)`` in ``test_dir/_truth_masks.npz`` (one bool array per file name)."""
    from PIL import Image

    from rddpm_signals import datasets

    ds = datasets.load("rolling", contamination=contamination, seed=seed, **{**SIZES["rolling"], **(sizes or {})})
    lo = float(min(ds.train_x.min(), ds.test_x.min()))
    hi = float(max(ds.train_x.max(), ds.test_x.max()))
    masks = {}
    for folder, x, mask in ((train_dir, ds.train_x, ds.train_mask), (test_dir, ds.test_x, ds.test_mask)):
        folder.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(x[:, 0]):
            name = f"tile_{i:04d}.png"
            pixels = np.round((img.astype(np.float64) - lo) / (hi - lo) * 65535.0).astype(np.uint16)
            with atomic_path(folder / name) as tmp:
                Image.fromarray(pixels).save(tmp, format="PNG")
            if folder == test_dir:
                masks[name] = mask[i].astype(bool)
    with atomic_path(test_dir / "_truth_masks.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **masks)


def _read_masks(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {name: z[name] for name in z.files}


# ---------------------------------------------------------------------------------------------------- runs
def _cli(argv: list[str]) -> None:
    """Run the CLI in-process; a non-zero exit code is an error."""
    from rddpm_signals.cli import main as cli_main

    print("$ rddpm-signals " + shlex.join(argv), flush=True)
    code = cli_main(argv)
    if code != 0:
        raise RuntimeError(f"rddpm-signals {argv[0]} exited with code {code}")


def _prepare(dataset: str, work: Path, seed: int, contamination: float, sizes: Mapping[str, int]) -> None:
    if (work / "test" / ("_truth_masks.npz" if dataset == "rolling" else "_truth.csv")).is_file():
        return
    if dataset in _INTERVAL_SETS:
        n = sizes
        common = ["--contamination", str(contamination), "--seed", str(seed)]
        _cli(["example", dataset, str(work / "train"), "--split", "train", "--n", str(n["n_train"]), *common])
        _cli(["example", dataset, str(work / "test"), "--split", "test", "--n", str(n["n_test"]), *common])
    else:
        write_rolling_pngs(work / "train", work / "test", seed, contamination, sizes)


def _fit_settings(args: argparse.Namespace) -> list[str]:
    out = ["--method", args.method]
    if args.train_steps is not None:
        out += ["--train-steps", str(args.train_steps)]
    if args.channels is not None:
        out += ["--channels", str(args.channels)]
    if args.dataset == "rolling":
        out += ["--adapter", "image"]
    return out


def _measure(dataset: str, work: Path, seg_csv: Path, result: Path) -> dict:
    flags, attrs = _flags(result)
    segs = read_segments(seg_csv)
    if dataset in _INTERVAL_SETS:
        truth = read_truth_intervals(work / "test" / "_truth.csv")
        row = interval_metrics(segs, truth)
        row["defect_recall"] = float("nan")
        defective = {name for name, iv in truth.items() if iv}
    else:
        masks = _read_masks(work / "test" / "_truth_masks.npz")
        row = box_metrics(segs, masks)
        defective = {name for name, m in masks.items() if m.any()}
    row.update(record_metrics(flags, defective))
    p, r = row["seg_precision"], row["seg_recall"]
    row["seg_f1"] = 2 * p * r / (p + r) if p + r > 0 else float("nan")
    row["score_threshold"] = float(attrs["score_threshold"])
    row["map_threshold"] = float(attrs["map_threshold"])
    return row


def run_one(args: argparse.Namespace, seed: int, score_args: Sequence[str]) -> list[dict]:
    """Write the data (once), fit (once, unless ``--refit``), score with the stored threshold and the extra
    ``score_args`` (flagged-only and all-records segments, then each ``--k-grid`` value) → result rows."""
    tag = f"{args.dataset}_{args.method.replace(':', '_').replace(',', '_').replace('=', '-')}"
    if args.train_steps is not None:
        tag += f"_steps{args.train_steps}"
    if args.channels is not None:
        tag += f"_ch{args.channels}"
    sizes = dict(SIZES[args.dataset])
    for name in ("n_train", "n_test"):
        if getattr(args, name) is not None:
            sizes[name] = getattr(args, name)
            tag += f"_{name}{sizes[name]}"
    work = Path(args.out) / "work" / f"{tag}_s{seed}"
    _prepare(args.dataset, work, seed, args.contamination, sizes)
    model = work / "m.model"
    fit_info = work / "fit.json"
    if args.refit or not model.is_file() or not fit_info.is_file():
        start = time.perf_counter()
        _cli(["fit", str(work / "train"), "--out", str(model), "--seed", str(seed), "--quiet", *_fit_settings(args)])
        atomic_write_text(fit_info, json.dumps({"fit_s": time.perf_counter() - start}))
    fit_s = json.loads(fit_info.read_text())["fit_s"]
    base = {
        "dataset": args.dataset,
        "method": args.method,
        "train_steps": "" if args.train_steps is None else args.train_steps,
        "channels": "" if args.channels is None else args.channels,
        "seed": seed,
        "fit_s": round(fit_s, 1),
    }
    plans = [("stored default" if not score_args else "stored + " + " ".join(score_args), list(score_args))]
    plans += [(f"k={k:g} (chosen with labels)", [*score_args, "--k", str(k)]) for k in args.k_grid or ()]
    plans += _split_plans(model, args.split_k or (), score_args)
    plans += _tied_plans(model, args.tied_k or (), score_args)
    rows = []
    for p_index, (label, extra) in enumerate(plans):
        for segments_in in ("flagged", "all"):
            result, seg_csv = work / f"r_{p_index}_{segments_in}.nc", work / f"s_{p_index}_{segments_in}.csv"
            start = time.perf_counter()
            _cli(
                [
                    "score",
                    str(model),
                    str(work / "test"),
                    "--out",
                    str(result),
                    "--segments",
                    str(seg_csv),
                    "--segments-in",
                    segments_in,
                    "--no-signal",
                    "--quiet",
                    *extra,
                ]
            )
            score_s = time.perf_counter() - start
            row = {**base, "threshold": label, "segments_in": segments_in, "score_s": round(score_s, 1)}
            row.update(_measure(args.dataset, work, seg_csv, result))
            row["score_args"] = " ".join(extra)
            rows.append(row)
            print(_row_line(row), flush=True)
    return rows


def _split_plans(model: Path, pairs: Sequence[str], score_args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``"SCORE_K,MAP_K"`` pairs → (label, score options) with the score threshold at median + SCORE_K·MAD of the
    stored training scores and the map threshold at median + MAP_K·MAD of the stored training map values."""
    if not pairs:
        return []
    from rddpm_signals.model import AnomalyModel

    fitted = AnomalyModel.load(model)
    plans = []
    for pair in pairs:
        try:
            k_score, k_map = (float(v) for v in pair.split(","))
        except ValueError:
            raise ValueError(f"bad --split-k {pair!r}: write SCORE_K,MAP_K, e.g. 1.5,5") from None
        score = fitted.thresholds_for(method="mad", k=k_score).score
        map_value = fitted.thresholds_for(method="mad", k=k_map).map
        label = f"score k={k_score:g}, map k={k_map:g} (chosen with labels)"
        plans.append((label, [*score_args, "--score-threshold", repr(score), "--map-threshold", repr(map_value)]))
    return plans


def _tied_plans(model: Path, ks: Sequence[float], score_args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """MAD multiples ``ks`` → (label, score options) with one threshold for records and map alike: median + K·MAD
    of the stored training record scores (a segment is where the map exceeds what a normal record's score reaches)."""
    if not ks:
        return []
    from rddpm_signals.model import AnomalyModel

    fitted = AnomalyModel.load(model)
    plans = []
    for k in ks:
        value = repr(fitted.thresholds_for(method="mad", k=k).score)
        label = f"tied k={k:g} (sweep)"
        plans.append((label, [*score_args, "--score-threshold", value, "--map-threshold", value]))
    return plans


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def _row_line(row: Mapping) -> str:
    return (
        f"{row['dataset']} {row['method']} seed {row['seed']} [{row['threshold']}, segments in {row['segments_in']}]: "
        f"segments P={_fmt(row['seg_precision'])} R={_fmt(row['seg_recall'])} ({row['n_segments']} reported, "
        f"{row['n_true']} true); records P={_fmt(row['record_precision'])} R={_fmt(row['record_recall'])} "
        f"({row['n_flagged']} flagged of {row['n_records']}, {row['n_defective']} defective)"
    )


def _merge_csv(path: Path, rows: list[dict]) -> list[dict]:
    """Existing rows of ``path`` with ``rows`` on top (same KEY → replaced), in first-seen order."""
    merged: dict[tuple, dict] = {}
    if path.is_file():
        with open(path, newline="") as f:
            for old in csv.DictReader(f):
                merged[tuple(str(old[k]) for k in KEY)] = old
    for row in rows:
        merged[tuple(str(row[k]) for k in KEY)] = row
    return list(merged.values())


def markdown_table(rows: Sequence[Mapping]) -> str:
    """The rows as a markdown table (the main columns)."""
    cols = (
        "dataset",
        "method",
        "train_steps",
        "channels",
        "seed",
        "threshold",
        "segments_in",
        "seg_precision",
        "seg_recall",
        "seg_f1",
        "n_segments",
        "n_true",
        "n_wrong_in_defective",
        "defect_recall",
        "record_precision",
        "record_recall",
        "n_flagged",
        "n_defective",
        "n_records",
        "fit_s",
    )
    body = []
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c, "")
            if isinstance(v, str) and c in ("seg_precision", "seg_recall", "record_precision", "record_recall"):
                with contextlib.suppress(ValueError):
                    v = float(v)
            if c == "defect_recall" and isinstance(v, str):
                with contextlib.suppress(ValueError):
                    v = float(v)
            cells.append(_fmt(v) if not (isinstance(v, float) and np.isnan(v) and c == "defect_recall") else "–")
        body.append(cells)
    return _markdown_table(cols, body) + "\n"


def write_outputs(out: Path, rows: list[dict], command: str) -> list[dict]:
    """Merge ``rows`` into ``out/flagging.csv`` and rewrite ``out/flagging.md``; returns all rows."""
    out.mkdir(parents=True, exist_ok=True)
    all_rows = _merge_csv(out / "flagging.csv", rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in all_rows:
        writer.writerow({c: _fmt(row.get(c, "")) if isinstance(row.get(c), float) else row.get(c, "") for c in COLUMNS})
    atomic_write_text(out / "flagging.csv", buf.getvalue())
    md = (
        "# Label-free flagging from files\n\n"
        f"Last command: `{command}`\n\n"
        "Segment P/R: reported segments overlapping a true defect / true defects overlapped by a segment. Record "
        "P/R: flagged records against records with a defect. Labels are used only for this measurement; rows "
        "marked 'chosen with labels' are for insight, not defaults.\n\n" + markdown_table(all_rows)
    )
    atomic_write_text(out / "flagging.md", md)
    return all_rows


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASETS, default="forging")
    p.add_argument("--method", default="rddpm", help="the fit's --method (default rddpm)")
    p.add_argument("--train-steps", type=int, default=None, help="the fit's --train-steps (default: the method's)")
    p.add_argument("--channels", type=int, default=None, help="the fit's --channels (default: the method's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--contamination", type=float, default=0.2, help="share of defective training records (0.2)")
    p.add_argument("--n-train", type=int, default=None, help="training records (default: 192 forging, 160 rolling)")
    p.add_argument("--n-test", type=int, default=None, help="test records (default: 96 forging, 64 rolling)")
    p.add_argument("--k-grid", type=float, nargs="*", default=None, help="also score at these MAD multiples")
    p.add_argument(
        "--split-k",
        nargs="*",
        default=None,
        metavar="SCORE_K,MAP_K",
        help="also score with separate MAD multiples for the record score and the map (chosen with labels)",
    )
    p.add_argument(
        "--tied-k",
        type=float,
        nargs="*",
        default=None,
        metavar="K",
        help="also score with one threshold for records and map: median + K·MAD of the training record scores",
    )
    p.add_argument("--refit", action="store_true", help="fit again even when a model of these settings exists")
    p.add_argument("--out", default="results/flagging")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; arguments after ``--`` go to every ``score``. Prints the table; returns 0."""
    argv = list(sys.argv[1:] if argv is None else argv)
    score_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, score_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    rows = []
    for seed in args.seeds:
        rows.extend(run_one(args, seed, score_args))
    command = "python benchmarks/flagging.py " + shlex.join(argv + (["--", *score_args] if score_args else []))
    all_rows = write_outputs(Path(args.out), rows, command)
    print()
    print(markdown_table(all_rows))
    print(f"written: {Path(args.out) / 'flagging.csv'}, {Path(args.out) / 'flagging.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
