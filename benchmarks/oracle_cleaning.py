"""The ceiling of self-cleaning: fit with exactly the training set's true defect points held out of the loss from
the first step and nothing else flagged — what a perfect cleaning rule would reach on that data draw.

    python benchmarks/oracle_cleaning.py --datasets forging --preset robust --contamination 0.3 --seeds 14,15,16 \\
        --fits-dir results/s24/fits --compare 'rddpm;rddpm:clean_rule=test' --out results/s25/oracle

Each oracle fit is the harness cell of ``--method`` (default ``rddpm``: its network, schedule, steps and seeds, one
torch thread) with the cleaning rule replaced: the true training mask, dilated by ``--dilate`` points, is held out
from step 0 and no point is flagged by the maps. With ``--whole-samples`` every training sample holding a true
defect point is held out whole instead (as dropping the contaminated windows of a long record would). It reads the
training labels, so it is a reference, never a method.
With ``--mask-from C`` the mask is that of the same set and seed at contamination ``C`` while the fit is of the
``--contamination`` cell (normally 0, the clean draw): a data-quantity control — the clean record with exactly the
samples (``--whole-samples``) or points the contaminated draw's perfect cleaning loses, held out. It needs both draws
to have the same number and shape of training samples (the long records' windows do).
Cached as ``--out/<cell key>-oracle-d<dilate>[-whole][-from<C>].json`` (a rerun refits nothing).
The comparison is also written to
``--out/<sets>_<preset>[_<method>]_c<contaminations>_d<dilate>[_whole][_from<C>].md``.

With ``--fits-dir`` (the cache of ``benchmarks/generalise.py``), per (set, contamination) it prints the mean over the
seeds of the oracle and of each ``--compare`` method fitted on the same cells (base scoring), with each method's
mean gap to the oracle, and the plain-DDPM fit of the clean data of the same seeds (``ddpm`` at 0 %) when cached:
the gap between a method and the oracle is what its cleaning leaves, the gap between the oracle and the clean fit is
what the contaminated draw costs even with perfect cleaning.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise import exclusion, score_variant  # noqa: E402
from generalise_table import scored_fits  # noqa: E402

from rddpm_signals import cleaning  # noqa: E402
from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, fit_detector, load_cell_data  # noqa: E402

METRICS = ("pixel_auroc", "pixel_auprc")


@contextlib.contextmanager
def held_out(mask: np.ndarray) -> Iterator[None]:
    """While active, every :class:`~rddpm_signals.cleaning.SelfCleaning` holds out ``mask`` ``(N, …grid)`` from
    step 0 (as a refit's prior) and its rounds flag nothing."""
    init, flag = cleaning.SelfCleaning.__init__, cleaning.SelfCleaning._flag

    def oracle_init(self, score, steps, **settings):
        init(self, score, steps, **{**settings, "prior": mask, "rounds": 1, "samples": False})

    def no_flags(self, maps):
        return np.zeros(maps.shape, dtype=bool), 0

    cleaning.SelfCleaning.__init__, cleaning.SelfCleaning._flag = oracle_init, no_flags
    try:
        yield
    finally:
        cleaning.SelfCleaning.__init__, cleaning.SelfCleaning._flag = init, flag


def oracle_mask(truth: np.ndarray, dilate: int, whole_samples: bool) -> np.ndarray:
    """Bool ``(N, …grid)``: the true defect points ``truth`` dilated by ``dilate``, or with ``whole_samples`` every
    point of each sample that holds one."""
    truth = np.asarray(truth, dtype=bool)
    if whole_samples:
        mask = np.zeros_like(truth)
        mask[cleaning.samples_holding(truth)] = True
        return mask
    return cleaning.dilate_flags(truth, dilate)


def _mask_suffix(whole_samples: bool, mask_from: float | None, sep: str) -> str:
    """What the cache and summary names add for the mask's options: ``whole`` and ``from<C>``, each after ``sep``."""
    return (f"{sep}whole" if whole_samples else "") + ("" if mask_from is None else f"{sep}from{mask_from:g}")


def oracle_record(
    dataset: str,
    method: str,
    contamination: float,
    seed: int,
    preset: str,
    dilate: int,
    out: Path,
    whole_samples: bool = False,
    mask_from: float | None = None,
) -> dict:
    """The test metrics of the oracle fit of one cell (cached in ``out``); ``mask_from``: take the true mask from
    the same set and seed at that contamination instead."""
    cell = Cell(dataset, method, contamination, seed, preset)
    path = out / f"{cell.key()}-oracle-d{dilate}{_mask_suffix(whole_samples, mask_from, '-')}.json"
    if path.exists():
        return json.loads(path.read_text())
    resolved = cell.resolved()
    data = load_cell_data(resolved)
    det = build_detector(resolved, data.dims)
    if not getattr(det, "self_clean", False):
        raise ValueError(f"{method!r} does not self-clean: the oracle replaces a cleaning rule, pick one that has one")
    truth = data.train_mask
    if mask_from is not None:
        truth = load_cell_data(Cell(dataset, method, mask_from, seed, preset).resolved()).train_mask
        if np.shape(truth) != np.shape(data.train_mask):
            raise ValueError(
                f"{dataset} has {np.shape(truth)} training points at contamination {mask_from:g} but "
                f"{np.shape(data.train_mask)} at {contamination:g}: --mask-from needs draws of the same shape"
            )
    mask = oracle_mask(truth, dilate, whole_samples)
    start = time.perf_counter()
    with held_out(mask):
        fit_detector(det, data)
    record = {"dataset": dataset, "method": method, "contamination": contamination, "seed": seed, "dilate": dilate}
    record["whole_samples"] = whole_samples
    record["mask_from"] = mask_from
    record.update(fit_s=round(time.perf_counter() - start, 1), **exclusion(det, data))
    record.update(score_variant(det, data, "base", None, None))
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))
    return record


