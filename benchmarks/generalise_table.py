"""Issue 12's tables from the fits ``benchmarks/generalise.py`` cached: every fit's mean over seeds beside the best
clean-trained configuration of its dataset, and its gap to it.

    python benchmarks/generalise_table.py --fits-dir results/generalise/fits [--variant base] \\
        [--variant-of 'rddpm@map_structure=auto'] [--datasets 'dev_signals;long_record'] \\
        [--methods 'ddpm;rddpm;discord;rpca'] [--seeds 19,20] [--out results/generalise/table.md]

The reference of a dataset ("best clean") is, among the fits shown at contamination 0 (``--variant``'s rows) that
were run on the most seeds, the one with the highest mean pixel AUROC. The ``gap`` columns are paired by seed: the
mean over the seeds a row shares with the reference of (row − reference), AUROC and AUPRC ("—" when they share
none). ``seeds`` lists the seeds a row averages; ``±`` is the spread (half the range) over them, so a one-seed row
shows none. Nothing is refitted: only cached JSON files are read.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.harness.cells import Cell  # noqa: E402
from rddpm_signals.harness.methods import parse_method  # noqa: E402

METRICS = ("pixel_auroc", "pixel_auprc", "sample_auroc")


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(text, text)


def parse_variant(text: str) -> dict:
    """``"map_structure=recon,score_mode=mean"`` → overrides; ``"base"`` → ``{}``."""
    if text == "base":
        return {}
    out = {}
    for item in re.split(r",(?![^\[]*\])", text):  # commas outside [...]
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bad variant item {item!r}: write key=value")
        out[key.strip()] = _value(value.strip())
    return out


def parse_data_options(text: str) -> dict:
    """``"length=64,n_train=96"`` → dataset options overriding a preset's; ``""`` → ``{}``."""
    out = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad data option {item!r}: write key=value, e.g. length=64")
        out[key.strip()] = _value(value.strip())
    return out


def add_grid_arguments(p: argparse.ArgumentParser, datasets_help: str, contamination: str) -> None:
    """The grid of harness cells an offline benchmark walks: ``--datasets`` (comma-separated), ``--preset``,
    ``--contamination`` and ``--seeds`` (comma-separated, parsed as ``benchmarks/run.py`` parses them) and ``--data``
    (options over the preset's)."""
    from rddpm_signals.harness.run import _floats, _ints

    p.add_argument("--datasets", required=True, help=datasets_help)
    p.add_argument("--preset", default="develop")
    p.add_argument("--contamination", type=_floats, default=contamination, help="comma-separated contamination levels")
    p.add_argument("--seeds", type=_ints, default="0", help="comma-separated data seeds")
    p.add_argument("--data", default="", help="data options over the preset's, e.g. length=64")


def resolved_on_data(cell: Cell, data_options: dict | None) -> dict:
    """``cell.resolved()`` with ``data_options`` over the preset's (another sample length, say): part of the
    configuration, so :func:`~rddpm_signals.harness.cells.resolved_key` gives another key for them."""
    return cell.resolved(data_options)


def scored_as(record: dict, variant: str) -> dict | None:
    """The metrics ``record`` (one cached fit) holds for the scoring ``variant`` names, or ``None``.

    A variant is what it sets on top of the fit's own scoring, so names can differ and mean the same: for a fit
    that records its base scoring (``base_params``), the variant asked for matches any cached variant with the same
    resulting scoring parameters (``"n_reconstructions=4"`` is the ``"base"`` of a fit made after four draws became
    the default). A baseline (RPCA, discord, …) has one scoring, its own, whatever variant is asked for."""
    variants = record.get("variants", {})
    if variant in variants:
        return variants[variant]
    base = record.get("base_params")
    if base is None:
        try:
            baseline = not parse_method(record["method"]).is_diffusion
        except ValueError:  # a spelling this version does not know: only exact names match
            return None
        return variants["base"] if baseline and set(variants) == {"base"} else None
    want = {**base, **parse_variant(variant)}
    return next((v for name, v in variants.items() if {**base, **parse_variant(name)} == want), None)


