#!/usr/bin/env python
"""What ``map_structure="discord"`` costs a user: fit time, scoring time and saved-model size against the plain
reconstruction map (``map_structure="none"``), same data, seed and sizes otherwise.

Scoring cost does not depend on how well the network is trained, so the fits are short (``--train-steps``); the
fit time is reported to show the extra work at the end of ``fit`` (the reference and its scales), not a training
time. Prints a markdown table and writes it with a JSON copy to ``--out``.

    python benchmarks/discord_cost.py                                   # forging, long_record, val_long_record
    python benchmarks/discord_cost.py --datasets forging --n-test 512

Run it on a quiet machine: every figure is a wall-clock time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rddpm_signals import RobustDiffusion, datasets
from rddpm_signals._io import markdown_table, write_table_and_rows
from rddpm_signals.harness.presets import dataset_options, model_params

#: (dataset, preset whose sizes it is loaded with)
DEFAULT_SETS = "forging:robust;long_record:develop;val_long_record:validate"


def measure(dataset: str, preset: str, structure: str, train_steps: int, n_test: int | None, seed: int) -> dict:
    """Fit one model with ``map_structure=structure`` and time its ``fit``, its ``anomaly_map`` and its file."""
    options = dataset_options(preset, dataset)
    if n_test is not None:
        options["n_test"] = n_test
    data = datasets.load(dataset, contamination=0.2, seed=seed, **options)
    params = {**model_params(preset, dataset), "train_steps": train_steps}
    model = RobustDiffusion(dims=1, map_structure=structure, random_state=seed, verbose=False, device="cpu", **params)
    start = time.perf_counter()
    model.fit(data.train_x)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    maps = model.anomaly_map(data.test_x)
    score_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        model.save(path)
        size_mb = path.stat().st_size / 2**20
    return {
        "dataset": dataset,
        "structure": structure,
        "train_shape": list(data.train_x.shape),
        "n_test": int(len(data.test_x)),
        "fit_s": fit_s,
        "score_s": score_s,
        "score_ms_per_sample": 1000 * score_s / len(data.test_x),
        "model_mb": size_mb,
        "map_shape": list(np.shape(maps)),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default=DEFAULT_SETS, help="'dataset:preset' pairs separated by ';'")
    p.add_argument("--train-steps", type=int, default=100)
    p.add_argument("--n-test", type=int, default=None, help="test samples (default: the preset's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/discord_cost")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for pair in filter(None, args.datasets.split(";")):
        dataset, _, preset = pair.partition(":")
        for structure in ("none", "discord"):
            rows.append(measure(dataset, preset or "robust", structure, args.train_steps, args.n_test, args.seed))

    header = [
        "dataset",
        "train (N, C, L)",
        "test samples",
        "map_structure",
        "fit (s)",
        "anomaly_map (s)",
        "ms / sample",
        "model (MiB)",
    ]
    cells = [
        [r["dataset"], tuple(r["train_shape"]), r["n_test"], r["structure"]]
        + [f"{r[k]:.1f}" for k in ("fit_s", "score_s", "score_ms_per_sample")]
        + [f"{r['model_mb']:.2f}"]
        for r in rows
    ]
    setting = f"torch threads: {args.threads}; train steps: {args.train_steps}; seed {args.seed}"
    table = f"{setting}\n\n{markdown_table(header, cells)}"
    print(table)
    write_table_and_rows(args.out, "discord_cost", table, rows)


if __name__ == "__main__":
    main()
