"""Whole-sample scores on saved fits (issue 12; docs/RESULTS.md §18): the default's map score, the network's
denoising error (``rddpm_signals.DenoisingTypicality``) one-sided and two-sided, and an IsolationForest on the
raw pixels of the same training set.

For each ``t`` in ``--ts`` and ``--draws`` noise draws (seeded per sample), ``mean((ε̂(x_t, t) − ε)²)`` over the
sample, as a robust z-score against the training samples' errors. Columns (sample AUROC): ``map_score``;
``denoise`` — the mean z (one-sided: higher error = anomalous; ``DenoisingTypicality(alternative="greater")``);
``denoise_abs`` — the mean ``|z|`` (two-sided, ``DenoisingTypicality``'s default); ``denoise_abs_of_mean`` —
``|mean z|``; ``t=…`` — each level's z alone; ``iforest``. Nothing here is tuned on test labels.

    python benchmarks/denoise_score.py --models results/s18/models --fits results/s18/fits \\
        --datasets 'whole_sample;val_whole_sample' --n-test 512 --out results/s18/denoise_lib

Prints one JSON line per fit, then a table; writes ``denoise_score.md`` / ``.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import _split  # noqa: E402
from larger_test import find_saved_fits, load_saved_fit  # noqa: E402

from rddpm_signals._io import markdown_table, write_table_and_rows  # noqa: E402
from rddpm_signals._robust import median_mad  # noqa: E402
from rddpm_signals.baselines import IsolationForestDetector  # noqa: E402
from rddpm_signals.metrics import sample_auroc  # noqa: E402
from rddpm_signals.typicality import DenoisingTypicality, typicality_score  # noqa: E402


def robust_z(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``scores`` as robust z-scores against ``reference`` (median, 1.4826 · MAD)."""
    centre, scale = median_mad(reference)
    return (np.asarray(scores) - centre) / scale


def score_fit(model: Path, record: dict, n_test: int | None, ts: list[int], draws: int, combined: bool) -> dict:
    data, det = load_saved_fit(model, record, n_test)
    typicality = DenoisingTypicality(timesteps=ts, draws=draws).fit(det, data.train_x)
    z_test = typicality.errors(data.test_x)
    typical_test = typicality_score(z_test)  # = typicality.score(data.test_x), without a second pass
    per_t = {f"t={t}": round(sample_auroc(z_test[:, j], data.test_label), 4) for j, t in enumerate(ts)}
    iforest = IsolationForestDetector().fit(data.train_x)
    map_score = det.anomaly_score(data.test_x)
    extra = {}
    if combined:  # both scores as robust z-scores against the training samples': their larger and their mean
        z_map = robust_z(map_score, det.anomaly_score(data.train_x))
        z_typ = robust_z(typical_test, typicality.train_scores_)
        extra["max_z"] = round(sample_auroc(np.maximum(z_map, z_typ), data.test_label), 4)
        extra["mean_z"] = round(sample_auroc((z_map + z_typ) / 2, data.test_label), 4)
    return {
        "dataset": record["dataset"],
        "seed": record["seed"],
        "map_score": round(sample_auroc(map_score, data.test_label), 4),
        "denoise": round(sample_auroc(typicality_score(z_test, "greater"), data.test_label), 4),
        "denoise_abs": round(sample_auroc(typical_test, data.test_label), 4),
        "denoise_abs_of_mean": round(sample_auroc(np.abs(z_test.mean(axis=1)), data.test_label), 4),
        **per_t,
        "iforest": round(sample_auroc(iforest.anomaly_score(data.test_x), data.test_label), 4),
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--fits", nargs="+", required=True)
    p.add_argument("--datasets", required=True)
    p.add_argument("--n-test", type=int, default=512, help="test samples; 0: the preset's own test set")
    p.add_argument("--ts", default="50,100,200,400,700")
    p.add_argument("--draws", type=int, default=2)
    p.add_argument("--combined", action="store_true", help="also the two scores combined (max_z, mean_z)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ts = [int(t) for t in args.ts.split(",")]
    rows = []
    for model, record in find_saved_fits(args.models, args.fits, _split(args.datasets), None):
        rows.append(score_fit(model, record, args.n_test or None, ts, args.draws, args.combined))
        print(json.dumps(rows[-1]), flush=True)
    rows.sort(key=lambda r: (r["dataset"], r["seed"]))
    keys = list(rows[0]) if rows else []
    table = markdown_table(keys, [[r[k] for k in keys] for r in rows])
    print(table)
    write_table_and_rows(args.out, "denoise_score", table, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