def comparison(oracle: dict[tuple, list[dict]], fits_dir: Path, compare: list[str], seeds: list[int]) -> str:
    """Per (set, contamination): seed means of the oracle, each ``compare`` method (and its gap to the oracle, over
    the seeds both have) and the clean-data plain-DDPM fit."""
    header = ["set", "contamination", "seeds", "oracle AUROC / AUPRC"]
    header += [f"{m}: AUROC / AUPRC (Δ to oracle)" for m in compare] + ["ddpm at 0 %: AUROC / AUPRC"]
    rows, cached = [], scored_fits([fits_dir], "base")
    for (dataset, c), records in sorted(oracle.items()):
        ora = {r["seed"]: r for r in records}
        row = [dataset, f"{c:g}", ",".join(str(s) for s in sorted(ora)), _means(list(ora.values()))]
        for method in compare:
            fits = {s: cached[dataset, c, method, s] for s in ora if (dataset, c, method, s) in cached}
            if not fits:
                row.append("—")
                continue
            gaps = [np.mean([fits[s][m] - ora[s][m] for s in fits]) for m in METRICS]
            note = "" if len(fits) == len(ora) else f", {len(fits)} seeds"
            row.append(f"{_means(list(fits.values()))} ({gaps[0]:+.4f} / {gaps[1]:+.4f}{note})")
        clean = [cached[dataset, 0.0, "ddpm", s] for s in seeds if (dataset, 0.0, "ddpm", s) in cached]
        row.append(_means(clean) + ("" if len(clean) == len(seeds) else f" ({len(clean)} seeds)") if clean else "—")
        rows.append(row)
    return markdown_table(header, rows)


def _means(records: list[dict]) -> str:
    return " / ".join(f"{np.mean([r[m] for r in records]):.4f}" for m in METRICS)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", required=True, help="comma-separated harness datasets")
    p.add_argument("--contamination", default="0.2,0.3")
    p.add_argument("--seeds", default="0", help="comma-separated data seeds")
    p.add_argument("--preset", default="robust")
    p.add_argument("--method", default="rddpm", help="the harness method whose cleaning the oracle replaces")
    p.add_argument("--dilate", type=int, default=0, help="grow the true mask by this many points (default 0)")
    p.add_argument("--whole-samples", action="store_true", help="hold out every sample with a defect point, whole")
    p.add_argument(
        "--mask-from",
        type=float,
        default=None,
        help="hold out the true mask of the same set and seed at this contamination (a data-quantity control)",
    )
    p.add_argument("--fits-dir", default=None, help="benchmarks/generalise.py's cache, for the comparison")
    p.add_argument("--compare", default="rddpm", help="methods cached there, separated by ';'")
    p.add_argument("--out", default="results/oracle")
    args = p.parse_args(argv)
    if args.dilate < 0:
        p.error(f"--dilate must be >= 0, got {args.dilate}")
    if args.whole_samples and args.dilate:
        p.error("--whole-samples holds out whole samples: leave --dilate at 0")
    torch.set_num_threads(1)  # as the harness's workers: identical floating-point results
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    oracle: dict[tuple, list[dict]] = {}
    for dataset in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        for c in [float(x) for x in args.contamination.split(",")]:
            for seed in seeds:
                r = oracle_record(
                    dataset, args.method, c, seed, args.preset, args.dilate, out, args.whole_samples, args.mask_from
                )
                oracle.setdefault((dataset, c), []).append(r)
                print(
                    f"{dataset} {c:g} s{seed}: oracle {r['pixel_auroc']:.4f} / {r['pixel_auprc']:.4f} "
                    f"(held out {r['excluded']:.3f} of the points)",
                    flush=True,
                )
    if args.fits_dir is not None:
        compare = [m.strip() for m in args.compare.split(";") if m.strip()]
        text = comparison(oracle, Path(args.fits_dir), compare, seeds) + "\n"
        print(text, end="")
        method = "" if args.method == "rddpm" else "_" + re.sub(r"[^\w=.-]+", "_", args.method)
        mask = _mask_suffix(args.whole_samples, args.mask_from, "_")
        levels = "-".join(f"{c:g}" for c in sorted({c for _, c in oracle}))  # so another level writes its own file
        name = "_".join(sorted({d for d, _ in oracle})) + f"_{args.preset}{method}_c{levels}_d{args.dilate}{mask}.md"
        atomic_write_text(out / name, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
