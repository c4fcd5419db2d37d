"""The benchmark runner: methods × datasets × contamination × seeds → ``OUT/`` (CSV, markdown, PNG plots).

``python benchmarks/run.py`` (or ``rddpm-signals benchmark``) with no arguments runs the quick preset on built-in
data and prints the summary table. Cells are cached under ``OUT/cache``: rerunning, or resuming an interrupted
run, recomputes nothing that finished.

Where the cells run (``--executor``):

- ``local`` (default): on this machine, ``--jobs`` worker processes of one thread each (in this process when
  ``--jobs 1``).
- ``ray``: each cell is a Ray task (one CPU, one torch thread) on the Ray cluster at ``--ray-address``, else at
  ``RAY_ADDRESS``, else on a local Ray started for the run with ``--jobs`` CPUs (default: all of them). The driver
  writes the cache files, ``results.csv`` and the rest as the local executor does; a cell computes the same numbers
  either way (its seeds come from its configuration), so the rows are the same. Needs
  ``pip install 'rddpm-signals[ray]'``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._io import atomic_write_text
from ..executors import EXECUTORS
from .cells import Cell, cached_cell, compute_cell, run_cell, store_cell
from .methods import parse_method
from .presets import PRESETS
from .report import plot_contamination, plot_delta, plot_examples, summary_markdown, write_csv

__all__ = ["main", "run_benchmark", "build_parser"]


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if any(not 0.0 <= v < 1.0 for v in values):
        raise argparse.ArgumentTypeError("contamination levels must lie in [0, 1)")
    return values


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    # A method's own overrides use commas too ("rddpm:delta=0.3,loss=huber"): separate methods with ';' or
    # repeat the flag; a plain comma list of base names also works.
    parts = [p for p in text.split(";") if p]
    if len(parts) == 1 and ":" not in text:
        parts = [p for p in text.split(",") if p]
    return parts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Compare RDDPM, DDPM, AnoDDPM and the classical baselines (RPCA, SSD, matrix-profile discords) "
        "across datasets.",
    )
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="sizes and default grid (quick)")
    p.add_argument("--datasets", type=_names, help="comma-separated dataset names (default: the preset's)")
    p.add_argument(
        "--methods",
        action="append",
        type=_names,
        help="methods, e.g. 'rddpm,ddpm,rpca' or 'rddpm:delta=0.3;ddpm' (repeatable; default: the preset's)",
    )
    p.add_argument("--contamination", type=_floats, help="e.g. 0,0.1,0.2,0.3 (default: the preset's)")
    p.add_argument("--seeds", type=_ints, help="e.g. 0,1,2 (default: the preset's)")
    p.add_argument("--out", default=None, help="output folder (default results/<preset>)")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="cells run in parallel worker processes of one thread each (default: CPU count, at most 4; each "
        "worker holds its own torch, about 1 GB); with --executor ray, the CPUs of a local Ray started for the run "
        "(default: all)",
    )
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: this machine's worker processes (default); ray: each cell a Ray task on a Ray cluster "
        "(pip install 'rddpm-signals[ray]'); same rows either way",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --executor ray: the cluster to join, e.g. ray://head:10001 (default: $RAY_ADDRESS, else a local "
        "Ray started for the run)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def _init_worker() -> None:
    # One thread per worker: for the small models of a benchmark cell, N single-thread workers beat one N-thread
    # process, and a fixed thread count keeps every cell's floating-point results identical from run to run.
    import torch

    torch.set_num_threads(1)


def _ray_cell(cell: Cell) -> tuple[dict, dict | None]:
    """A cell computed in a Ray task (one torch thread, as a local worker); the driver stores it."""
    from ..executors import single_thread

    single_thread()
    return compute_cell(cell)


def _run_cells_ray(
    cells: list[Cell], pending: list[int], cache: Path, results: dict, bar: tqdm, jobs: int | None, address: str | None
) -> None:
    """Each pending cell a Ray task; the driver stores each result in the cache as its task finishes."""
    from ..executors import gather, ray_session

    with ray_session(address, num_cpus=jobs) as ray:
        task = ray.remote(num_cpus=1)(_ray_cell)

        def store(k: int, value: tuple[dict, dict | None]) -> None:
            cell = cells[pending[k]]
            store_cell(cell, cache, *value)
            results[pending[k]] = value[0]
            bar.set_postfix_str(f"done {cell.dataset} {cell.method} {cell.contamination:.0%} s{cell.seed}")
            bar.update()

        gather(ray, [task.remote(cells[i]) for i in pending], store)


def _run_cells_local(
    cells: list[Cell], pending: list[int], cache: Path, results: dict, bar: tqdm, jobs: int | None
) -> None:
    """The pending cells in this process (``jobs`` ≤ 1) or in ``jobs`` worker processes, which write the cache."""
    jobs = min(os.cpu_count() or 1, 4) if jobs is None else jobs
    if jobs <= 1:
        _init_worker()
        for i in pending:
            bar.set_postfix_str(f"{cells[i].dataset} {cells[i].method} {cells[i].contamination:.0%} s{cells[i].seed}")
            results[i] = run_cell(cells[i], cache)
            bar.update()
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker) as pool:
        futures = {pool.submit(run_cell, cells[i], cache): i for i in pending}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            cell = cells[futures[future]]
            bar.set_postfix_str(f"done {cell.dataset} {cell.method} {cell.contamination:.0%} s{cell.seed}")
            bar.update()


def _run_cells(
    cells: list[Cell], cache: Path, jobs: int | None, executor: str = "local", address: str | None = None
) -> list[dict]:
    """Run (or read from the cache) every cell, ``jobs`` at a time, on ``executor`` (``local`` or ``ray``);
    results in the order of ``cells``."""
    bar = tqdm(total=len(cells), desc="benchmark", unit="cell", mininterval=1.0)
    results: dict[int, dict] = {}
    pending = []
    for i, cell in enumerate(cells):
        cached = cached_cell(cell, cache)
        if cached is not None:
            results[i] = cached
            bar.update()
        else:
            pending.append(i)
    if pending and executor == "ray":
        _run_cells_ray(cells, pending, cache, results, bar, jobs, address)
    elif pending:
        _run_cells_local(cells, pending, cache, results, bar, jobs)
    bar.close()
    return [results[i] for i in range(len(cells))]


def run_benchmark(args: argparse.Namespace) -> list[dict]:
    preset = PRESETS[args.preset]
    datasets = args.datasets or preset["datasets"]
    methods = [m for group in args.methods for m in group] if args.methods else list(preset["methods"])
    for m in methods:
        parse_method(m)  # fail before any work on a typo
    executor, address = getattr(args, "executor", "local"), getattr(args, "ray_address", None)
    if executor == "ray":
        from ..executors import import_ray

        import_ray()  # fail before any work when Ray is not installed
    elif address:
        raise ValueError("--ray-address applies to --executor ray only: add --executor ray or leave it out")
    levels = args.contamination if args.contamination is not None else preset["contamination"]
    seeds = args.seeds if args.seeds is not None else preset["seeds"]
    out = Path(args.out or f"results/{args.preset}")
    cache = out / "cache"

    cells = [
        Cell(dataset, method, c, seed, args.preset)
        for dataset in datasets
        for c in levels
        for seed in seeds
        for method in methods
    ]
    done = sum((cache / f"{cell.key()}.json").exists() for cell in cells)
    print(f"{len(cells)} cells ({done} cached) → {out}", flush=True)
    start = time.perf_counter()
    rows = _run_cells(cells, cache, args.jobs, executor, address)
    rows = [r for r in rows if not r.get("skipped")]  # a method off its modality

    write_csv(rows, out)
    table = summary_markdown(rows, methods)
    command = "python benchmarks/run.py " + " ".join(getattr(args, "argv", []) or [])
    atomic_write_text(out / "summary.md", f"Command: `{command.strip()}`\n\n{table}\n")
    if not args.no_plots:
        plot_contamination(rows, methods, out / "auroc_vs_contamination.png")
        l1 = next((m for m in methods if "loss=l1" in m), None)
        mse = next((m for m in methods if "loss=mse" in m or m == "ddpm"), None)
        plot_delta(rows, out / "delta_sensitivity.png", l1, mse)
        for dataset in datasets:
            examples = {}
            for method in methods:
                cell = Cell(dataset, method, max(levels), seeds[0], args.preset)
                if not (cache / f"{cell.key()}.npz").exists():  # skipped on this dataset's modality
                    continue
                with np.load(cache / f"{cell.key()}.npz") as z:
                    examples[method] = {k: z[k] for k in z.files}
            plot_examples(
                examples,
                f"{dataset} (contamination {max(levels):.0%}, seed {seeds[0]})",
                out / f"examples_{dataset}.png",
            )
    print("\n" + table)
    print(f"wall time {time.perf_counter() - start:.0f} s; results in {out}/ (results.csv, summary.md, *.png)")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    try:
        run_benchmark(args)
    except ValueError as err:
        parser.exit(2, f"benchmark: error: {err}\n")
    return 0
