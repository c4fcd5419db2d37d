"""Does a scoring variant beat the base scoring of the same fits? A pre-registered decision from cached fits.

    python benchmarks/variant_gain.py --fits-dir results/s14/fits --method rddpm --contamination 0.2 \\
        --variants 'n_reconstructions=4;map_t0s=[50,100,200]' \\
        --shaping 'forging;machine_sound;brick;rolling;dev_signals;long_record;dev_surfaces' \\
        --confirm 'val_signals;val_long_record;val_surfaces' [--skip-below-chance] [--out results/s14/gain.md] \
        [--base 'n_reconstructions=4']

Reads the JSON rows ``benchmarks/generalise.py`` cached (nothing is refitted). For every dataset and variant it
prints the mean over seeds of the base and the variant scoring of the same fits (only seeds that scored both) and
the difference, pixel AUROC and AUPRC and sample AUROC. ``--base`` names the scoring compared against (default
``base``, the fit's own scoring; after a default changes, the variant that spells the new default). The verdict
applies the rule written before the runs:

- (a) on every shaping set, variant AUROC ≥ base − ``--auroc-tol`` and AUPRC ≥ base − ``--auprc-tol``
  (with ``--skip-below-chance``, shaping sets whose base AUROC is below 0.5 are shown but not used);
- (b) the mean AUPRC gain over the shaping sets used is > 0;
- (c) on every confirmation set (no exclusion), the same tolerances as (a).

A set with no fit for a variant fails its check (nothing is assumed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise_table import METRICS, read_fits  # noqa: E402

from rddpm_signals._io import atomic_write_text, markdown_table  # noqa: E402

HEADER = ("set", "role", "seeds", "pixel AUROC (Δ)", "pixel AUPRC (Δ)", "sample AUROC (Δ)")


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(";") if t.strip()]


def paired_means(
    fits_dir: Path, method: str, contamination: float, variant: str, base: str = "base"
) -> dict[str, tuple[list[int], dict[str, float], dict[str, float]]]:
    """dataset → (seeds, ``base`` means, ``variant`` means) over the fits of ``method`` that scored both."""
    base_rows, variant_rows = read_fits(fits_dir, base), read_fits(fits_dir, variant)
    out = {}
    for (dataset, c, m), by_seed in variant_rows.items():
        base_by_seed = base_rows.get((dataset, c, m), {})
        seeds = sorted(set(by_seed) & set(base_by_seed))
        if m != method or c != contamination or not seeds:
            continue
        base = {k: float(np.mean([base_by_seed[s][k] for s in seeds])) for k in METRICS}
        var = {k: float(np.mean([by_seed[s][k] for s in seeds])) for k in METRICS}
        out[dataset] = (seeds, base, var)
    return out


def verdict(
    means: dict[str, tuple[list[int], dict[str, float], dict[str, float]]],
    shaping: list[str],
    confirm: list[str],
    auroc_tol: float,
    auprc_tol: float,
    skip_below_chance: bool,
) -> tuple[bool, list[str]]:
    """The rule of the module docstring → (passes, reasons it fails or notes)."""
    notes, gains = [], []

    def within(name: str) -> bool:
        if name not in means:
            notes.append(f"{name}: no fit scored both")
            return False
        _, base, var = means[name]
        ok = True
        if var["pixel_auroc"] < base["pixel_auroc"] - auroc_tol:
            notes.append(f"{name}: AUROC {var['pixel_auroc'] - base['pixel_auroc']:+.3f}")
            ok = False
        if var["pixel_auprc"] < base["pixel_auprc"] - auprc_tol:
            notes.append(f"{name}: AUPRC {var['pixel_auprc'] - base['pixel_auprc']:+.3f}")
            ok = False
        return ok

    passes = True
    for name in shaping:
        if skip_below_chance and name in means and means[name][1]["pixel_auroc"] < 0.5:
            notes.append(f"{name}: base AUROC {means[name][1]['pixel_auroc']:.3f} < 0.5, not used")
            continue
        passes &= within(name)
        if name in means:
            gains.append(means[name][2]["pixel_auprc"] - means[name][1]["pixel_auprc"])
    if not gains or float(np.mean(gains)) <= 0:
        notes.append("mean AUPRC gain over the shaping sets is not > 0")
        passes = False
    for name in confirm:
        passes &= within(name)
    return passes, notes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fits-dir", default="results/generalise/fits")
    p.add_argument("--method", default="rddpm")
    p.add_argument("--contamination", type=float, default=0.2)
    p.add_argument("--variants", required=True, help="scoring variants separated by ';'")
    p.add_argument("--base", default="base", help="the scoring compared against (default: base)")
    p.add_argument("--shaping", required=True, help="datasets the rule was shaped on, separated by ';'")
    p.add_argument("--confirm", default="", help="confirmation datasets, separated by ';'")
    p.add_argument("--auroc-tol", type=float, default=0.005)
    p.add_argument("--auprc-tol", type=float, default=0.01)
    p.add_argument("--skip-below-chance", action="store_true")
    p.add_argument("--out", help="also write the tables and verdicts to this markdown file")
    args = p.parse_args(argv)
    fits_dir = Path(args.fits_dir)
    if not fits_dir.is_dir():
        print(f"error: no fits folder {str(fits_dir)!r}: run benchmarks/generalise.py first", file=sys.stderr)
        return 2
    shaping, confirm = _split(args.shaping), _split(args.confirm)
    lines = []
    for variant in _split(args.variants):
        means = paired_means(fits_dir, args.method, args.contamination, variant, args.base)
        rows = []
        for name in [*shaping, *confirm]:
            role = "shaping" if name in shaping else "confirmation"
            if name not in means:
                rows.append([name, role, "–", "–", "–", "–"])
                continue
            seeds, base, var = means[name]
            cells = [f"{base[m]:.3f} → {var[m]:.3f} ({var[m] - base[m]:+.3f})" for m in METRICS]
            rows.append([name, role, ",".join(map(str, seeds)), *cells])
        passes, notes = verdict(means, shaping, confirm, args.auroc_tol, args.auprc_tol, args.skip_below_chance)
        lines += [
            f"### {args.method} at {args.contamination:g}: `{args.base}` → `{variant}`",
            "",
            markdown_table(HEADER, rows),
            "",
            f"verdict: **{'passes' if passes else 'fails'}**" + (f" ({'; '.join(notes)})" if notes else ""),
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
