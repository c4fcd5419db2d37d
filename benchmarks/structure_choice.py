"""Does ``map_structure="auto"`` pick the better map without labels? For every model that
``benchmarks/generalise.py --save-models DIR`` saved, run the detector's own label-free choice (synthetic defects
written into its training samples, :mod:`rddpm_signals.synthetic`) and set it against the test-set pixel AUROC of
both candidates that the same fit's cached rows hold (variants ``base`` = ``none`` and ``map_structure=bulk``).

    python benchmarks/generalise.py --datasets grass --contamination 0.2 --fits rddpm \\
        --variants 'base;map_structure=bulk;map_structure=none' --save-models results/generalise/models
    python benchmarks/structure_choice.py --models results/generalise/models --fits results/generalise/fits \\
        --out results/structure_choice

Prints one row per model and writes ``choice.md`` / ``choice.csv`` in ``--out``. ``tail_none`` / ``tail_texture``
are the shares of training samples each map singles out (scores beyond 3 robust SDs); ``v2`` is the choice the
injected figures alone would make, ``choice`` the detector's (v2 and a larger texture tail). ``regret`` = the better
candidate's test AUROC minus the chosen one's (0 = the right choice, or a tie); the last two columns are
the candidates' test pixel AUPRC; ``choice_s`` is the time the choice takes (what ``auto`` adds to a fit, one
torch thread) beside the fit's own ``fit_s``.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals import RobustDiffusion  # noqa: E402
from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.detector import AUTO_BLIND, AUTO_MARGIN  # noqa: E402
from rddpm_signals.harness import PRESETS  # noqa: E402
from rddpm_signals.harness.cells import Cell, load_cell_data  # noqa: E402

COLUMNS = [
    "dataset",
    "contamination",
    "seed",
    "method",
    "injected_none",
    "injected_bulk",
    "tail_none",
    "tail_texture",
    "v2",
    "choice",
    "test_none",
    "test_bulk",
    "test_chosen",
    "regret",
    "auprc_none",
    "auprc_bulk",
    "choice_s",
    "fit_s",
]


def _cell_of(record: dict, key: str) -> Cell:
    """The harness cell whose key is ``key``: the record's method under some preset, or, for a fit made before a
    scoring default changed (``n_reconstructions`` 1 → 4, §14; ``map_structure`` none → auto, §16), the method
    spelling those defaults' old values as the fit recorded them (``base_params``)."""
    spellings = [record["method"]]
    base = record.get("base_params", {})
    changed = [f"{name}={base[name]}" for name in ("n_reconstructions", "map_structure") if name in base]
    for subset in itertools.chain.from_iterable(itertools.combinations(changed, k) for k in (1, 2)):
        separator = "," if ":" in record["method"] else ":"
        spellings.append(record["method"] + separator + ",".join(subset))
    for spelling in spellings:
        for preset in PRESETS:
            cell = Cell(record["dataset"], spelling, record["contamination"], record["seed"], preset)
            if cell.key() == key:
                return cell
    raise ValueError(f"no preset reproduces the cell key {key}: was the model saved by another version?")


def _injection_only(figures) -> str:
    """The choice of rule v2 (before the training-tail condition): the injected figures alone."""
    none, bulk = float(figures[0]), float(figures[1])
    return "bulk" if none < AUTO_BLIND and bulk > none + AUTO_MARGIN else "none"


def choose(model: Path, fits: Path) -> dict | None:
    """The label-free choice for one saved model, with the cached test AUROCs; ``None`` when its fit lacks the
    figures of either map (``map_structure=none`` — or ``base`` for a fit made with ``"none"`` — and
    ``map_structure=bulk``) or was fitted with another structure."""
    record = json.loads((fits / f"{model.stem}.json").read_text())
    variants = record["variants"]
    det = RobustDiffusion.load(model, device="cpu")
    # the plain map's figures: named, or the fit's own scoring when it was fitted with map_structure="none"
    plain = variants.get("map_structure=none") or (variants.get("base") if det.map_structure == "none" else None)
    if det.map_structure not in ("none", "auto") or plain is None or "map_structure=bulk" not in variants:
        return None
    data = load_cell_data(_cell_of(record, model.stem).resolved())
    det.set_params(map_structure="auto")
    start = time.perf_counter()
    det._fit_scoring_reference(det._normalise(data.train_x))  # what map_structure="auto" adds to a fit
    choice_s = time.perf_counter() - start
    none, bulk = plain["pixel_auroc"], variants["map_structure=bulk"]["pixel_auroc"]
    chosen = bulk if det.map_structure_ == "bulk" else none
    return {
        "dataset": record["dataset"],
        "contamination": record["contamination"],
        "seed": record["seed"],
        "method": record["method"],
        "injected_none": round(float(det.map_structure_scores_[0]), 4),
        "injected_bulk": round(float(det.map_structure_scores_[1]), 4),
        "tail_none": round(float(det.map_structure_scores_[2]), 4),
        "tail_texture": round(float(det.map_structure_scores_[3]), 4),
        "v2": _injection_only(det.map_structure_scores_),
        "choice": det.map_structure_,
        "test_none": none,
        "test_bulk": bulk,
        "test_chosen": chosen,
        "regret": round(max(none, bulk) - chosen, 4),
        "auprc_none": plain["pixel_auprc"],
        "auprc_bulk": variants["map_structure=bulk"]["pixel_auprc"],
        "choice_s": round(choice_s, 1),
        "fit_s": record.get("fit_s"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="results/generalise/models")
    p.add_argument("--fits", default="results/generalise/fits")
    p.add_argument("--out", default="results/structure_choice")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    models = sorted(Path(args.models).glob("*.pt"))
    if not models:
        raise SystemExit(f"no saved models in {args.models!r}: run benchmarks/generalise.py with --save-models")
    rows = [r for r in (choose(m, Path(args.fits)) for m in models) if r is not None]
    rows.sort(key=lambda r: (r["dataset"], r["contamination"], r["seed"], r["method"]))
    table = markdown_table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    print(table, flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "choice.md", table + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "choice.csv", buffer.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
