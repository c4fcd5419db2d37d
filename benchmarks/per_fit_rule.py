"""A scoring variant against the base scoring, judged fit by fit: a pre-registered rule from cached fits.

    python benchmarks/per_fit_rule.py --fits-dir results/s14/fits results/s15/fits --method rddpm \\
        --base n_reconstructions=4 --variant 'n_reconstructions=4,map_structure=auto' \\
        [--sample-sets 'whole_sample;val_whole_sample'] [--out results/s16/auto_rule.md]

Reads the JSON rows ``benchmarks/generalise.py`` cached (nothing is refitted). Every fit of ``--method`` (any
contamination, any seed) that scored both the base and the variant (found by the scoring they mean:
``generalise_table.scored_as``) is one row. With ``--variant-method`` the rule compares two *fits* instead: each
cell (dataset, contamination, seed) fitted by both ``--method`` (scored as ``--base``) and ``--variant-method``
(scored as ``--variant``, by default also ``--base``) is one row::

    python benchmarks/per_fit_rule.py --fits-dir results/s21/fits --method rddpm \\
        --variant-method 'rddpm:clean_rule=test,clean_samples=two_sided' --out results/s21/w3_rule.md

The rule (``results/s16/PREREGISTERED.txt``):

- (a) on every fit of a set with local defects: variant pixel AUROC ≥ base − ``--auroc-tol`` and pixel AUPRC ≥
  base − ``--auprc-tol``;
- (b) on every fit of a ``--sample-sets`` set (whole-sample anomalies, judged by the sample AUROC): variant sample
  AUROC ≥ base − ``--sample-tol``;
- (c) the mean pixel AUROC change over all fits is > 0.

Prints one row per fit (with the label-free choice where the variant is ``map_structure="auto"``), the failures,
and the verdict; also what (a) alone would say if applied to the sample sets too.

``--mean-over-seeds`` judges each (dataset, contamination) group by the mean over its seeds instead
(``results/s24/PREREGISTERED.txt``): one fit's difference moves by an SD of 0.01–0.03 AUROC with the network seed
alone (docs/RESULTS.md §22), far more than the tolerances. With d the mean paired difference (variant − base) and SE
its standard error (SD of the differences / √n; 0 for a single seed):

- (a) every group with local defects: d_AUROC + SE ≥ −``--auroc-tol`` and d_AUPRC + SE ≥ −``--auprc-tol``;
- (b) every ``--sample-sets`` group: d_sample + SE ≥ −``--sample-tol``;
- (c) the mean of d_AUROC over the groups is > 0.

It also prints the point reading (d alone against the tolerances), a reading and not the rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import _split, scored_fits  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402


def paired_fits(
    fits_dirs: list[Path], method: str, base: str, variant: str, variant_method: str | None = None
) -> list[dict]:
    """One dict per cell (dataset, contamination, seed): ``base`` = the fit of ``method`` scored as ``base``,
    ``variant`` = the fit of ``variant_method`` (``None``: the same fit) scored as ``variant``, and the variant's
    ``map_structure_`` choice (``None`` if it records none). Cells with both, sorted. Read by
    ``generalise_table.scored_fits``: a cell cached in two folders is read from the first; two fits of one cell in one
    folder, or a cell whose fits (either side) were made on other data options (``generalise.py --data``), are refused
    with a ``ValueError``."""
    seen: dict = {}  # both sides: one data
    found = {
        side: {(d, c, s): m for (d, c, _, s), m in scored_fits(fits_dirs, scoring, side_method, seen).items()}
        for side, side_method, scoring in (("base", method, base), ("variant", variant_method or method, variant))
    }
    both = sorted(set(found["base"]) & set(found["variant"]))
    return [
        {
            "key": k,
            "base": found["base"][k],
            "variant": found["variant"][k],
            "choice": found["variant"][k].get("map_structure_"),
        }
        for k in both
    ]


_METRICS = ("pixel_auroc", "pixel_auprc", "sample_auroc")


def _checks(sample_set: bool, auroc_tol: float, auprc_tol: float, sample_tol: float) -> list[tuple[str, float]]:
    """The (metric, tolerance) pairs a set is judged by: the sample AUROC for a whole-sample set, else the pixel
    AUROC and AUPRC."""
    if sample_set:
        return [("sample_auroc", sample_tol)]
    return [("pixel_auroc", auroc_tol), ("pixel_auprc", auprc_tol)]


def _said(d: dict, checks: list[tuple[str, float]], se: dict | None = None) -> str:
    """The checked metrics' differences (with their standard errors when given), e.g. ``pixel_auroc -0.0030``."""
    return ", ".join(f"{m} {d[m]:+.4f}" + ("" if se is None else f" ± {se[m]:.4f}") for m, _ in checks)