def check_one_data(seen: dict, key: tuple, record: dict, path: Path) -> None:
    """Refuse to pool fits of one cell ``key`` made on other data options (``generalise.py --data``): the tables
    key fits by set, level, method and seed only. ``seen`` maps each key to the options of its first fit."""
    options = record.get("data_options", {})
    first = seen.setdefault(key, options)
    if first != options:
        raise ValueError(
            f"{path.name}: {key} was fitted on data options {options or 'of the preset'} and also on "
            f"{first or 'those of the preset'}: keep fits of other data options in other folders"
        )


def scored_fits(
    fits_dirs: list[Path], variant: str, method: str | None = None, seen: dict | None = None
) -> dict[tuple[str, float, str, int], dict]:
    """``(dataset, contamination, method, seed)`` → the metrics of the cached fit of that cell that scored
    ``variant`` (:func:`scored_as`), of every method or of ``method`` only.

    The one rule every reader of cached fits follows: two fits of one cell in one folder (two presets, or a refit
    under a newer key) are refused — keep one preset per folder; a cell cached in several folders is read from the
    first that has it; fits of one (dataset, contamination, seed) made on other data options are refused
    (:func:`check_one_data`; give two calls one ``seen`` to hold both to the same data)."""
    found: dict[tuple[str, float, str, int], dict] = {}
    seen = {} if seen is None else seen
    for folder in fits_dirs:
        here: dict[tuple, str] = {}
        for path in sorted(folder.glob("*.json")):
            record = json.loads(path.read_text())
            if method is not None and record["method"] != method:
                continue
            scored = scored_as(record, variant)
            if scored is None:
                continue
            dataset, contamination, seed = record["dataset"], float(record["contamination"]), int(record["seed"])
            check_one_data(seen, (dataset, contamination, seed), record, path)
            key = (dataset, contamination, record["method"], seed)
            if key in here:
                raise ValueError(
                    f"{here[key]} and {path.name} in {folder} are two fits of {key}: keep one preset per fits folder"
                )
            here[key] = path.name
            found.setdefault(key, scored)
    return found


def read_fits(fits_dir: Path, variant: str) -> dict[tuple[str, float, str], dict[int, dict[str, float]]]:
    """``(dataset, contamination, method)`` → ``{seed: metrics}`` of the cached fits that scored ``variant``
    (:func:`scored_fits`)."""
    rows: dict[tuple[str, float, str], dict[int, dict[str, float]]] = defaultdict(dict)
    for (dataset, contamination, method, seed), scored in scored_fits([fits_dir], variant).items():
        rows[dataset, contamination, method][seed] = {m: float(scored[m]) for m in METRICS if scored.get(m) is not None}
    return rows


