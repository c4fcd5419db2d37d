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

from .._io import atomic_path, atomic_write_text, markdown_table

__all__ = [
    "METRICS",
    "write_csv",
    "summary_markdown",
    "method_styles",
    "plot_contamination",
    "plot_delta",
    "plot_examples",
]

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
        table = []
        for method in methods:
            cells = []
            for c in levels:
                group = groups.get((dataset, method, c), [])
                cells.append(" / ".join(_mean_std([r[m] for r in group]) for m in metrics) if group else "—")
            table.append([method, *cells])
        lines.append(markdown_table(["method", *(f"{c:.0%}" for c in levels)], table))
        if 0.0 in levels and len(levels) > 1:
            lines += ["", "AUROC gap to the same method trained clean (its 0 % column; mean ± std over seeds):", ""]
            table = []
            for method in methods:
                cells = []
                for c in levels[1:]:
                    gaps = _paired_gaps(groups.get((dataset, method, c), []), groups.get((dataset, method, 0.0), []))
                    cells.append(_mean_std(gaps, signed=True) if gaps else "—")
                table.append([method, *cells])
            lines.append(markdown_table(["method", *(f"{c:.0%}" for c in levels[1:])], table))
        if "clean" in methods:
            lines += ["", "AUROC gap to `clean` (method − clean, mean over seeds):", ""]
            table = []
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
                table.append([method, *cells])
            lines.append(markdown_table(["method", *(f"{c:.0%}" for c in levels)], table))
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


#: Markers cycled with the colours; 7 is coprime with the 20 colours, so the first 140 methods get distinct pairs.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
_LABELS = {"pixel_auroc": "pixel AUROC", "pixel_auprc": "pixel AUPRC", "aupro": "AUPRO", "f1_max": "F1-max"}
_LABELS["sample_auroc"] = "sample AUROC"


def method_styles(methods: list[str]) -> dict[str, dict]:
    """A distinct colour and marker per method, fixed by the order of ``methods``: the 10 dark tab20 colours first,
    then their 10 light partners, each paired with a marker from a cycle of 7 (``color``, ``marker`` kwargs)."""
    import matplotlib as mpl

    tab20 = mpl.colormaps["tab20"].colors
    colours = [*tab20[0::2], *tab20[1::2]]
    return {
        m: {"color": colours[k % len(colours)], "marker": _MARKERS[k % len(_MARKERS)]} for k, m in enumerate(methods)
    }


