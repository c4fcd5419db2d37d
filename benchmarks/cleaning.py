"""What does self-cleaning exclude? The excluded share, how much of the planted defects it covers, and what other
ways of choosing the excluded points would score.

    python benchmarks/cleaning.py --dataset machine_sound --contamination 0.3 --seeds 0,1 \\
        --rules default,random:0.9,after_dilation:0.1,after_dilation:0.3,after_dilation:0.5

Fits the harness cell (same preset sizes and method spelling as ``benchmarks/run.py``) once per rule and seed.
Rules replace the ``"share"`` rule's choice of the points each cleaning round excludes, so the method must use that
rule (the default ``--method`` spells out the images' ``"auto"`` cleaning, which 1D signals no longer get by
default: docs/RESULTS.md §27d):

- ``default``: the library's share rule (per-position robust z above ``clean_threshold``, at most ``clean_max_share``
  of the points, then dilated by ``clean_dilate`` — the cap counts the points before the dilation);
- ``after_dilation:S``: the same flags, capped at a share ``S`` of the points *after* the dilation;
- ``random:S``: a random share ``S`` of the points (a control: excluding as much, but blindly).

Reports per rule and seed: the excluded share at each round, the share of the training set's defect points
excluded at the end (recall), the share excluded from normal samples, and the test pixel AUROC / AUPRC. Prints a
markdown table and writes it to ``--out/<dataset>_<contamination>.md`` (atomically).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rddpm_signals import cleaning  # noqa: E402
from rddpm_signals._io import atomic_write_text, markdown_row, markdown_table  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, fit_detector, load_cell_data  # noqa: E402
from rddpm_signals.harness.methods import parse_method  # noqa: E402
from rddpm_signals.metrics import pixel_auprc, pixel_auroc  # noqa: E402
from rddpm_signals.scoring import PositionNormalizer  # noqa: E402

_LIBRARY_RULE = cleaning.flag_points
# the share rule with the settings images get by default ("auto"), spelt out so 1D sets get them too
SHARE_RECIPE = "rddpm:clean_rule=share,clean_rounds=5,clean_dilate=2,clean_prior=none"
HEADER = (
    "rule",
    "seed",
    "excluded share per round",
    "excluded at the end",
    "defect points excluded",
    "normal samples' points excluded",
    "pixel AUROC",
    "pixel AUPRC",
    "fit s",
)


def after_dilation(maps: np.ndarray, threshold: float, share: float, dilate: int) -> np.ndarray:
    """The library's flags with the cap counted after the dilation: a grey dilation of the z-scores, then one cut."""
    z = PositionNormalizer().fit(maps).transform(maps)
    if dilate > 0:
        z = ndimage.maximum_filter(z, size=(1,) + (2 * dilate + 1,) * (maps.ndim - 1), mode="nearest")
    return z > max(threshold, float(np.quantile(z, 1.0 - share)))


def make_rule(spec: str, seed: int):
    """A replacement for :func:`rddpm_signals.cleaning.flag_points` following rule ``spec``."""
    name, _, arg = spec.partition(":")
    if name == "default":
        return _LIBRARY_RULE
    share = float(arg) if arg else float("nan")
    if not 0.0 < share < 1.0:
        raise ValueError(f"rule {spec!r} needs a share in (0, 1), e.g. '{name}:0.3'")
    if name == "after_dilation":
        return lambda maps, threshold, max_share, dilate: after_dilation(maps, threshold, share, dilate)
    if name == "random":
        rng = np.random.default_rng(seed)
        return lambda maps, threshold, max_share, dilate: rng.random(maps.shape) < share
    raise ValueError(f"unknown rule {spec!r}: use default, after_dilation:S or random:S")


def run_one(dataset: str, method: str, contamination: float, seed: int, preset: str, rule: str) -> dict:
    resolved = Cell(dataset, method, contamination, seed, preset).resolved()
    if resolved["detector"] != "RobustDiffusion" or not resolved["params"].get("self_clean"):
        raise ValueError(f"method {method!r} does not self-clean: use 'rddpm' or a spelling of it")
    data = load_cell_data(resolved)
    detector = build_detector(resolved, data.dims)
    rule_in_use = cleaning.resolve_auto({"rule": detector.clean_rule}, data.dims)["rule"]
    if rule_in_use != "share":
        raise ValueError(
            f"method {method!r} flags by clean_rule={rule_in_use!r}: these rules replace the share rule, "
            "so add clean_rule=share to it"
        )
    flag = make_rule(rule, seed)
    shares: list[float] = []

    def recording(maps, threshold, max_share, dilate):
        flagged = flag(maps, threshold, max_share, dilate)
        shares.append(float(flagged.mean()))
        return flagged

    # SelfCleaning looks flag_points up in its module at every round, so swapping it there changes the rule.
    cleaning.flag_points = recording
    try:
        start = time.perf_counter()
        fit_detector(detector, data)
        fit_s = time.perf_counter() - start
    finally:
        cleaning.flag_points = _LIBRARY_RULE
    excluded = detector.clean_mask_.reshape(data.train_mask.shape)
    defective = data.train_mask.reshape(len(excluded), -1).any(axis=1)
    maps = detector.anomaly_map(data.test_x)
    return {
        "rule": rule,
        "seed": seed,
        "round_shares": shares,
        "excluded": float(excluded.mean()),
        "defect_recall": float(excluded[data.train_mask].mean()) if data.train_mask.any() else float("nan"),
        "normal_excluded": float(excluded[~defective].mean()),
        "auroc": pixel_auroc(maps, data.test_mask),
        "auprc": pixel_auprc(maps, data.test_mask),
        "fit_s": fit_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", default=SHARE_RECIPE, help="a self-cleaning harness method spelling (share rule)")
    p.add_argument("--contamination", type=float, default=0.3)
    p.add_argument("--seeds", default="0")
    p.add_argument("--rules", default="default,random:0.9,after_dilation:0.1")
    p.add_argument("--preset", default="robust")
    p.add_argument("--out", default="results/cleaning")
    args = p.parse_args(argv)
    parse_method(args.method)
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    seeds = [int(s) for s in args.seeds.split(",")]
    for rule in rules:
        make_rule(rule, 0)  # a bad rule fails before any fit

    rows = []
    for rule in rules:
        for seed in seeds:
            r = run_one(args.dataset, args.method, args.contamination, seed, args.preset, rule)
            shares = " ".join(f"{s:.2f}" for s in r["round_shares"])
            excluded = [f"{r[k]:.2f}" for k in ("excluded", "defect_recall", "normal_excluded")]
            rows.append([rule, seed, shares, *excluded, f"{r['auroc']:.3f}", f"{r['auprc']:.3f}", f"{r['fit_s']:.0f}"])
            print(markdown_row(rows[-1]), flush=True)
    title = f"{args.dataset}, contamination {args.contamination:g}, method `{args.method}`, preset {args.preset}"
    text = f"{title}\n\n{markdown_table(HEADER, rows)}\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{args.dataset}_{args.contamination:g}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
