"""Does the default's model-free prior tell clean training sets from contaminated ones before any training?

For each harness cell (set, contamination, data seed) the cell's own detector (``--method``, the default
``rddpm``) runs its cleaning prior alone on the training samples (``RobustDiffusion.prior_flags``: the points it
would hold out from the first step; no network is trained) and the table gives, label-free,

- ``samples flagged``: the share of training samples holding at least one flagged point;
- ``points flagged``: the share of training points flagged;

and, from the training labels (only to read the table), the share of the defect points flagged (``defect recall``)
and of the defect-free samples holding a flag (``normal samples flagged``). A label-free switch keyed on the first
column needs every clean cell below and every contaminated cell above one threshold.

    python benchmarks/prior_evidence.py --datasets dev_signals --preset develop --contamination 0,0.1,0.2,0.3 \\
        --seeds 56,57,58 --out results/prior_evidence

Writes ``OUT/<sets>_<preset>.md`` (the table printed) and a JSON copy of the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import add_grid_arguments, parse_data_options, resolved_on_data  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, load_cell_data  # noqa: E402

__all__ = ["evidence_row", "main"]


def evidence_row(
    dataset: str, preset: str, contamination: float, seed: int, method: str = "rddpm", data_options: dict | None = None
) -> dict:
    """What the cell's detector's prior flags on its training set (label-free shares, and against the labels)."""
    resolved = resolved_on_data(Cell(dataset, method, contamination, seed, preset), data_options)
    if resolved["detector"] != "RobustDiffusion":
        raise ValueError(f"{method} is not a RobustDiffusion configuration: the prior belongs to its self-cleaning")
    data = load_cell_data(resolved)
    X = np.asarray(data.train_x, dtype=np.float32)
    detector = build_detector(resolved, X.ndim - 2)
    layout = data.meta.get("train_layout") if isinstance(data.meta, dict) else None
    start = time.perf_counter()
    prior = detector.prior_flags(X, **(layout.fit_keywords(detector) if layout is not None else {}))
    seconds = time.perf_counter() - start
    if prior is None:
        raise ValueError(f"{method} has no cleaning prior on {dataset}: nothing to measure")
    flat = prior.reshape(len(X), -1)
    truth = np.asarray(data.train_mask).reshape(flat.shape).astype(bool)
    normal = ~truth.any(axis=1)
    return {
        "set": dataset,
        "contamination": contamination,
        "seed": seed,
        "samples_flagged": float(flat.any(axis=1).mean()),
        "points_flagged": float(flat.mean()),
        "defect_recall": float(flat[truth].mean()) if truth.any() else None,
        "normal_samples_flagged": float(flat[normal].any(axis=1).mean()) if normal.any() else None,
        "seconds": seconds,
    }


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


# each row key with how the table prints it; the header is the key with spaces
_COLUMNS = {
    "set": str,
    "contamination": lambda v: f"{v:g}",
    "seed": str,
    "samples_flagged": _share,
    "points_flagged": _share,
    "defect_recall": _share,
    "normal_samples_flagged": _share,
    "seconds": lambda v: f"{v:.1f}",
}


def _table(rows: list[dict]) -> str:
    header = [key.replace("_", " ") for key in _COLUMNS]
    return markdown_table(header, [[show(r[key]) for key, show in _COLUMNS.items()] for r in rows])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(p, "comma-separated 1D sets, e.g. dev_signals,forging", contamination="0,0.2")
    p.add_argument("--method", default="rddpm", help="the harness spelling of the detector (default: rddpm)")
    p.add_argument("--out", default="results/prior_evidence")
    args = p.parse_args(argv)
    try:
        sets = [s.strip() for s in args.datasets.split(",") if s.strip()]
        options = parse_data_options(args.data)
        rows = [
            evidence_row(d, args.preset, c, s, args.method, options)
            for d in sets
            for c in args.contamination
            for s in args.seeds
        ]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    text = _table(rows)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{'_'.join(sets)}_{args.preset}"
    atomic_write_text(out / f"{name}.md", text + "\n")
    atomic_write_text(out / f"{name}.json", json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