def _mean(by_seed: dict[int, dict[str, float]], metric: str) -> tuple[float, float]:
    values = np.array([m[metric] for m in by_seed.values() if metric in m], dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(np.ptp(values) / 2)


def _cell(mean: float, spread: float, n: int) -> str:
    if np.isnan(mean):
        return "—"
    return f"{mean:.3f}" if n < 2 else f"{mean:.3f} ± {spread:.3f}"


def _gap(by_seed: dict[int, dict[str, float]], ref: dict[int, dict[str, float]] | None, metric: str) -> str:
    """Mean over shared seeds of (row − reference) for ``metric``; "—" when no seed is shared."""
    if not ref:
        return "—"
    diffs = [
        by_seed[s][metric] - ref[s][metric] for s in by_seed if s in ref and metric in by_seed[s] and metric in ref[s]
    ]
    return "—" if not diffs else f"{float(np.mean(diffs)):+.3f}"


def _reference(clean: dict[str, dict[int, dict[str, float]]]) -> str | None:
    """The clean fit run on the most seeds with the highest mean pixel AUROC (``None`` without clean fits)."""
    if not clean:
        return None
    most = max(len(v) for v in clean.values())
    return max((m for m, v in clean.items() if len(v) == most), key=lambda m: _mean(clean[m], "pixel_auroc")[0])


def build_table(rows: dict, datasets: list[str] | None = None, methods: list[str] | None = None) -> str:
    """The markdown table: one line per (dataset, contamination, method), references first per dataset."""
    keep = {
        k: v for k, v in rows.items() if (datasets is None or k[0] in datasets) and (methods is None or k[2] in methods)
    }
    header = [
        "dataset",
        "contamination",
        "method",
        "seeds",
        "pixel AUROC",
        "AUROC gap",
        "pixel AUPRC",
        "AUPRC gap",
        "sample AUROC",
        "best clean (AUROC / AUPRC)",
    ]
    table: list[list[str]] = []
    order = datasets or sorted({k[0] for k in keep})
    for dataset in order:
        clean = {k[2]: v for k, v in keep.items() if k[0] == dataset and k[1] == 0.0}
        ref_name = _reference(clean)
        ref = clean[ref_name] if ref_name else None
        if ref_name:
            seeds = ",".join(map(str, sorted(ref)))
            ref_auroc, ref_auprc = _mean(ref, "pixel_auroc")[0], _mean(ref, "pixel_auprc")[0]
            ref_text = f"{ref_name} {ref_auroc:.3f} / {ref_auprc:.3f} (seeds {seeds})"
        else:
            ref_text = "— (no clean fit)"
        keys = sorted(
            (k for k in keep if k[0] == dataset), key=lambda k: (k[1], methods.index(k[2]) if methods else k[2])
        )
        for key in keys:
            by_seed = keep[key]
            n = len(by_seed)
            auroc, auroc_sp = _mean(by_seed, "pixel_auroc")
            auprc, auprc_sp = _mean(by_seed, "pixel_auprc")
            sample, sample_sp = _mean(by_seed, "sample_auroc")
            table.append(
                [dataset, f"{key[1]:g}", key[2], ",".join(map(str, sorted(by_seed)))]
                + [_cell(auroc, auroc_sp, n), _gap(by_seed, ref, "pixel_auroc")]
                + [_cell(auprc, auprc_sp, n), _gap(by_seed, ref, "pixel_auprc")]
                + [_cell(sample, sample_sp, n), ref_text]
            )
    return markdown_table(header, table) + "\n"


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.replace(";", "\n").splitlines() if t.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fits-dir", default="results/generalise/fits")
    parser.add_argument("--variant", default="base")
    parser.add_argument(
        "--variant-of",
        action="append",
        default=[],
        metavar="METHOD@VARIANT",
        help="another scoring for one method's rows, e.g. 'rddpm@map_structure=auto' (repeatable)",
    )
    parser.add_argument("--datasets", help="names separated by ';' (default: every dataset found)")
    parser.add_argument("--methods", help="harness spellings separated by ';', in the order shown (default: all)")
    parser.add_argument("--seeds", help="only these data seeds, separated by ',' (default: every seed found)")
    parser.add_argument("--out", help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    fits_dir = Path(args.fits_dir)
    if not fits_dir.is_dir():
        print(f"error: {fits_dir} is not a folder of cached fits: run benchmarks/generalise.py first", file=sys.stderr)
        return 2
    rows = read_fits(fits_dir, args.variant)
    for item in args.variant_of:
        method, at, variant = item.partition("@")
        if not at:
            print(f"error: --variant-of {item!r}: write METHOD@VARIANT", file=sys.stderr)
            return 2
        rows = {k: v for k, v in rows.items() if k[2] != method}
        rows.update({k: v for k, v in read_fits(fits_dir, variant).items() if k[2] == method})
    if args.seeds:
        try:
            wanted = {int(s) for s in args.seeds.split(",") if s.strip()}
        except ValueError:
            print(f"error: --seeds {args.seeds!r}: write integers separated by ','", file=sys.stderr)
            return 2
        rows = {k: {s: m for s, m in v.items() if s in wanted} for k, v in rows.items()}
        rows = {k: v for k, v in rows.items() if v}
    datasets, methods = _split(args.datasets), _split(args.methods)
    for option, names, position in (("--datasets", datasets, 0), ("--methods", methods, 2)):
        found = {k[position] for k in rows}
        missing = [n for n in names or () if n not in found]
        if missing:  # a typo, or a list written with ',' between names, would otherwise print an empty table
            print(
                f"error: {option}: no cached fit of {', '.join(map(repr, missing))} in {fits_dir}"
                f"{' for those seeds' if args.seeds else ''}: check the names and separate them with ';'",
                file=sys.stderr,
            )
            return 2
    table = build_table(rows, datasets, methods)
    print(table, end="")
    if args.out:
        atomic_write_text(Path(args.out), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