def judge(
    rows: list[dict], sample_sets: list[str], auroc_tol: float, auprc_tol: float, sample_tol: float
) -> tuple[list[str], list[str], float]:
    """(failures of the rule, failures of (a) applied to every fit, mean pixel AUROC change)."""
    fails, literal = [], []
    pixel = _checks(False, auroc_tol, auprc_tol, sample_tol)
    for r in rows:
        name = "{} {:g} s{}".format(*r["key"])
        d = {m: r["variant"][m] - r["base"][m] for m in _METRICS}
        checks = _checks(r["key"][0] in sample_sets, auroc_tol, auprc_tol, sample_tol)
        if any(d[m] < -tol for m, tol in pixel):
            literal.append(f"{name} ({_said(d, pixel)})")
        if any(d[m] < -tol for m, tol in checks):
            fails.append(f"{name} ({_said(d, checks)})")
    mean = float(np.mean([r["variant"]["pixel_auroc"] - r["base"]["pixel_auroc"] for r in rows])) if rows else 0.0
    return fails, literal, mean


def seed_groups(rows: list[dict]) -> list[dict]:
    """One dict per (dataset, contamination) of :func:`paired_fits` rows: its ``seeds``, the ``base`` and
    ``variant`` means, and per metric the mean paired difference ``d`` and its standard error ``se`` (SD with
    ddof 1 over √n; 0 with one seed)."""
    by_group: dict[tuple, list[dict]] = {}
    for r in rows:
        by_group.setdefault(r["key"][:2], []).append(r)
    groups = []
    for key, members in sorted(by_group.items()):
        diffs = {m: np.array([r["variant"][m] - r["base"][m] for r in members]) for m in _METRICS}
        n = len(members)
        groups.append(
            {
                "key": key,
                "seeds": [r["key"][2] for r in members],
                "base": {m: float(np.mean([r["base"][m] for r in members])) for m in _METRICS},
                "variant": {m: float(np.mean([r["variant"][m] for r in members])) for m in _METRICS},
                "d": {m: float(diffs[m].mean()) for m in _METRICS},
                "se": {m: float(diffs[m].std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0 for m in _METRICS},
            }
        )
    return groups


def judge_groups(
    groups: list[dict], sample_sets: list[str], auroc_tol: float, auprc_tol: float, sample_tol: float
) -> tuple[list[str], list[str], float]:
    """(failures of the rule — d + SE below −tolerance —, failures of the point reading — d below −tolerance —,
    mean d_AUROC over the groups)."""
    fails, point = [], []
    for g in groups:
        name = "{} {:g}".format(*g["key"])
        checks = _checks(g["key"][0] in sample_sets, auroc_tol, auprc_tol, sample_tol)
        d, se = g["d"], g["se"]
        said = _said(d, checks, se)
        if any(d[m] + se[m] < -tol for m, tol in checks):
            fails.append(f"{name} ({said})")
        if any(d[m] < -tol for m, tol in checks):
            point.append(f"{name} ({said})")
    mean = float(np.mean([g["d"]["pixel_auroc"] for g in groups])) if groups else 0.0
    return fails, point, mean


def report_groups(
    rows: list[dict], sample_sets: list[str], tolerances: tuple[float, float, float], variant: str
) -> str:
    groups = seed_groups(rows)
    fails, point, mean = judge_groups(groups, sample_sets, *tolerances)
    header = ["set", "contamination", "seeds", "pixel AUROC base → variant", "Δ AUROC ± SE", "Δ AUPRC ± SE"]
    header.append("Δ sample AUROC ± SE")
    table = [
        [
            g["key"][0],
            f"{g['key'][1]:g}",
            ",".join(str(s) for s in g["seeds"]),
            f"{g['base']['pixel_auroc']:.3f} → {g['variant']['pixel_auroc']:.3f}",
            *(f"{g['d'][m]:+.4f} ± {g['se'][m]:.4f}" for m in _METRICS),
        ]
        for g in groups
    ]
    lines = [
        markdown_table(header, table),
        "",
        f"groups: {len(groups)} ({len(rows)} paired fits); mean Δ pixel AUROC over the groups: {mean:+.4f}",
        "failures (Δ + SE below −tolerance): " + ("; ".join(fails) if fails else "none"),
        "point reading (Δ below −tolerance; not the rule): " + ("; ".join(point) if point else "no failure"),
        f"verdict for {variant!r} (mean over seeds): " + ("PASS" if groups and not fails and mean > 0 else "FAIL"),
    ]
    return "\n".join(lines) + "\n"


def report(rows: list[dict], sample_sets: list[str], tolerances: tuple[float, float, float], variant: str) -> str:
    fails, literal, mean = judge(rows, sample_sets, *tolerances)
    header = [
        "set",
        "contamination",
        "seed",
        "choice",
        "pixel AUROC base → variant (Δ)",
        "pixel AUPRC (Δ)",
        "sample AUROC (Δ)",
    ]
    table = []
    for r in rows:
        b, v = r["base"], r["variant"]
        cells = [
            f"{b[m]:.3f} → {v[m]:.3f} ({v[m] - b[m]:+.3f})" for m in ("pixel_auroc", "pixel_auprc", "sample_auroc")
        ]
        dataset, contamination, seed = r["key"]
        table.append([dataset, f"{contamination:g}", seed, r["choice"] or "—", *cells])
    chosen = [r["choice"] for r in rows if r["choice"]]
    lines = [
        markdown_table(header, table),
        "",
        f"fits: {len(rows)}; choices: " + ", ".join(f"{c} {chosen.count(c)}" for c in sorted(set(chosen))),
        f"mean pixel AUROC change: {mean:+.4f}",
        "failures: " + ("; ".join(fails) if fails else "none"),
        "(a) on every fit, sample sets included: " + ("; ".join(literal) if literal else "no failure"),
        f"verdict for {variant!r}: " + ("PASS" if rows and not fails and mean > 0 else "FAIL"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fits-dir", nargs="+", required=True)
    p.add_argument("--method", default="rddpm")
    p.add_argument("--base", default="base")
    p.add_argument("--variant", help="the variant's scoring (default: --base when --variant-method is given)")
    p.add_argument("--variant-method", help="compare this method's fits (scored as --variant) with --method's")
    p.add_argument("--sample-sets", default="whole_sample;val_whole_sample")
    p.add_argument("--auroc-tol", type=float, default=0.005)
    p.add_argument("--auprc-tol", type=float, default=0.01)
    p.add_argument("--sample-tol", type=float, default=0.005)
    p.add_argument("--mean-over-seeds", action="store_true", help="judge each (set, contamination) by its seed mean")
    p.add_argument("--out")
    args = p.parse_args(argv)
    dirs = [Path(d) for d in args.fits_dir]
    missing = [str(d) for d in dirs if not d.is_dir()]
    if missing:
        print(f"error: {', '.join(missing)}: no cached fits there; run benchmarks/generalise.py", file=sys.stderr)
        return 2
    if args.variant is None and args.variant_method is None:
        print("error: give --variant (a scoring) or --variant-method (a fit to compare with)", file=sys.stderr)
        return 2
    variant = args.variant if args.variant is not None else args.base
    rows = paired_fits(dirs, args.method, args.base, variant, args.variant_method)
    tolerances = (args.auroc_tol, args.auprc_tol, args.sample_tol)
    name = variant if args.variant_method is None else f"{args.variant_method} ({variant})"
    text = (report_groups if args.mean_over_seeds else report)(rows, _split(args.sample_sets), tolerances, name)
    print(text, end="")
    if args.out:
        atomic_write_text(Path(args.out), text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
