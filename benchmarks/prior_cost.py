#!/usr/bin/env python
"""What the 1D default's self-cleaning costs as the training set grows: the discord prior (one matrix profile of
the training set before training) and the ten map-based cleaning rounds, against the training steps themselves.

Training costs ``train_steps`` batches whatever the size of the training set; the prior and the rounds see every
training point, so their cost grows with it. For each size (training samples of the dataset's generator) this
times, on ``--threads`` threads (torch and BLAS):

- ``prior``: the default fit's own discord prior (:func:`rddpm_signals.cleaning.flag_discords` on the
  normalised training set, with its settings);
- ``rounds``: a short fit (``--steps`` steps) with the default's cleaning but no prior, minus the same fit without
  self-cleaning — the cost of scoring the training set ``clean_rounds`` times;
- ``step``: a fit of twice ``--steps`` steps without self-cleaning minus that of ``--steps``, per step, and that
  times the preset's ``train_steps``;
- ``rest``: the short fit without self-cleaning less its steps — building the model and the end of ``fit``
  (the scoring references, ``map_structure="auto"``'s choice), which also see the training set.

    python benchmarks/prior_cost.py                                     # forging, 192 / 976 / 3904 samples
    python benchmarks/prior_cost.py --dataset forging --sizes 192,3904 --threads 2

Prints a markdown table and writes it with a JSON copy to ``--out``. Run it on a quiet machine: every figure is a
wall-clock time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals import RobustDiffusion, datasets  # noqa: E402
from rddpm_signals._io import markdown_table, write_table_and_rows  # noqa: E402
from rddpm_signals.cleaning import AUTO_CLEANING  # noqa: E402
from rddpm_signals.detector import channel_center_scale  # noqa: E402
from rddpm_signals.harness.presets import dataset_options, model_params  # noqa: E402

HEADER = (
    "training (N, C, L)",
    "points per channel",
    "prior (s)",
    "prior (µs / point)",
    f"{AUTO_CLEANING[1]['rounds']} cleaning rounds (s)",
    "one step (s)",
    "preset's steps (s)",
    "rest of the fit (s)",
    "prior held out",
)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(dataset: str, preset: str, n_train: int, steps: int, seed: int, prior_only: bool = False) -> dict:
    """Time the prior, the cleaning rounds and a training step on ``n_train`` samples of ``dataset`` (the prior
    alone with ``prior_only``; the other figures are then NaN)."""
    options = {**dataset_options(preset, dataset), "n_train": n_train}
    data = datasets.load(dataset, contamination=0.2, seed=seed, **options)
    X = np.asarray(data.train_x, dtype=np.float32)
    params = {**model_params(preset, dataset), "random_state": seed, "verbose": False, "device": "cpu"}
    defaults = RobustDiffusion().get_params()
    det = RobustDiffusion(dims=1, **params)  # the default fit's own prior: its normalisation and settings
    det.center_, det.scale_ = channel_center_scale(X)
    det.clean_settings_ = det._chosen_cleaning(X, 1, det._layout_recipe(1, overlapping=False)["samples"])
    Z = det._normalise(X)
    prior, prior_s = _timed(lambda: det._model_free_prior(Z))
    n, channels, length = X.shape
    row = {
        "dataset": dataset,
        "train_shape": [n, channels, length],
        "points_per_channel": n * length,
        "prior_s": prior_s,
        "prior_us_per_point": 1e6 * prior_s / (n * channels * length),
        "prior_share": float(prior.mean()),
        "train_steps": int(params.get("train_steps", defaults["train_steps"])),
    }
    if prior_only:
        return {**row, **dict.fromkeys(("rounds_s", "step_s", "rest_s", "preset_steps_s"), float("nan"))}
    short = {**params, "train_steps": steps}
    _, plain_s = _timed(lambda: RobustDiffusion(dims=1, **short, self_clean=False).fit(X))
    _, cleaned_s = _timed(lambda: RobustDiffusion(dims=1, **short, clean_prior="none").fit(X))
    _, longer_s = _timed(
        lambda: RobustDiffusion(dims=1, **{**short, "train_steps": 2 * steps}, self_clean=False).fit(X)
    )
    step_s = (longer_s - plain_s) / steps
    return {
        **row,
        "rounds_s": cleaned_s - plain_s,
        "step_s": step_s,
        "rest_s": plain_s - steps * step_s,
        "preset_steps_s": step_s * row["train_steps"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="forging")
    p.add_argument("--preset", default="robust", help="the preset whose data and model sizes are used")
    p.add_argument("--sizes", default="192,976,3904", help="training samples, separated by ','")
    p.add_argument("--steps", type=int, default=50, help="steps of the short fits that time a step and the rounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--prior-only", action="store_true", help="time the prior alone (no fits)")
    p.add_argument("--out", default="results/prior_cost")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    with threadpool_limits(args.threads):
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(measure(args.dataset, args.preset, size, args.steps, args.seed, args.prior_only))
            r = rows[-1]
            print(f"{tuple(r['train_shape'])}: prior {r['prior_s']:.1f} s, rounds {r['rounds_s']:.1f} s", flush=True)
    cells = [
        [
            tuple(r["train_shape"]),
            r["points_per_channel"],
            f"{r['prior_s']:.1f}",
            f"{r['prior_us_per_point']:.1f}",
            f"{r['rounds_s']:.1f}",
            f"{r['step_s']:.3f}",
            f"{r['preset_steps_s']:.0f} ({r['train_steps']})",
            f"{r['rest_s']:.1f}",
            f"{r['prior_share']:.3f}",
        ]
        for r in rows
    ]
    setting = f"{args.dataset} ({args.preset} sizes), threads: {args.threads}, short fits of {args.steps} steps"
    table = f"{setting}\n\n{markdown_table(HEADER, cells)}"
    print(table)
    write_table_and_rows(args.out, "prior_cost", table, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
