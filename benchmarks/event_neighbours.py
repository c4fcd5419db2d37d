"""Are a long record's training defects rare on the record, or do they recur ("twin" discords)? Label-based, no fit.

    python benchmarks/event_neighbours.py --datasets val_long_record --preset validate --contamination 0.2,0.3 \\
        --seeds 56,57,58 --out results/event_neighbours

A discord prior finds a subsequence unusual when its nearest neighbour is far. A defect that recurs — the same
shape placed twice — is its own neighbour and hides. For each harness cell (set, contamination, data seed) of a
long record, the training record is stitched back from its windows and, per training event (``meta
["train_events"]``), the length-``m`` subsequence at its centre gets

- ``halves``: the raw distance to its nearest neighbour on the record span of the other half of the windows (the
  split the default prior profiles: :func:`rddpm_signals.cleaning.discord_maps`, here against the whole span);
- ``k=1..K``: the raw distance to its ``k``-th nearest distinct neighbour on the record's self-join
  (:func:`rddpm_signals.subsequences.nearest_distances`, as ``clean_prior_reference="record"`` profiles it).

Each distance is compared with the 99 % quantile of the same distance for up to 400 normal subsequences (seeded; no
defect within ``m`` points); an event below it is *twinned*. A row per cell gives the share of events twinned (and of
their points) for each reference, and the events lying where both halves' windows hold the record (``at split``: the
halves' reference then holds the event itself). ``--events`` adds a row per event; with ``--rounds DIR`` (a
``benchmarks/round_maps.py`` output of the same cells, ``--method``'s fit) it also gives the share of the event's
window points that fit's last cleaning round held out. Writes ``OUT/<sets>_<preset>.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import add_grid_arguments, parse_data_options, resolved_on_data  # noqa: E402
from round_maps import saved_rounds  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.cleaning import record_point_index  # noqa: E402
from rddpm_signals.harness.cells import Cell, load_cell_data  # noqa: E402
from rddpm_signals.subsequences import nearest_distances  # noqa: E402

__all__ = ["cell_neighbours", "main"]

NORMAL_DRAWS, QUANTILE = 400, 0.99


def _record(data) -> np.ndarray:
    """The training record ``(T,)`` float64, stitched back from its windows (one record, one channel)."""
    layout = data.meta.get("train_layout") if isinstance(data.meta, dict) else None
    if layout is None or layout.n_items != 1 or "train_events" not in data.meta:
        raise ValueError(f"{data.name} is not one record cut into windows: use long_record or val_long_record")
    signal = data.meta["adapter"].to_signal(np.asarray(data.train_x), layout)[0]
    return np.asarray(signal.values, dtype=np.float64).reshape(-1)


def cell_neighbours(data, m: int = 64, k_max: int = 4, seed: int = 0) -> dict:
    """Per training event of the long record ``data``: its centre subsequence's distances (``halves`` and the
    ``k``-th distinct on the self-join, ``k = 1..k_max``) over the normal subsequences' 99 % quantile, its kind,
    start, length and whether it lies at the halves' split."""
    record = _record(data)
    starts = np.asarray(data.meta["train_layout"].positions)[:, 1]
    window = data.train_x.shape[-1]
    half = len(starts) // 2
    split_lo, split_hi = int(starts[half]), int(starts[half - 1]) + window  # both halves' windows hold these points
    profiles = [nearest_distances(record, None, m, False, k=k) for k in range(1, k_max + 1)]

    def halves(s: int) -> float:
        other = record[split_lo:] if s < split_lo else record[:split_hi]
        return float(nearest_distances(record[s : s + m], other, m, False)[0])

    defect = np.asarray(data.meta["train_point_mask"]).reshape(-1)
    near = np.convolve(defect.astype(float), np.ones(3 * m), mode="same") > 0  # a defect within m of the subsequence
    candidates = np.flatnonzero(~near[m // 2 : len(record) - m + m // 2 + 1])
    drawn = np.random.default_rng(seed).choice(candidates, size=min(NORMAL_DRAWS, len(candidates)), replace=False)
    cut_halves = np.quantile([halves(int(s)) for s in drawn], QUANTILE)
    cut_k = [np.quantile(p[drawn], QUANTILE) for p in profiles]
    events = []
    for kind, a, b in data.meta["train_events"]:
        s = int(np.clip((a + b) // 2 - m // 2, 0, len(record) - m))
        events.append(
            {
                "kind": kind,
                "start": int(a),
                "length": int(b - a),
                "halves": halves(s) / cut_halves,
                **{f"k={k + 1}": float(p[s] / c) for k, (p, c) in enumerate(zip(profiles, cut_k, strict=True))},
                "at_split": bool(b > split_lo and a < split_hi),
            }
        )
    return {"events": events, "cut_halves": float(cut_halves), "cut_k": [float(c) for c in cut_k]}


def held_by_fit(data, resolved: dict, rounds: str | Path) -> list[float]:
    """Per training event of ``data``, the share of its window points that the last cleaning round of the cell's
    ``round_maps.py`` run (``rounds/<key>.npz``) held out."""
    with np.load(saved_rounds(rounds, resolved)) as f:
        mask = f["masks"][-1]
    index, _ = record_point_index(data.meta["train_layout"].positions, mask.shape[1])
    return [float(mask[(index >= a) & (index < b)].mean()) for _, a, b in data.meta["train_events"]]


def _cell_row(name: str, result: dict) -> list[str]:
    events = result["events"]
    lengths = np.array([e["length"] for e in events], dtype=float)
    refs = ["halves", *(k for k in events[0] if k.startswith("k="))] if events else []
    cells = []
    for ref in refs:
        twinned = np.array([e[ref] < 1 for e in events])
        cells.append(f"{twinned.mean():.2f} ({lengths[twinned].sum() / lengths.sum():.2f})")
    return [name, str(len(events)), *cells, str(sum(e["at_split"] for e in events))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(p, "comma-separated long records: long_record, val_long_record", contamination="0.3")
    p.add_argument("--m", type=int, default=64, help="subsequence length (the default prior's: 64)")
    p.add_argument("--k-max", type=int, default=4, help="the largest k of the k-th distinct neighbour")
    p.add_argument("--events", action="store_true", help="also a row per training event")
    p.add_argument("--method", default="rddpm", help="the fit whose --rounds to read (a harness spelling)")
    p.add_argument("--rounds", default=None, help="round_maps.py's --out for these cells: add the fit's held share")
    p.add_argument("--out", default="results/event_neighbours")
    args = p.parse_args(argv)
    sets = [s.strip() for s in args.datasets.split(",") if s.strip()]
    if args.k_max < 1 or args.m < 2:
        p.error("need --k-max >= 1 and --m >= 2")
    rows, event_rows = [], []
    try:
        options = parse_data_options(args.data)
        for dataset in sets:
            for c in args.contamination:
                if c == 0:
                    continue  # no events
                for seed in args.seeds:
                    resolved = resolved_on_data(Cell(dataset, args.method, c, seed, args.preset), options)
                    data = load_cell_data(resolved)
                    result = cell_neighbours(data, args.m, args.k_max)
                    held = held_by_fit(data, resolved, args.rounds) if args.rounds else [None] * len(result["events"])
                    name = f"{dataset} {c:g} s{seed}"
                    rows.append(_cell_row(name, result))
                    print(" | ".join(rows[-1]), flush=True)
                    event_rows += [
                        [name, e["kind"], str(e["start"]), str(e["length"])]
                        + [f"{e[key]:.2f}" for key in e if key == "halves" or key.startswith("k=")]
                        + [str(e["at_split"])]
                        + ([f"{h:.2f}"] if args.rounds else [])
                        for e, h in zip(result["events"], held, strict=True)
                    ]
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    refs = ["halves", *(f"k={k}" for k in range(1, args.k_max + 1))]
    lines = [
        f"Command: `python benchmarks/event_neighbours.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Share of training events twinned (of their points), m = {args.m}: distance below the normal subsequences' "
        f"{QUANTILE:.0%} quantile",
        "",
        markdown_table(["cell", "events", *(f"twinned, {r}" for r in refs), "at split"], rows),
    ]
    if args.events:
        header = ["cell", "kind", "start", "length", *(f"{r} / q99" for r in refs), "at split"]
        header += ["held out by the fit"] if args.rounds else []
        lines += ["", markdown_table(header, event_rows)]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{'_'.join(sets)}_{args.preset}.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
