"""Does a training rule or a scoring option generalise? Fit each harness configuration once and score its test set
under several scoring variants (scoring-only options need no refit).

    python benchmarks/generalise.py --datasets forging,machine_sound --contamination 0,0.2 --seed 0 \\
        --fits 'ddpm;rddpm;rddpm:clean_rule=test;rddpm:clean_rule=test,clean_samples=true' \\
        --variants 'base;map_t0s=[50,100,200];map_structure=recon;map_structure=bulk;score_mode=features'

Each fit is the harness cell of the same spelling (``benchmarks/run.py``: same preset sizes, data, seeds and one
torch thread), so its ``base`` row equals that cell's metrics. A variant is a set of scoring overrides
(``key=value,key=value``; ``base`` = none) applied to the fitted detector with ``set_params``; the references it
needs are learnt from the training maps. Reports per fit the excluded share of the training points
(``clean_mask_``), the share of the training set's defect points among them (the record also keeps it per defect
kind, on sets that name their kinds), and per variant the pixel AUROC /
AUPRC and the sample AUROC (of the detector's ``score_maps``). Each fit's rows are cached as
``--out/<cell key>.json`` with its variants, so a rerun with more variants refits nothing it has already scored.
``--save-models DIR`` also keeps each fitted diffusion model as ``DIR/<cell key>.pt`` (for
``benchmarks/structure_choice.py``); with ``--reuse-models`` a model already saved there is loaded instead of
refitted, so new scoring variants cost only their scoring. A variant ``map_structure=auto`` records what it chose.
``--data length=64`` overrides the preset's data options (another sample length, say); they are part of each fit's
key and recorded in it, so keep fits of different data options in different ``--out`` folders for the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import parse_data_options, parse_variant, resolved_on_data  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_row, markdown_table  # noqa: E402
from rddpm_signals.datasets.long_record import point_maps  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, fit_detector, load_cell_data, resolved_key  # noqa: E402
from rddpm_signals.harness.methods import parse_method  # noqa: E402
from rddpm_signals.metrics import pixel_auprc, pixel_auroc, sample_auroc  # noqa: E402

HEADER = (
    "dataset",
    "contamination",
    "fit",
    "excluded (normal / defect pts)",
    "variant",
    "pixel AUROC",
    "pixel AUPRC",
    "sample AUROC",
)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.replace(";", "\n").splitlines() if t.strip()]


def score_variant(det, data, variant: str, base: dict | None, Z: torch.Tensor | None) -> dict:
    """``det``'s test metrics on ``data`` under the scoring ``variant`` (rounded; ``score_s``; with
    ``map_structure="auto"`` the choice and its figures). ``base``: the fit's own parameters, which the variant
    overrides; ``None`` for a baseline (one scoring, its own). ``Z``: the normalised training set, for the scoring
    references a variant may need. A long record is stitched back and scored per point, as the harness does."""
    t = time.perf_counter()
    if base is not None:
        det.set_params(**{**base, **parse_variant(variant)})
        det._check_params()
        if det._needs_reference():
            det._fit_scoring_reference(Z)
    maps = det.anomaly_map(data.test_x)
    scores = det.score_maps(maps)
    graded, masks = maps, data.test_mask
    if "test_point_mask" in data.meta:
        graded, masks = point_maps(data, maps)
    out = {
        "pixel_auroc": round(pixel_auroc(graded, masks), 4),
        "pixel_auprc": round(pixel_auprc(graded, masks), 4),
        "sample_auroc": round(sample_auroc(scores, data.test_label), 4),
        "score_s": round(time.perf_counter() - t, 1),
    }
    if base is not None and det.map_structure == "auto":  # what the label-free choice picked, and its figures
        out["map_structure_"] = det.map_structure_
        out["auto_auroc"] = [round(float(a), 4) for a in det.map_structure_scores_]
    return out


def exclusion(det, data) -> dict:
    """What ``det``'s self-cleaning held out of ``data``'s training points (``clean_mask_``): the share of all
    points, of the normal samples' points and of the defect points; ``{}`` for a fit without cleaning."""
    mask = getattr(det, "clean_mask_", None)
    if mask is None:
        return {}
    mask = mask.reshape(data.train_mask.shape)
    defective = data.train_mask.reshape(len(mask), -1).any(axis=1)
    record = {
        "excluded": float(mask.mean()),
        "normal_excluded": float(mask[~defective].mean()),
        "defect_recall": float(mask[data.train_mask].mean()) if data.train_mask.any() else None,
    }
    kinds = np.asarray(data.meta.get("train_defect", ()))
    names = kind_names(kinds, len(mask))
    if names:  # what the cleaning leaves in, kind by kind (sets that name their defects)
        record["defect_recall_by_kind"] = {
            k: float(mask[kinds == k][data.train_mask[kinds == k]].mean())
            for k in names
            if data.train_mask[kinds == k].any()
        }
    return record


