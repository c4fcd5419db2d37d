"""The flagging k rule (docs/RESULTS.md §9) from the rows ``benchmarks/flagging.py`` wrote: segment F1 per MAD
multiple K for each fit, and each K's mean over the datasets of each dataset's seed mean.

    python benchmarks/flagging_k_rule.py --csv results/flagging_s14/flagging.csv results/flagging_s15a/flagging.csv \\
        --fits 'forging:0;forging:1;dev_signals:0;val_signals:0;rolling:0' [--out results/flagging_s15/k_rule.md]

Only the tied rows (``tied k=K``: records and segments at median + K·MAD of the held-out calibration scores) with
segments in flagged records count, as in §9. Where several CSVs hold the same (dataset, seed, K), the later file
wins. A K that some fit lacks gets its mean marked "incomplete"; the rule's pick is the best complete K.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402


def read_f1(paths: list[Path]) -> dict[tuple[str, int, float], float]:
    """(dataset, seed, K) → segment F1 of the tied rows with segments in flagged records."""
    out = {}
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row["segments_in"] != "flagged" or not row["threshold"].startswith("tied k="):
                    continue
                k = float(row["threshold"].split("=", 1)[1].split()[0])
                out[(row["dataset"], int(row["seed"]), k)] = float(row["seg_f1"])
    return out


def k_table(f1: dict[tuple[str, int, float], float], fits: list[tuple[str, int]]) -> tuple[str, float | None]:
    """The markdown table and the rule's K (best mean among the Ks every fit has; ``None`` when none has)."""
    ks = sorted({k for (_, _, k) in f1})
    header = ["K", *(f"{d} s{s}" for d, s in fits), "mean over datasets of seed means"]
    rows = []
    best, best_mean = None, -np.inf
    for k in ks:
        by_dataset: dict[str, list[float]] = {}
        for d, s in fits:
            if (d, s, k) in f1:
                by_dataset.setdefault(d, []).append(f1[(d, s, k)])
        complete = all((d, s, k) in f1 for d, s in fits)
        mean = float(np.mean([np.mean(v) for v in by_dataset.values()])) if by_dataset else float("nan")
        cells = [f"{f1[(d, s, k)]:.3f}" if (d, s, k) in f1 else "–" for d, s in fits]
        rows.append([f"{k:g}", *cells, f"{mean:.3f}{'' if complete else ' (incomplete)'}"])
        if complete and mean > best_mean:
            best, best_mean = k, mean
    return markdown_table(header, rows), best


def _fits(text: str) -> list[tuple[str, int]]:
    out = []
    for item in (t.strip() for t in text.split(";")):
        name, sep, seed = item.partition(":")
        if not sep or not seed.strip().isdigit():
            raise SystemExit(f"error: bad fit {item!r}: write dataset:seed, e.g. forging:0")
        out.append((name.strip(), int(seed)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--csv", nargs="+", required=True, help="flagging.csv files, later ones win")
    p.add_argument("--fits", required=True, help="dataset:seed pairs separated by ';'")
    p.add_argument("--out", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    missing = [c for c in args.csv if not Path(c).is_file()]
    if missing:
        print(f"error: no flagging CSV {missing[0]!r}: run benchmarks/flagging.py first", file=sys.stderr)
        return 2
    table, best = k_table(read_f1([Path(c) for c in args.csv]), _fits(args.fits))
    text = table + "\n\n" + (f"rule's K: {best:g}" if best is not None else "rule's K: none (no K on every fit)")
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
