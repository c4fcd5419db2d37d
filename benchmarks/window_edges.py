"""Where in their windows the defect points that a long-record fit keeps lie, and what flagging a point in every
window that covers it would hold out instead (a diagnostic, offline: no fit).

    python benchmarks/window_edges.py --dataset val_long_record --preset validate --seed 50 --contamination 0.3 \\
        --rounds results/s36/d13

Reads the last cleaning round of the cell's ``benchmarks/round_maps.py`` run (``--rounds/<cell key>.npz``: its
training maps and mask; same ``--method``) and the cell's data, and prints:

- the windows the round drops whole, and the kept defect points: how many, at which position of their window
  (quantiles), and what share of the windows covering each one's record point the round drops;
- the round's flags recomputed from its maps (the test rule at the fit's ``clean_fdr`` and margin, with the
  model-free prior), checked against the fit's own mask, and the same flags ORed over every window covering a record
  point (:func:`rddpm_signals.cleaning.spread_across_windows`, ``clean_across_windows=True``): windows dropped,
  defect points held out, the held-out share of the normal windows' points, and the record points that no kept
  window shows (defect / normal).

The printed lines also go to ``--rounds/<cell key>.edges.txt`` (atomically).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import parse_data_options, resolved_on_data  # noqa: E402
from round_maps import add_cell_arguments, saved_rounds  # noqa: E402

from rddpm_signals._io import atomic_write_text  # noqa: E402
from rddpm_signals.cleaning import (  # noqa: E402
    flag_points_test,
    record_point_index,
    resolve_auto,
    spread_across_windows,
)
from rddpm_signals.harness.cells import Cell, build_detector, load_cell_data  # noqa: E402


def unseen(drop: np.ndarray, positions: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Shares of the defect and of the normal record points that no kept window covers; ``drop`` ``(N,)`` bool,
    ``truth`` ``(N, L)`` the windows' defect masks."""
    index, size = record_point_index(positions, truth.shape[1])
    seen, defect = np.zeros(size, dtype=bool), np.zeros(size, dtype=bool)
    defect[index[truth]] = True
    seen[index[~drop]] = True
    covered = np.zeros(size, dtype=bool)
    covered[index] = True
    return float((~seen[defect]).mean()), float((~seen[~defect & covered]).mean())


def held(drop: np.ndarray, truth: np.ndarray) -> str:
    """What dropping the windows ``drop`` ``(N,)`` holds out."""
    mask = np.zeros_like(truth)
    mask[drop] = True
    normal = ~truth.any(axis=1)
    return (
        f"windows dropped {int(drop.sum())} of {len(drop)}, defect points held out {mask[truth].mean():.3f}, "
        f"normal windows' points held out {mask[normal].mean():.4f}"
    )


def report(args: argparse.Namespace) -> list[str]:
    cell = Cell(args.dataset, args.method, args.contamination, args.seed, args.preset)
    resolved = resolved_on_data(cell, parse_data_options(args.data))
    saved = saved_rounds(args.rounds, resolved)
    data = load_cell_data(resolved)
    layout = data.meta.get("train_layout") if isinstance(data.meta, dict) else None
    if layout is None or layout.n_items != 1:
        raise ValueError(f"{args.dataset} is not one record cut into windows: use long_record or val_long_record")
    with np.load(saved) as f:
        maps, mask, sigma = f["maps"][-1], f["masks"][-1], float(f["sigma"])
    n, length = mask.shape
    truth = np.asarray(data.train_mask).reshape(n, length)
    positions = layout.positions
    drop = mask.all(axis=1)
    lines = [f"{saved.name}: {n} windows of {length} points, hop {int(np.diff(positions[:, 1]).min())}"]
    lines.append("as trained: " + held(drop, truth))
    windows, points = np.nonzero(truth & ~mask)
    index, size = record_point_index(positions, length)
    record_points = index[windows, points]
    cover = np.bincount(index.ravel(), minlength=size)
    cover_dropped = np.bincount(index[drop].ravel(), minlength=size)
    share = cover_dropped[record_points] / cover[record_points]
    lines.append(
        f"kept defect points: {len(points)} (window, point) pairs, {len(np.unique(record_points))} record points; "
        f"position in their window, quantiles 10/25/50/75/90 %: {np.quantile(points, [0.1, 0.25, 0.5, 0.75, 0.9])}; "
        f"share of the windows covering each that are dropped, quantiles 25/50/75 %: "
        f"{np.quantile(share, [0.25, 0.5, 0.75]).round(2)}"
    )
    detector = build_detector(resolved, 1)
    X = np.asarray(data.train_x, dtype=np.float32)
    prior = detector.prior_flags(X, overlapping=True)
    dilate = resolve_auto({"dilate": detector.clean_dilate}, 1, length)["dilate"]
    flags = flag_points_test(maps, detector.clean_fdr, dilate, sigma)
    flags = flags if prior is None else flags | prior
    spread = spread_across_windows(flags, positions).any(axis=1)
    spreads = bool(resolved["params"].get("clean_across_windows"))  # the cell's fit spread its flags itself
    same = np.array_equal(spread if spreads else flags.any(axis=1), drop)
    lines.append(
        f"recomputed flags (test rule | prior{', spread across windows' if spreads else ''}): "
        f"the windows holding one equal the fit's drops: {same}"
    )
    lines.append("flags spread across windows: " + held(spread, truth))
    for name, dropped in (("as trained", drop), ("spread", spread)):
        defect, normal = unseen(dropped, positions, truth)
        lines.append(f"record points no kept window shows, {name}: defect {defect:.3f}, normal {normal:.3f}")
    atomic_write_text(saved.with_suffix(".edges.txt"), "\n".join(lines) + "\n")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_cell_arguments(p, preset="validate")  # the cell round_maps.py followed
    p.add_argument("--rounds", required=True, help="round_maps.py's --out")
    args = p.parse_args(argv)
    try:
        lines = report(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
