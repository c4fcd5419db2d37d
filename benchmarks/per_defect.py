"""Which defect kinds does contamination teach the model? Pixel AUROC per test defect kind, per contamination level.

    python benchmarks/per_defect.py --dataset machine_sound --method rddpm --contamination 0,0.2 --seed 0

Fits the harness cell (same preset sizes and method spelling as ``benchmarks/run.py``) at each contamination level
and scores the test set once; for each defect kind the AUROC pools the pixels of the normal test samples and of the
test samples carrying that kind. A kind whose AUROC falls with contamination while the others hold is being learnt
as normal. Prints a markdown table and writes it to ``--out/<dataset>_<method>.md``. Datasets must record
``meta["test_defect"]`` (rolling, machine_sound, the textures) or be a long record (``meta["test_events"]``: then
the window maps are stitched back onto the test record and each kind's AUROC pools its events' points with the
record's normal points, as the harness scores the record).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.datasets.long_record import point_maps  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, fit_detector, load_cell_data  # noqa: E402
from rddpm_signals.harness.methods import parse_method  # noqa: E402
from rddpm_signals.metrics import pixel_auroc  # noqa: E402


def per_kind_auroc(maps: np.ndarray, mask: np.ndarray, kinds: tuple[str, ...]) -> dict[str, float]:
    """Pixel AUROC of each defect kind against the normal samples. ``maps``/``mask`` ``(N, ...)``; ``kinds`` has
    one entry per sample, ``""`` for a normal one."""
    kinds_arr = np.asarray(kinds)
    normal = kinds_arr == ""
    out = {"all": pixel_auroc(maps, mask)}
    for kind in sorted(set(kinds) - {""}):
        keep = normal | (kinds_arr == kind)
        out[kind] = pixel_auroc(maps[keep], mask[keep])
    return out


def per_kind_auroc_on_record(maps: np.ndarray, mask: np.ndarray, events: list[tuple[str, int, int]]) -> dict:
    """Per-point AUROC of each event kind on one stitched record: ``maps``/``mask`` ``(1, T)``; ``events``
    ``(kind, first point, last point + 1)``. A kind's AUROC pools the record's normal points with its events'."""
    if maps.shape[0] != 1:
        raise ValueError(f"expected one test record, got {maps.shape[0]}")
    kind_of = np.full(maps.shape[1], "", dtype=object)
    for kind, start, stop in events:
        kind_of[start:stop] = kind
    normal = ~mask[0]
    out = {"all": pixel_auroc(maps, mask)}
    for kind in sorted({e[0] for e in events}):
        keep = normal | (mask[0] & (kind_of == kind))
        out[kind] = pixel_auroc(maps[:, keep], mask[:, keep])
    return out


def kind_aurocs(detector, data) -> dict[str, float]:
    """Per-kind pixel AUROC of a fitted ``detector`` on ``data``'s test set (samples or a stitched record)."""
    maps = detector.anomaly_map(data.test_x)
    if "test_events" in data.meta:
        return per_kind_auroc_on_record(*point_maps(data, maps), data.meta["test_events"])
    return per_kind_auroc(maps, data.test_mask, data.meta["test_defect"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", default="rddpm", help="one harness method spelling, e.g. 'rddpm:loss=lts_element'")
    p.add_argument("--contamination", default="0,0.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="robust")
    p.add_argument("--out", default="results/per_defect")
    args = p.parse_args(argv)
    parse_method(args.method)
    torch.set_num_threads(1)  # as the harness's workers and generalise.py: the same fit, to the bit

    rows = []
    for c in (float(v) for v in args.contamination.split(",")):
        cell = Cell(args.dataset, args.method, c, args.seed, args.preset)
        resolved = cell.resolved()
        data = load_cell_data(resolved)
        if "test_defect" not in data.meta and "test_events" not in data.meta:
            p.error(
                f"dataset {args.dataset!r} records neither meta['test_defect'] nor meta['test_events']: use rolling, "
                "machine_sound, a texture or a long record"
            )
        start = time.perf_counter()
        detector = build_detector(resolved, data.dims)
        fit_detector(detector, data)
        rows.append((c, kind_aurocs(detector, data), time.perf_counter() - start))
        print(f"contamination {c:.0%}: {rows[-1][1]} ({rows[-1][2]:.0f} s)", flush=True)

    kinds = list(rows[0][1])
    lines = [
        f"Command: `python benchmarks/per_defect.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Pixel AUROC per test defect kind (normal test samples + that kind), {args.dataset}, {args.method}, "
        f"seed {args.seed}",
        "",
        markdown_table(["contamination", *kinds], [[f"{c:.0%}", *(f"{r[k]:.3f}" for k in kinds)] for c, r, _ in rows]),
    ]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{args.dataset}_{args.method}")
    atomic_write_text(out / f"{name}.md", table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
