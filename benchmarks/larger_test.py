"""Score saved fits again on a larger test set of the same generator. Each dataset's test split has its own random
stream (``rddpm_signals.datasets.base.split_streams``), so a larger ``n_test`` leaves the training set, and so the
saved fit, unchanged; only the instrument gets finer (a 64-sample test set's sample AUROC has a sampling SD of
about 0.07 near 0.5).

    python benchmarks/larger_test.py --models results/s14/models results/s15/models \\
        --fits results/s14/fits results/s15/fits --datasets 'whole_sample;val_whole_sample' --n-test 512 \\
        --variants 'base;map_structure=auto' --base base --variant map_structure=auto --iforest \\
        --out results/s16/whole_sample_512

For every saved diffusion model whose cached fit (``benchmarks/generalise.py``) is of one of ``--datasets``: the
test metrics of each scoring variant on the larger test set, and with ``--iforest`` those of an IsolationForest
fitted on the same training set. Prints one row per fit and the mean and the smallest (``--variant`` − ``--base``)
sample AUROC change; writes ``larger_test.md`` and ``larger_test.csv`` in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise import score_variant  # noqa: E402
from generalise_table import _split  # noqa: E402
from structure_choice import _cell_of  # noqa: E402

from rddpm_signals import RobustDiffusion  # noqa: E402
from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.baselines import IsolationForestDetector  # noqa: E402
from rddpm_signals.datasets.base import AnomalyDataset  # noqa: E402
from rddpm_signals.harness.cells import load_cell_data  # noqa: E402


def load_saved_fit(model: Path, record: dict, n_test: int | None) -> tuple[AnomalyDataset, RobustDiffusion]:
    """A saved fit's data (its own training set, a test set of ``n_test`` samples; ``None``: the preset's) and its
    detector, on the CPU."""
    resolved = _cell_of(record, model.stem).resolved()
    if n_test is not None:
        resolved["data_options"] = {**resolved["data_options"], "n_test": n_test}
    return load_cell_data(resolved), RobustDiffusion.load(model, device="cpu")


def find_saved_fits(
    model_dirs: list[str], fit_dirs: list[str], datasets: list[str], method: str | None
) -> list[tuple[Path, dict]]:
    """``(model file, cached fit record)`` for every saved model (``generalise.py --save-models``) whose record
    (same cell key, in one of ``fit_dirs``) is of one of ``datasets`` and, unless ``method`` is ``None``, of
    ``method``; models in file-name order."""
    found = []
    for folder in map(Path, model_dirs):
        for model in sorted(folder.glob("*.pt")):
            path = next(
                (Path(f) / f"{model.stem}.json" for f in fit_dirs if (Path(f) / f"{model.stem}.json").exists()), None
            )
            record = None if path is None else json.loads(path.read_text())
            if record and record["dataset"] in datasets and method in (None, record["method"]):
                found.append((model, record))
    return found


def score_fit(model: Path, record: dict, n_test: int, variants: list[str], iforest: bool) -> dict:
    """One fit: ``{"dataset", "seed", "contamination", variant → metrics, ["iforest" → metrics]}``."""
    data, det = load_saved_fit(model, record, n_test)
    base = det.get_params()
    row = {"dataset": record["dataset"], "seed": record["seed"], "contamination": record["contamination"]}
    Z = det._normalise(data.train_x)
    for variant in variants:
        row[variant] = score_variant(det, data, variant, base, Z)
    if iforest:
        row["iforest"] = score_variant(IsolationForestDetector().fit(data.train_x), data, "base", None, None)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--fits", nargs="+", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--method", default="rddpm")
    p.add_argument("--n-test", type=int, default=512)
    p.add_argument("--variants", default="base")
    p.add_argument("--base", default="base")
    p.add_argument("--variant", help="report the mean and smallest (variant − base) sample AUROC change")
    p.add_argument("--iforest", action="store_true")
    p.add_argument("--out", default="results/larger_test")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    datasets, variants = _split(args.datasets), _split(args.variants)
    if args.variant and not {args.base, args.variant} <= set(variants):
        print("error: --base and --variant must be among --variants", file=sys.stderr)
        return 2
    found = find_saved_fits(args.models, args.fits, datasets, args.method)
    if not found:
        print(
            f"error: no saved {args.method} fit of {datasets} in {args.models}: run generalise.py --save-models",
            file=sys.stderr,
        )
        return 2
    rows = sorted(
        (score_fit(m, r, args.n_test, variants, args.iforest) for m, r in found),
        key=lambda r: (r["dataset"], r["contamination"], r["seed"]),
    )
    names = [*variants, *(["iforest"] if args.iforest else [])]
    header = ["set", "contamination", "seed", *(f"{n}: sample AUROC / pixel AUROC" for n in names)]
    cells = [
        [r["dataset"], f"{r['contamination']:g}", r["seed"]]
        + [f"{r[n]['sample_auroc']:.3f} / {r[n]['pixel_auroc']:.3f}" for n in names]
        for r in rows
    ]
    lines = [markdown_table(header, cells)]
    if args.variant:
        gains = np.array([r[args.variant]["sample_auroc"] - r[args.base]["sample_auroc"] for r in rows])
        lines += ["", f"{args.variant} − {args.base}, sample AUROC on {args.n_test} test samples, {len(rows)} fits:"]
        lines.append(f"mean {gains.mean():+.4f}, smallest {gains.min():+.4f}")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "larger_test.md", text)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["dataset", "contamination", "seed", "scoring", "pixel_auroc", "pixel_auprc", "sample_auroc"])
    for r in rows:
        for n in names:
            writer.writerow(
                [
                    r["dataset"],
                    r["contamination"],
                    r["seed"],
                    n,
                    *(r[n][k] for k in ("pixel_auroc", "pixel_auprc", "sample_auroc")),
                ]
            )
    atomic_write_text(out / "larger_test.csv", buffer.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
