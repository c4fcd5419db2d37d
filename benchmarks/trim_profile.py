"""Which timesteps does a trimming loss drop? The share of each noise-level band among the samples a fit's loss trims.

    OMP_NUM_THREADS=1 python benchmarks/trim_profile.py --dataset dev_signals --preset develop --contamination 0 \\
        --methods 'rddpm:self_clean=false;rddpm:loss=lts_bucket,self_clean=false' --steps 300 --out results/trim_profile

Each method is the harness cell of that spelling (same data, sizes and seed as ``benchmarks/generalise.py``), fitted
for ``--steps`` training steps (the cell's own count if omitted). Every training batch's kept mask and timesteps are
recorded through the loss, and the table gives, per band of t (fifths of the training range), the share of the
batch's samples drawn there and the share of the *trimmed* samples that came from it. Uniform t puts 20 % in each
band; a trimming rule that is blind to t puts 20 % of its drops in each band too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, fit_detector, load_cell_data  # noqa: E402
from rddpm_signals.losses.objectives import DiffusionLoss  # noqa: E402

BANDS = 5


def trim_profile(dataset: str, method: str, contamination: float, seed: int, preset: str, steps: int | None):
    """``(drawn share, trimmed share)`` per t band, and the overall trimmed share, of one fit."""
    resolved = Cell(dataset, method, contamination, seed, preset).resolved()
    if steps is not None:
        resolved["params"]["train_steps"] = int(steps)
    data = load_cell_data(resolved)
    detector = build_detector(resolved, data.dims)
    t_max = detector.timesteps if detector.train_t_max is None else int(detector.train_t_max)
    drawn, trimmed = np.zeros(BANDS), np.zeros(BANDS)
    original = DiffusionLoss.__call__

    def recording(self, pred, target, t, weight=None):
        out = original(self, pred, target, t, weight)
        if torch.is_grad_enabled():  # a training step, not a scoring pass
            band = np.minimum((t.detach().cpu().numpy() * BANDS) // t_max, BANDS - 1).astype(int)
            dropped = ~out.kept.detach().cpu().numpy()
            np.add.at(drawn, band, 1)
            np.add.at(trimmed, band[dropped], 1)
        return out

    DiffusionLoss.__call__ = recording
    try:
        fit_detector(detector, data)
    finally:
        DiffusionLoss.__call__ = original
    total = trimmed.sum()
    return drawn / drawn.sum(), (trimmed / total if total else trimmed), total / drawn.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--methods", required=True, help="harness spellings separated by ';'")
    parser.add_argument("--contamination", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="robust")
    parser.add_argument("--steps", type=int, help="training steps (default: the cell's)")
    parser.add_argument("--out", help="folder for trim_profile.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    bands = [f"t in [{b / BANDS:.1f}, {(b + 1) / BANDS:.1f})·T" for b in range(BANDS)]
    rows = []
    for method in [m.strip() for m in args.methods.split(";") if m.strip()]:
        drawn, trimmed, share = trim_profile(
            args.dataset, method, args.contamination, args.seed, args.preset, args.steps
        )
        rows.append([method, f"{share:.3f}", *(f"{d:.2f} / **{k:.2f}**" for d, k in zip(drawn, trimmed, strict=True))])
    lines = [
        f"{args.dataset}, contamination {args.contamination:g}, seed {args.seed}, preset {args.preset}"
        + (f", {args.steps} steps" if args.steps else ""),
        "",
        markdown_table(["method", "trimmed share", *bands], rows),
        "",
        "Each band: share of drawn samples / **share of trimmed samples**.",
    ]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.out) / "trim_profile.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
