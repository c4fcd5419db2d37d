"""How the training-set maps of a self-cleaning fit change from one cleaning round to the next (a diagnostic).

    python benchmarks/round_maps.py --dataset dev_signals --preset develop --seed 24 --contamination 0.3 \\
        --method rddpm --out results/s30/rounds

Fits the harness cell of that spelling once, through ``generalise.run_fit`` (so its test metrics are the
``generalise.py`` row of the same cell), and keeps each cleaning round's training maps ``(N, …grid)`` and mask as
``--out/<cell key>.npz``. From them it prints, round by round, what the test rule sees — the log-map z-score of
:func:`rddpm_signals.cleaning.flag_points_test`, per position against the bulk — on the points the round keeps:

- ``held out``: the share of the training points the round excludes;
- ``kept z>3``: the share of the kept points with z > 3 (label-free: how much still stands out);
- ``left-in defect z``: the median z, at this round, of the defect points that the *last* round keeps (one set of
  points followed through training: a defect the network learns falls towards the bulk, one it cannot learn stays
  up), and the same per defect kind on sets that name their kinds;
- ``top kept z``: label-free, the median z at this round of the points the last round keeps whose z was in the top
  0.5 % of those points at the first scored round.

and, label-based, of the last round's mask: per defect kind the shares of its samples held out whole / in part /
not at all, and what the mask widened by 8 or 16 more points would hold out (an offline estimate, not a refit).
On 1D fits it also shapes the last round's own discoveries — the test rule at the fit's ``clean_fdr`` on its maps,
without the prior — by a dilation of 16 or 32 points, or a closing (gaps of up to twice ``c`` points between flags
of a sample filled) followed by a dilation of 16, and says what each would hold out (``shapes``; also offline).

A second run with the same arguments reads the cached ``.npz`` and fits nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage, stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generalise import kind_names, run_fit  # noqa: E402
from generalise_table import parse_data_options, resolved_on_data  # noqa: E402

from rddpm_signals import cleaning  # noqa: E402
from rddpm_signals._io import atomic_path, atomic_write_text, markdown_table  # noqa: E402
from rddpm_signals.harness.cells import Cell, build_detector, load_cell_data, resolved_key  # noqa: E402

TOP_SHARE = 0.005


@contextlib.contextmanager
def recording_rounds():
    """While open, every :class:`~rddpm_signals.cleaning.SelfCleaning` round appends ``(step, maps, mask, sigma)``
    to the yielded list; a round without maps (the prior's, at step 0) is not recorded."""
    rounds: list[tuple[int, np.ndarray, np.ndarray, float]] = []
    original = cleaning.SelfCleaning.__call__

    def call(self, ema):
        seen: list[np.ndarray] = []
        maps_of = self._maps
        self._maps = lambda net: seen.append(maps_of(net)) or seen[-1]
        try:
            weights = original(self, ema)
        finally:
            del self._maps
        if seen:
            rounds.append((self._step, seen[0].astype(np.float32), self.mask.copy(), float(self.sigma)))
        return weights

    cleaning.SelfCleaning.__call__ = call
    try:
        yield rounds
    finally:
        cleaning.SelfCleaning.__call__ = original


def round_summary(maps: np.ndarray, masks: np.ndarray, sigma: float, truth: np.ndarray, kinds: np.ndarray) -> dict:
    """Per-round figures (see the module doc) from the rounds' maps ``(R, N, …grid)``, their masks (same shape,
    True = held out), the test rule's ``sigma``, the defect points ``truth`` ``(N, …grid)`` and each sample's defect
    kind ``kinds`` ``(N,)`` (``""``: normal; may be empty)."""
    z = np.stack([cleaning._log_z(m, sigma) for m in maps])
    kept = ~masks
    left_in = kept[-1] & truth
    first = z[0][kept[-1]]
    top = np.zeros_like(kept[-1])
    if first.size:
        top[kept[-1]] = first >= np.quantile(first, 1 - TOP_SHARE)
    per_kind = {}
    for kind in kind_names(kinds, len(truth)):
        these = left_in & (kinds == kind).reshape((-1,) + (1,) * (truth.ndim - 1))
        if these.any():
            per_kind[kind] = [round(float(np.median(zr[these])), 3) for zr in z]
    return {
        "held_out": [round(float(m.mean()), 4) for m in masks],
        "kept_z_over_3": [round(float((zr[k] > 3).mean()), 4) for zr, k in zip(z, kept, strict=True)],
        "left_in_defect_points": int(left_in.sum()),
        "left_in_defect_z": [round(float(np.median(zr[left_in])), 3) if left_in.any() else None for zr in z],
        "left_in_defect_z_by_kind": per_kind,
        "top_kept_z": [round(float(np.median(zr[top])), 3) if top.any() else None for zr in z],
        **last_round_catch(masks[-1], truth, kinds),
    }


def last_round_catch(mask: np.ndarray, truth: np.ndarray, kinds: np.ndarray, widen: tuple = (0, 8, 16)) -> dict:
    """Label-based figures of the last round's ``mask`` ``(N, …grid)`` against the defect points ``truth``:
    per defect kind the shares of its defective samples held out whole / in part / not at all
    (``caught_by_kind``), and what the mask widened by each of ``widen`` more points would hold out — the defect
    points and the points of the normal samples (``widened``; an offline estimate, not a refit)."""
    defective = truth.reshape(len(truth), -1).any(axis=1)
    caught = {}
    for kind in kind_names(kinds, len(truth)):
        shares = np.array([mask[i][truth[i]].mean() for i in np.flatnonzero((kinds == kind) & defective)])
        if shares.size:
            part = (shares > 0) & (shares < 1)
            caught[kind] = {
                name: round(float(np.mean(held)), 3)
                for name, held in (("whole", shares == 1), ("part", part), ("none", shares == 0))
            }
    widened = {}
    for extra in widen:
        wide = cleaning.dilate_flags(mask, extra)
        widened[str(extra)] = {
            "defect_recall": round(float(wide[truth].mean()), 4) if truth.any() else None,
            "normal_samples_held_out": round(float(wide[~defective].mean()), 4) if (~defective).any() else None,
        }
    return {"caught_by_kind": caught, "widened": widened}


SHAPES = (
    ("dilate 16", 0, 16),
    ("dilate 32", 0, 32),
    ("close 16 + dilate 16", 16, 16),
    ("close 32 + dilate 16", 32, 16),
    ("close 64 + dilate 16", 64, 16),
)


def close_flags(flagged: np.ndarray, close: int) -> np.ndarray:
    """Bool ``(N, L)``: ``flagged`` with the gaps of up to ``2 * close`` points between two flags of one sample
    filled (a morphological closing along the points that never erodes a flag, not even at the sample's ends)."""
    if close <= 0:
        return flagged
    size = (1, 2 * close + 1)
    grown = ndimage.maximum_filter(flagged, size=size, mode="constant")
    return flagged | ndimage.minimum_filter(grown, size=size, mode="nearest")


def mask_shapes(maps: np.ndarray, sigma: float, fdr: float, truth: np.ndarray) -> dict:
    """What the test rule's discoveries on ``maps`` ``(N, L)`` (at ``fdr``, smoothed by ``sigma``), shaped by each of
    :data:`SHAPES`, would hold out: the defect points of ``truth`` ``(N, L)``, the normal points of the defective
    samples and the points of the normal samples (an offline estimate: no prior, no refit)."""
    found = cleaning.benjamini_hochberg(stats.norm.sf(cleaning._log_z(maps, sigma)), fdr)
    defective = truth.any(axis=1)
    beside = ~truth & defective[:, None]  # the normal points of the defective samples
    shares = {}
    for name, close, dilate in SHAPES:
        held = cleaning.dilate_flags(close_flags(found, close), dilate)
        shares[name] = {
            key: round(float(held[where].mean()), 4) if where.any() else None
            for key, where in (
                ("defect_recall", truth),
                ("beside_defects", beside),
                ("normal_samples", np.broadcast_to(~defective[:, None], truth.shape)),
            )
        }
    return shares


def run(args: argparse.Namespace) -> dict:
    data_options = parse_data_options(args.data)
    cell = Cell(args.dataset, args.method, args.contamination, args.seed, args.preset)
    resolved = resolved_on_data(cell, data_options)
    data = load_cell_data(resolved)
    detector = build_detector(resolved, data.dims)
    if not getattr(detector, "self_clean", False):
        raise ValueError(f"{args.method!r} has no self-cleaning rounds to record: use a method that self-cleans")
    out = Path(args.out)  # created by the first write (atomic_path)
    saved = out / f"{resolved_key(resolved)}.npz"
    if saved.exists():
        with np.load(saved) as f:
            steps, maps, masks, sigma = f["steps"], f["maps"], f["masks"], float(f["sigma"])
        record = json.loads(saved.with_suffix(".json").read_text())
    else:
        if saved.with_suffix(".json").exists():
            raise ValueError(f"{saved.with_suffix('.json')} has a fit without its rounds: delete it to refit")
        with recording_rounds() as rounds:
            record = run_fit(
                args.dataset,
                args.method,
                args.contamination,
                args.seed,
                args.preset,
                ["base"],
                out,
                data_options=data_options,
            )
        steps = np.array([r[0] for r in rounds])
        maps, masks, sigma = np.stack([r[1] for r in rounds]), np.stack([r[2] for r in rounds]), rounds[0][3]
        with atomic_path(saved) as tmp, open(tmp, "wb") as fh:  # a file object: savez adds no ".npz" to it
            np.savez_compressed(fh, steps=steps, maps=maps, masks=masks, sigma=sigma)
    truth = np.asarray(data.train_mask).reshape(masks.shape[1:])
    kinds = np.asarray(data.meta.get("train_defect", ()))
    summary = {"steps": steps.tolist(), **round_summary(maps, masks, sigma, truth, kinds)}
    if truth.ndim == 2:
        summary["shapes"] = mask_shapes(maps[-1].astype(np.float64), sigma, detector.clean_fdr, truth)
    summary["test"] = record["variants"]["base"]
    atomic_write_text(saved.with_suffix(".rounds.json"), json.dumps(summary, indent=1, sort_keys=True))
    return summary


def print_summary(summary: dict) -> None:
    kinds = sorted(summary["left_in_defect_z_by_kind"])
    header = ("step", "held out", "kept z>3", "left-in defect z", *kinds, "top kept z")
    rows = []
    for i, step in enumerate(summary["steps"]):
        by_kind = [summary["left_in_defect_z_by_kind"][k][i] for k in kinds]
        values = [
            summary["held_out"][i],
            summary["kept_z_over_3"][i],
            summary["left_in_defect_z"][i],
            *by_kind,
            summary["top_kept_z"][i],
        ]
        rows.append([str(step), *("—" if v is None else f"{v:.3f}" for v in values)])
    print(markdown_table(header, rows))
    test = summary["test"]
    for kind, shares in summary["caught_by_kind"].items():
        print(
            f"{kind}: held out whole {shares['whole']:.2f}, in part {shares['part']:.2f}, "
            f"not at all {shares['none']:.2f}"
        )
    for extra, held in summary["widened"].items():
        recall, normal = held["defect_recall"], held["normal_samples_held_out"]
        print(
            f"last mask widened by {extra}: defect points held out {'—' if recall is None else f'{recall:.3f}'}, "
            f"normal samples' points {'—' if normal is None else f'{normal:.4f}'}"
        )
    for name, held in summary.get("shapes", {}).items():
        figures = ", ".join(f"{k.replace('_', ' ')} {'—' if v is None else f'{v:.3f}'}" for k, v in held.items())
        print(f"last round's discoveries, {name}: {figures}")
    print(
        f"left-in defect points: {summary['left_in_defect_points']}; test pixel AUROC {test['pixel_auroc']:.3f}, "
        f"AUPRC {test['pixel_auprc']:.3f}"
    )


def saved_rounds(rounds: str | Path, resolved: dict) -> Path:
    """Where this script saved the rounds of the cell ``resolved`` under ``--out rounds``; a one-line
    ``ValueError`` when it has not run there."""
    saved = Path(rounds) / f"{resolved_key(resolved)}.npz"
    if not saved.exists():
        raise ValueError(f"{saved} not found: run benchmarks/round_maps.py on this cell with --out {rounds}")
    return saved


def add_cell_arguments(p: argparse.ArgumentParser, preset: str = "robust") -> None:
    """The harness cell a run follows: ``--dataset --method --contamination --seed --preset --data``."""
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", default="rddpm", help="a harness spelling with self-cleaning")
    p.add_argument("--contamination", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default=preset)
    p.add_argument("--data", default="", help="data options overriding the preset's, 'key=value' separated by ','")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_cell_arguments(p)
    p.add_argument("--out", default="results/rounds")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as generalise.py: identical floating-point results
    print_summary(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
