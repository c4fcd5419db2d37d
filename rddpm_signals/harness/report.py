"""Benchmark outputs: ``results.csv`` (deterministic metrics only), ``timings.csv``, ``summary.md`` (mean ± std
over seeds, gap to the clean-trained reference) and PNG plots (AUROC against contamination, δ sensitivity, example
grids). Every file is written to a temporary name and renamed."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write_text

__all__ = ["METRICS", "write_csv", "summary_markdown", "plot_contamination", "plot_delta", "plot_examples"]

METRICS = ("pixel_auroc", "pixel_auprc", "aupro", "f1_max", "sample_auroc")
_KEYS = ("dataset", "method", "contamination", "seed")
_TIMINGS = ("fit_s", "score_s", "score_ms_per_sample")


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda r: (r["dataset"], r["method"], r["contamination"], r["seed"]))


def write_csv(rows: list[dict], out: Path) -> None:
    """``results.csv`` holds only what a rerun reproduces exactly; wall times go to ``timings.csv``."""
    for name, columns in (("results.csv", (*_KEYS, *METRICS)), ("timings.csv", (*_KEYS, *_TIMINGS))):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(_sorted(rows))
        atomic_write_text(out / name, buf.getvalue())


def _group(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["dataset"], r["method"], r["contamination"])].append(r)
    return groups


def _mean_std(values: list[float], signed: bool = False) -> str:
    fmt = "+.3f" if signed else ".3f"
    if len(values) == 1:
        return f"{values[0]:{fmt}}"
    return f"{np.mean(values):{fmt}} ± {np.std(values, ddof=1):.3f}"


def _paired_gaps(rows: list[dict], reference: list[dict]) -> list[float]:
    """``pixel_auroc`` of ``rows`` minus that of the ``reference`` row with the same seed."""
    by_seed = {r["seed"]: r["pixel_auroc"] for r in reference}
    return [r["pixel_auroc"] - by_seed[r["seed"]] for r in rows if r["seed"] in by_seed]


def summary_markdown(
    rows: list[dict], methods: list[str], metrics: tuple[str, ...] = ("pixel_auroc", "pixel_auprc")
) -> str:
    """Per dataset, one table: methods × contamination, each cell ``AUROC / AUPRC`` (mean ± std over seeds).

    When the method ``clean`` is present, a second line per method gives the AUROC gap to it (method − clean).
    """
    groups = _group(rows)
    lines: list[str] = []
    for dataset in sorted({r["dataset"] for r in rows}):
        levels = sorted({r["contamination"] for r in rows if r["dataset"] == dataset})
        seeds = sorted({r["seed"] for r in rows if r["dataset"] == dataset})
        lines += [f"### {dataset}", "", f"{' / '.join(metrics)} — seeds {seeds}", ""]
        lines.append("| method | " + " | ".join(f"{c:.0%}" for c in levels) + " |")
        lines.append("|---" * (len(levels) + 1) + "|")
        for method in methods:
            cells = []
            for c in levels:
                group = groups.get((dataset, method, c), [])
                cells.append(" / ".join(_mean_std([r[m] for r in group]) for m in metrics) if group else "—")
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        if 0.0 in levels and len(levels) > 1:
            lines += ["", "AUROC gap to the same method trained clean (its 0 % column; mean ± std over seeds):", ""]
            lines.append("| method | " + " | ".join(f"{c:.0%}" for c in levels[1:]) + " |")
            lines.append("|---" * len(levels) + "|")
            for method in methods:
                cells = []
                for c in levels[1:]:
                    gaps = _paired_gaps(groups.get((dataset, method, c), []), groups.get((dataset, method, 0.0), []))
                    cells.append(_mean_std(gaps, signed=True) if gaps else "—")
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
        if "clean" in methods:
            lines += ["", "AUROC gap to `clean` (method − clean, mean over seeds):", ""]
            lines.append("| method | " + " | ".join(f"{c:.0%}" for c in levels) + " |")
            lines.append("|---" * (len(levels) + 1) + "|")
            for method in methods:
                if method == "clean":
                    continue
                cells = []
                for c in levels:
                    group, ref = groups.get((dataset, method, c), []), groups.get((dataset, "clean", c), [])
                    if group and ref:
                        gap = np.mean([r["pixel_auroc"] for r in group]) - np.mean([r["pixel_auroc"] for r in ref])
                        cells.append(f"{gap:+.3f}")
                    else:
                        cells.append("—")
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _savefig(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_contamination(rows: list[dict], methods: list[str], path: Path, metric: str = "pixel_auroc") -> None:
    """One panel per dataset: ``metric`` (mean ± std over seeds) against training contamination, a line per method."""
    plt = _pyplot()
    groups = _group(rows)
    names = sorted({r["dataset"] for r in rows})
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, dataset in zip(axes[0], names, strict=True):
        for method in methods:
            levels = sorted(c for (d, m, c) in groups if d == dataset and m == method)
            if not levels:
                continue
            values = [[r[metric] for r in groups[(dataset, method, c)]] for c in levels]
            mean, std = np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])
            ax.errorbar(np.array(levels) * 100, mean, yerr=std, marker="o", capsize=3, label=method)
        ax.set(title=dataset, xlabel="training contamination (%)", ylabel=metric.replace("_", " "))
        ax.grid(alpha=0.3)
    # one legend under the panels, so long method names never cover a curve
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(4, len(labels)))
    _savefig(fig, path)


_DELTA = re.compile(r"(?:^|[:,])delta=([0-9.eE+-]+|inf)")


def delta_of(method: str) -> float | None:
    """The δ a method label sets (``rddpm:loss=huber,delta=0.3`` → 0.3); ``None`` if it sets none."""
    match = _DELTA.search(method)
    return float(match.group(1)) if match else None


def plot_delta(rows: list[dict], path: Path, l1_method: str | None, mse_method: str | None) -> bool:
    """AUROC against δ for the methods that set a ``delta``, with the two limits (L1 = δ → 0, MSE = δ → ∞) drawn
    at the ends; one line per dataset and contamination. Returns False (and draws nothing) without δ methods."""
    with_delta = [r for r in rows if delta_of(r["method"]) is not None]
    if not with_delta:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    deltas = sorted({delta_of(r["method"]) for r in with_delta})
    lo, hi = deltas[0] / 3, deltas[-1] * 3
    for dataset in sorted({r["dataset"] for r in with_delta}):
        for c in sorted({r["contamination"] for r in with_delta if r["dataset"] == dataset}):
            xs, ys = [], []
            for limit_x, method in ((lo, l1_method), (hi, mse_method)):
                limit = [
                    r["pixel_auroc"]
                    for r in rows
                    if (r["dataset"], r["contamination"], r["method"]) == (dataset, c, method)
                ]
                if limit:
                    xs.append(limit_x)
                    ys.append(np.mean(limit))
            for d in deltas:
                vals = [
                    r["pixel_auroc"]
                    for r in with_delta
                    if (r["dataset"], r["contamination"]) == (dataset, c) and delta_of(r["method"]) == d
                ]
                if vals:
                    xs.append(d)
                    ys.append(np.mean(vals))
            order = np.argsort(xs)
            ax.plot(np.array(xs)[order], np.array(ys)[order], marker="o", label=f"{dataset} {c:.0%}")
    ax.set_xscale("log")
    ax.set(xlabel="δ (left end: L1 = δ→0, right end: MSE = δ→∞)", ylabel="pixel AUROC", title="δ sensitivity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _savefig(fig, path)
    return True


def plot_examples(examples: dict[str, dict[str, np.ndarray]], dataset: str, path: Path) -> None:
    """Rows = methods; columns = input / reconstruction / map / truth for the first defective test sample."""
    plt = _pyplot()
    methods = list(examples)
    fig, axes = plt.subplots(len(methods), 4, figsize=(11, 1.9 * len(methods)), squeeze=False)
    for row, method in zip(axes, methods, strict=True):
        ex = examples[method]
        x, m, mask = ex["x"][0], ex["map"][0], ex["mask"][0]
        recon = ex.get("recon")
        panels = [
            ("input", x),
            ("reconstruction", None if recon is None else recon[0]),
            ("anomaly map", m),
            ("truth", mask),
        ]
        for ax, (title, value) in zip(row, panels, strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            if value is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center")
            elif value.ndim == 2 and title in ("input", "reconstruction"):  # (C, L): one line per channel
                ax.plot(value.T, lw=0.7)
            elif value.ndim == 3:  # (C, H, W)
                ax.imshow(value.mean(axis=0), cmap="gray")
            elif value.ndim == 1:
                ax.plot(value, lw=0.8, color="C3" if title != "truth" else "k")
            else:
                ax.imshow(value, cmap="magma" if title == "anomaly map" else "gray")
            if row is axes[0]:
                ax.set_title(title, fontsize=9)
        row[0].set_ylabel(method, fontsize=8)
    fig.suptitle(dataset)
    _savefig(fig, path)