def kind_names(kinds: np.ndarray, n_samples: int) -> list[str]:
    """The defect kinds named in ``kinds`` ``(N,)`` (each training sample's kind, ``""`` for a normal one), sorted;
    ``[]`` when the set names none (``kinds`` is not one per sample)."""
    if len(kinds) != n_samples:
        return []
    return sorted(str(k) for k in set(kinds.tolist()) - {""})


def run_fit(
    dataset: str,
    method: str,
    contamination: float,
    seed: int,
    preset: str,
    variants: list[str],
    out: Path,
    models: Path | None = None,
    reuse: bool = False,
    data_options: dict | None = None,
    model_seed: int | None = None,
):
    resolved = resolved_on_data(Cell(dataset, method, contamination, seed, preset), data_options)
    if model_seed is not None:  # another network seed on the cell's data (benchmarks/model_seed.py)
        resolved["params"]["random_state"] = model_seed
    key = resolved_key(resolved)
    path = out / f"{key}.json"
    record = json.loads(path.read_text()) if path.exists() else None
    data = load_cell_data(resolved)
    todo = [v for v in variants if record is None or v not in record["variants"]]
    if not todo:
        return record
    det = build_detector(resolved, data.dims)
    # Scoring variants re-score a diffusion fit; a baseline (RPCA, discord, ...) has only its own scoring.
    diffusion = hasattr(det, "_fit_scoring_reference")
    if not diffusion and any(parse_variant(v) for v in todo):
        raise ValueError(f"{method!r} takes only the 'base' variant (scoring variants re-score a diffusion fit)")
    if record is None:
        record = {"dataset": dataset, "method": method, "contamination": contamination, "seed": seed, "variants": {}}
        if data_options:
            record["data_options"] = data_options
        if model_seed is not None and model_seed != seed:
            record["model_seed"] = model_seed
    saved = None if models is None else models / f"{key}.pt"
    if reuse and diffusion and saved is not None and saved.exists():
        det = type(det).load(saved, device="cpu")  # the same fit: only the new variants are scored
    else:
        start = time.perf_counter()
        fit_detector(det, data)
        record["fit_s"] = round(time.perf_counter() - start, 1)
        if saved is not None and diffusion:  # to study scoring choices later without refitting
            models.mkdir(parents=True, exist_ok=True)
            det.save(saved)
    record.update(exclusion(det, data))
    base = det.get_params()
    if diffusion:  # what "base" meant for this fit: library defaults change (n_reconstructions 1 → 4, §14)
        scoring = ("n_reconstructions", "map_smoothing", "map_structure", "map_t0s", "t0", "reverse_steps")
        record["base_params"] = {k: base[k] if not isinstance(base[k], tuple) else list(base[k]) for k in scoring}
    Z = det._normalise(data.train_x) if diffusion else None
    for variant in todo:
        record["variants"][variant] = score_variant(det, data, variant, base if diffusion else None, Z)
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True))
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", required=True)
    p.add_argument("--fits", required=True, help="harness method spellings separated by ';'")
    p.add_argument("--variants", default="base", help="scoring variants separated by ';' ('base' = none)")
    p.add_argument("--contamination", default="0,0.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="robust")
    p.add_argument(
        "--data", default="", help="data options overriding the preset's, 'key=value' separated by ',' (length=64)"
    )
    p.add_argument("--out", default="results/generalise/fits")
    p.add_argument("--save-models", default=None, help="also save each fitted diffusion model here (<cell key>.pt)")
    p.add_argument(
        "--reuse-models",
        action="store_true",
        help="load a model already saved under --save-models instead of refitting",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as the harness's workers: identical floating-point results
    fits, variants = _split(args.fits), _split(args.variants)
    for f in fits:
        parse_method(f)
    for v in variants:
        parse_variant(v)
    data_options = parse_data_options(args.data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = None if args.save_models is None else Path(args.save_models)
    print(markdown_table(HEADER, []), flush=True)
    for dataset in _split(args.datasets.replace(",", ";")):
        for c in [float(x) for x in args.contamination.split(",")]:
            for f in fits:
                r = run_fit(
                    dataset, f, c, args.seed, args.preset, variants, out, models, args.reuse_models, data_options
                )
                exc = "—"
                if "excluded" in r:
                    rec = r.get("defect_recall")
                    exc = f"{r['excluded']:.2f} ({r['normal_excluded']:.2f} / {'—' if rec is None else f'{rec:.2f}'})"
                for v in variants:
                    m = r["variants"][v]
                    chosen = f" → {m['map_structure_']} {m['auto_auroc']}" if "map_structure_" in m else ""
                    scores = [f"{m[k]:.3f}" for k in ("pixel_auroc", "pixel_auprc", "sample_auroc")]
                    print(markdown_row([dataset, f"{c:g}", f, exc, f"{v}{chosen}", *scores]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
