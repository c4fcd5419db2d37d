"""How far does one harness cell move when only the network's random seed changes? The noise floor under a
cell-by-cell comparison of two training rules.

    python benchmarks/model_seed.py --dataset val_long_record --preset validate --contamination 0.3 --seed 13 \\
        --model-seeds 13,101,102,103 --fits 'rddpm;rddpm:clean_rule=test' --out results/model_seed

The data are those of the harness cell (``--seed``: dataset draw and contamination); model seed ``k`` replaces the
detector's ``random_state`` (network initialisation, training batches and noise, scoring draws), so ``k = --seed``
is the cell itself. Prints each fit's pixel AUROC / AUPRC, then per method their mean, standard deviation and range
over the model seeds, and, given two methods, the paired difference (second − first) on each model seed with its
mean and SD: a difference between two rules smaller than that SD is within what reseeding one rule moves. Each
fit is ``generalise.run_fit``'s, cached as ``--out/<cell key>.json`` (the key holds the model seed; a rerun refits
nothing it has); the table goes to ``--out/<dataset>_<contamination>_s<seed>.md`` (atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise import run_fit  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.harness.methods import parse_method  # noqa: E402

METRICS = ("pixel_auroc", "pixel_auprc")


def fit_record(dataset: str, method: str, contamination: float, seed: int, model_seed: int, preset: str, out: Path):
    """The test metrics of ``method`` on the cell's data with ``random_state = model_seed``: the fit of
    ``generalise.run_fit`` (cached in ``out`` as ``<cell key>.json``; model seed = data seed is the cell itself)."""
    record = run_fit(dataset, method, contamination, seed, preset, ["base"], out, model_seed=model_seed)
    return {**record["variants"]["base"], "method": method, "model_seed": model_seed, "fit_s": record.get("fit_s")}


def spread(values: list[float]) -> str:
    """``mean ± SD [min, max]`` of ``values`` (SD with one degree of freedom)."""
    v = np.asarray(values, dtype=np.float64)
    sd = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
    return f"{v.mean():.4f} ± {sd:.4f} [{v.min():.4f}, {v.max():.4f}]"


def summary(records: dict[str, list[dict]], model_seeds: list[int]) -> str:
    """The markdown tables: every fit, the spread per method, and the paired difference of two methods."""
    rows = [
        [method, str(r["model_seed"]), *(f"{r[m]:.4f}" for m in METRICS)] for method, rs in records.items() for r in rs
    ]
    text = markdown_table(("fit", "model seed", "pixel AUROC", "pixel AUPRC"), rows)
    spreads = [[method, *(spread([r[m] for r in rs]) for m in METRICS)] for method, rs in records.items()]
    text += "\n\n" + markdown_table(("fit", "pixel AUROC mean ± SD [range]", "pixel AUPRC mean ± SD [range]"), spreads)
    if len(records) == 2:
        (first, a), (second, b) = records.items()
        diffs = {m: [y[m] - x[m] for x, y in zip(a, b, strict=True)] for m in METRICS}
        rows = [[str(k), *(f"{diffs[m][i]:+.4f}" for m in METRICS)] for i, k in enumerate(model_seeds)]
        rows.append(["mean ± SD [range]", *(spread(diffs[m]) for m in METRICS)])
        text += f"\n\n{second} − {first}, paired by model seed:\n\n"
        text += markdown_table(("model seed", "Δ pixel AUROC", "Δ pixel AUPRC"), rows)
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--fits", required=True, help="one or two harness method spellings separated by ';'")
    p.add_argument("--contamination", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0, help="the cell's data seed")
    p.add_argument("--model-seeds", default="0,1,2", help="the detector random_state values, comma-separated")
    p.add_argument("--preset", default="robust")
    p.add_argument("--out", default="results/model_seed")
    args = p.parse_args(argv)
    fits = [f.strip() for f in args.fits.split(";") if f.strip()]
    if not 1 <= len(fits) <= 2:
        p.error(f"--fits takes one or two methods, got {len(fits)}")
    for f in fits:
        if not parse_method(f).is_diffusion:
            p.error(f"{f!r} is not a diffusion method: model seeds move only a network's training")
    model_seeds = [int(k) for k in args.model_seeds.split(",")]
    torch.set_num_threads(1)  # as the harness's workers: identical floating-point results
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = {
        f: [fit_record(args.dataset, f, args.contamination, args.seed, k, args.preset, out) for k in model_seeds]
        for f in fits
    }
    text = summary(records, model_seeds)
    print(text, end="")
    atomic_write_text(out / f"{args.dataset}_{args.contamination:g}_s{args.seed}.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
