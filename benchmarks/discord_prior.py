"""What the model-free cleaning prior (``RobustDiffusion(clean_prior="discord")``) holds out before training.

For each harness cell (set, contamination, data seed) the training samples are normalised as the detector does and
flagged by :func:`rddpm_signals.cleaning.flag_discords` with the detector's ``clean_fdr`` (0.01) and ``map_smoothing``
(2), a dilation of 2 (or each ``--dilate``) and a reference of at most 20 000 points per channel, at the library's
subsequence length or at each ``--m``. No network is trained; the training labels are read only to measure:

- ``defect recall``: the share of the training defect points flagged;
- ``normal flagged``: the share of the points of training samples without a defect that are flagged (on clean
  data, the cost of the prior);
- per defect kind (where the set records kinds): the share of that kind's defect points flagged.

Usage::

    python benchmarks/discord_prior.py --datasets forging --preset robust --contamination 0.3,0 --seeds 14
    python benchmarks/discord_prior.py --datasets val_signals --preset validate --contamination 0.3 --m 16,32,64
    python benchmarks/discord_prior.py --datasets dev_signals --preset develop --m 16,32,64 --dilate 2,m
    python benchmarks/discord_prior.py --datasets val_signals --preset validate --data length=64 --m 16,32

Writes ``OUT/<sets>_<preset>.md`` (the table printed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import parse_data_options, resolved_on_data  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.cleaning import dilate_flags, flag_discords  # noqa: E402
from rddpm_signals.detector import (  # noqa: E402
    DISCORD_REFERENCE,
    RobustDiffusion,
    channel_center_scale,
    scale_channels,
)
from rddpm_signals.harness.cells import Cell, load_cell_data  # noqa: E402
from rddpm_signals.subsequences import default_m  # noqa: E402

__all__ = ["prior_rows", "main"]

_DEFAULTS = RobustDiffusion()
# The dilation when --dilate is not given: the grid recipe's 2, which §25's figures used (the 1D "auto" recipe
# dilates by 16: pass --dilate 16).
_DEFAULT_DILATE = 2


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def prior_rows(
    dataset: str,
    preset: str,
    contamination: float,
    seed: int,
    m: int | None,
    dilations: list[str | None],
    data_options: dict | None = None,
) -> list[dict]:
    """The prior's flags on one cell's training set, measured against its labels: one row of the table per entry
    of ``dilations`` (``None`` = :data:`_DEFAULT_DILATE`, ``"m"`` = the subsequence length, else points);
    the matrix profile is computed once. ``data_options`` override the preset's (e.g. ``{"length": 64}``)."""
    data = load_cell_data(resolved_on_data(Cell(dataset, "rddpm", contamination, seed, preset), data_options))
    X = np.asarray(data.train_x, dtype=np.float32)
    if X.ndim != 3:
        raise ValueError(f"{dataset} is not a 1D set (samples of shape {X.shape[1:]}): the prior is for 1D signals")
    Z = scale_channels(X, *channel_center_scale(X))  # the detector's normalisation
    m = default_m(X.shape[-1]) if m is None else m
    start = time.perf_counter()
    discords = flag_discords(Z, _DEFAULTS.clean_fdr, 0, _DEFAULTS.map_smoothing, DISCORD_REFERENCE, m=m)
    seconds = time.perf_counter() - start
    truth = np.asarray(data.train_mask).reshape(discords.shape).astype(bool)
    normal = ~truth.any(axis=1)
    kinds = np.asarray(data.meta.get("train_defect", [""] * len(discords)))
    rows = []
    for entry in dilations:
        dilate = _DEFAULT_DILATE if entry is None else m if entry == "m" else int(entry)
        flagged = dilate_flags(discords, dilate)
        per_kind = {k: float(flagged[kinds == k][truth[kinds == k]].mean()) for k in sorted(set(kinds) - {""})}
        rows.append(
            {
                "set": dataset,
                "contamination": contamination,
                "seed": seed,
                "length": int(X.shape[-1]),
                "m": m,
                "dilate": dilate,
                "defect_recall": float(flagged[truth].mean()) if truth.any() else None,
                "normal_flagged": float(flagged[normal].mean()) if normal.any() else None,
                "per_kind": per_kind,
                "seconds": seconds,
            }
        )
    return rows


def _table(rows: list[dict]) -> str:
    header = [
        "set",
        "contamination",
        "seed",
        "L",
        "m",
        "dilate",
        "defect recall",
        "normal flagged",
        "per kind",
        "seconds",
    ]

    def share(v: float | None) -> str:
        return "—" if v is None else f"{v:.3f}"

    body = [
        [
            r["set"],
            f"{r['contamination']:g}",
            str(r["seed"]),
            str(r["length"]),
            str(r["m"]),
            str(r["dilate"]),
            share(r["defect_recall"]),
            share(r["normal_flagged"]),
            ", ".join(f"{k} {v:.2f}" for k, v in r["per_kind"].items()) or "—",
            f"{r['seconds']:.1f}",
        ]
        for r in rows
    ]
    return markdown_table(header, body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", required=True, help="1D harness sets separated by ','")
    p.add_argument("--preset", default="quick")
    p.add_argument("--contamination", default="0.3,0")
    p.add_argument("--seeds", default="0")
    p.add_argument("--m", default="", help="subsequence lengths separated by ',' (default: the library's)")
    p.add_argument("--dilate", default="", help="dilations separated by ','; 'm' = the subsequence length (default: 2)")
    p.add_argument(
        "--data", default="", help="data options overriding the preset's, 'key=value' separated by ',' (length=64)"
    )
    p.add_argument("--out", default="results/discord_prior")
    args = p.parse_args(argv)
    options = parse_data_options(args.data)
    datasets = [d for d in args.datasets.split(",") if d]
    lengths: list[int | None] = _ints(args.m) or [None]
    dilations: list[str | None] = [d.strip() for d in args.dilate.split(",") if d.strip()] or [None]
    rows = [
        row
        for dataset in datasets
        for c in _floats(args.contamination)
        for seed in _ints(args.seeds)
        for m in lengths
        for row in prior_rows(dataset, args.preset, c, seed, m, dilations, options)
    ]
    text = _table(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{'_'.join(datasets)}_{args.preset}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