def plot_contamination(rows: list[dict], methods: list[str], path: Path, metric: str = "pixel_auroc") -> None:
    """One panel per dataset: ``metric`` (mean ± std over seeds) against training contamination, a line per method
    with its own colour and marker (:func:`method_styles`); one legend under the panels."""
    plt = _pyplot()
    groups = _group(rows)
    names = sorted({r["dataset"] for r in rows})
    styles = method_styles(list(methods))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False, layout="constrained")
    handles: dict[str, object] = {}
    for ax, dataset in zip(axes[0], names, strict=True):
        for method in methods:
            levels = sorted(c for (d, m, c) in groups if d == dataset and m == method)
            if not levels:
                continue
            values = [[r[metric] for r in groups[(dataset, method, c)]] for c in levels]
            mean, std = np.array([np.mean(v) for v in values]), np.array([np.std(v) for v in values])
            line = ax.errorbar(
                np.array(levels) * 100, mean, yerr=std, capsize=3, markersize=5, lw=1.2, label=method, **styles[method]
            )
            handles.setdefault(method, line)
        ax.set(title=dataset, xlabel="training contamination (%)", ylabel=_LABELS.get(metric, metric.replace("_", " ")))
        ax.grid(alpha=0.3)
    # one legend under the panels (every method once, in the given order), so long names never cover a curve
    order = [m for m in methods if m in handles]
    fig.legend(
        [handles[m] for m in order],
        order,
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=max(1, min(4, len(order))),
    )
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
    curves = [
        (dataset, c)
        for dataset in sorted({r["dataset"] for r in with_delta})
        for c in sorted({r["contamination"] for r in with_delta if r["dataset"] == dataset})
    ]
    styles = method_styles([f"{d} {c:.0%}" for d, c in curves])
    for dataset, c in curves:
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
        label = f"{dataset} {c:.0%}"
        ax.plot(np.array(xs)[order], np.array(ys)[order], label=label, **styles[label])
    ax.set_xscale("log")
    ax.set(xlabel="δ (left end: L1 = δ→0, right end: MSE = δ→∞)", ylabel="pixel AUROC", title="δ sensitivity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside the axes: never over a curve
    _savefig(fig, path)
    return True


def _shared_limits(arrays: list[np.ndarray]) -> tuple[float, float]:
    values = np.concatenate([np.ravel(a) for a in arrays]) if arrays else np.zeros(1)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _image(value: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` → an RGB ``(H, W, 3)`` in [0, 1] for 3 channels, else the channel mean (grey)."""
    if value.shape[0] == 3:
        lo, hi = float(value.min()), float(value.max())
        return np.moveaxis((value - lo) / (hi - lo if hi > lo else 1.0), 0, -1), None
    return value.mean(axis=0), "gray"


def plot_examples(examples: dict[str, dict[str, np.ndarray]], dataset: str, path: Path) -> None:
    """Rows = methods; columns = input / reconstruction / anomaly map / truth for the first defective test sample.

    ``examples[method]``: ``x`` ``(n, C, L)`` or ``(n, C, H, W)``, ``map`` and ``mask`` ``(n, L)`` or ``(n, H, W)``,
    optionally ``recon`` like ``x``. Input and reconstruction share one scale across methods. Each anomaly map has its
    own (a y-range in 1D, a colour bar in 2D; its maximum in the title): the methods' maps are in different units —
    ``|x − x̂|`` in normalised units, a discord's subsequence distance, RPCA's sparse part — so one shared scale
    would only flatten the methods with the smaller units. The truth is outlined on each map.
    """
    plt = _pyplot()
    methods = list(examples)
    first = {m: {k: v[0] for k, v in examples[m].items()} for m in methods}
    is_2d = next(iter(first.values()))["map"].ndim == 2 if methods else False
    titles = ("input", "reconstruction", "anomaly map", "truth (defect = 1)")
    width_ratios = [1, 1, 1, 1]
    fig, axes = plt.subplots(
        len(methods),
        4,
        figsize=(12, (2.3 if is_2d else 1.9) * len(methods) + 1.0),
        squeeze=False,
        layout="constrained",
        width_ratios=width_ratios,
    )
    # input and reconstruction share one scale; each map has its own (see the docstring)
    signal_lo, signal_hi = _shared_limits(
        [a for ex in first.values() for a in (ex["x"], ex.get("recon")) if a is not None]
    )
    signal_im = None
    for r, (row, method) in enumerate(zip(axes, methods, strict=True)):
        ex = first[method]
        map_lo, map_hi = _shared_limits([ex["map"]])
        panels = (ex["x"], ex.get("recon"), ex["map"], ex["mask"])
        for c, (ax, value) in enumerate(zip(row, panels, strict=True)):
            ax.tick_params(labelsize=7)
            title = titles[c]
            if c == 2:
                title = f"anomaly map (own scale, max {np.nanmax(value):.3g})"
            ax.set_title(title, fontsize=8)
            if value is None:
                ax.text(0.5, 0.5, "n/a (no reconstruction)", ha="center", va="center", fontsize=8, color="0.4")
                ax.set_xticks([])
                ax.set_yticks([])
                if is_2d:  # the same shape as its image neighbours
                    ax.set_box_aspect(ex["map"].shape[0] / ex["map"].shape[1])
                continue
            if not is_2d:
                if c < 2:  # (C, L): one line per channel
                    for ch in range(value.shape[0]):
                        ax.plot(value[ch], lw=0.7, color=f"C{ch % 10}", label=f"channel {ch}")
                    if r == 0 and c == 0 and value.shape[0] > 1:
                        ax.legend(fontsize=6, loc="upper right", ncol=2)
                    ax.set_ylim(signal_lo - 0.05 * (signal_hi - signal_lo), signal_hi + 0.05 * (signal_hi - signal_lo))
                    ax.set_ylabel("value", fontsize=7)
                elif c == 2:
                    ax.plot(value, lw=0.9, color="C3")
                    ax.fill_between(
                        np.arange(value.size),
                        map_lo,
                        map_hi,
                        where=ex["mask"] > 0,
                        color="0.6",
                        alpha=0.3,
                        lw=0,
                        label="truth",
                    )
                    ax.set_ylim(map_lo - 0.05 * (map_hi - map_lo), map_hi + 0.05 * (map_hi - map_lo))
                    ax.set_ylabel("anomaly", fontsize=7)
                else:
                    ax.step(np.arange(value.size), value, where="mid", lw=0.9, color="k")
                    ax.set_ylim(-0.1, 1.1)
                    ax.set_yticks([0, 1])
                if r == len(methods) - 1:
                    ax.set_xlabel("sample index", fontsize=7)
                ax.grid(alpha=0.3)
            else:
                if c < 2:
                    img, cmap = _image(value)
                    im = ax.imshow(img, cmap=cmap, vmin=signal_lo if cmap else None, vmax=signal_hi if cmap else None)
                    signal_im = signal_im or (im if cmap else None)
                elif c == 2:
                    map_im = ax.imshow(value, cmap="magma", vmin=map_lo, vmax=map_hi)
                    if ex["mask"].any():
                        ax.contour(ex["mask"] > 0, levels=[0.5], colors="cyan", linewidths=0.8)
                    bar = fig.colorbar(map_im, ax=ax, location="right", shrink=0.8, aspect=15)
                    bar.set_label(f"{method} anomaly (cyan: truth)", fontsize=6)
                    bar.ax.tick_params(labelsize=6)
                else:
                    ax.imshow(value > 0, cmap="gray", vmin=0, vmax=1)
                if r == len(methods) - 1:
                    ax.set_xlabel("x (px)", fontsize=7)
                ax.set_ylabel("y (px)", fontsize=7)
        row[0].set_ylabel(f"{method}\n" + row[0].get_ylabel(), fontsize=8)
    if is_2d:
        if signal_im is not None:
            fig.colorbar(signal_im, ax=axes[:, :2], location="bottom", shrink=0.6, aspect=40, label="input value")
    elif methods:
        axes[0, 2].legend(fontsize=6, loc="upper right")
    fig.suptitle(dataset)
    _savefig(fig, path)
