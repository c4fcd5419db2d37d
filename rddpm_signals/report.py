"""Pictures of a result file an engineer reads at a glance: one PNG per chosen record (signal above, anomaly map
below on the same axes, flagged segments marked in both) and an ``index.html`` that lists the records by score.

Drawing conventions: a coordinate is the *left edge* of its cell (a frame starts at its time, pixel ``i`` spans
``[i, i + 1)``), so a segment ``[start, end)`` is drawn exactly over the cells it covers. Long records are reduced
for drawing to a min/max envelope per pixel column (lines) or a block max (maps, spectrograms), so a one-sample spike
keeps its height.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from ._io import atomic_path, atomic_write_text
from .results import Result, open_result

__all__ = ["write_report", "plot_record", "envelope", "block_reduce", "record_kind"]

#: Most columns (and rows) a panel is drawn with; more are reduced by an envelope / block max first.
MAX_COLUMNS = 2000
_SEG_FACE = "tab:red"
_MAX_LABELS = 8  # segments labelled with their extent in a picture; more are only marked


def envelope(values: np.ndarray, coord: np.ndarray, n_columns: int = MAX_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a long line to a min/max envelope for drawing.

    ``values``: ``(..., n)``; ``coord``: ``(n,)``. When ``n > 2 * n_columns`` the samples are split into
    ``n_columns`` consecutive bins and each bin becomes two points (its minimum, then its maximum, both at the bin's
    centre), so the drawn line reaches every extreme: returns ``(coord (2m,), values (..., 2m))``. Shorter lines are
    returned unchanged. NaNs are ignored within a bin.
    """
    values, coord = np.asarray(values), np.asarray(coord)
    n = values.shape[-1]
    if coord.shape != (n,):
        raise ValueError(f"coord has shape {coord.shape} but values have {n} samples: pass one coordinate per sample")
    if n_columns < 1:
        raise ValueError(f"n_columns={n_columns}: pass a positive number of columns")
    if n <= 2 * n_columns:
        return coord, values
    starts = np.unique(np.linspace(0, n, n_columns + 1).astype(np.int64)[:-1])
    ends = np.append(starts[1:], n)
    lo = np.fmin.reduceat(values, starts, axis=-1)
    hi = np.fmax.reduceat(values, starts, axis=-1)
    mid = (coord[starts].astype(np.float64) + coord[ends - 1].astype(np.float64)) / 2
    out = np.empty((*values.shape[:-1], 2 * starts.size), dtype=values.dtype)
    out[..., 0::2], out[..., 1::2] = lo, hi
    return np.repeat(mid, 2), out


def block_reduce(a: np.ndarray, max_shape: tuple[int, int], how: str = "max") -> np.ndarray:
    """Reduce the last two axes of ``a`` ``(..., H, W)`` to at most ``max_shape`` by blocks (``"max"`` keeps peaks,
    ``"mean"`` keeps the look of an image); smaller axes stay as they are."""
    a = np.asarray(a)
    for axis, limit in zip((-2, -1), max_shape, strict=True):
        n = a.shape[axis]
        if n <= limit:
            continue
        starts = np.unique(np.linspace(0, n, limit + 1).astype(np.int64)[:-1])
        if how == "max":
            a = np.fmax.reduceat(a, starts, axis=axis)
        elif how == "mean":
            counts = np.diff(np.append(starts, n)).astype(np.float64)
            shape = [1] * a.ndim
            shape[axis] = counts.size
            a = np.add.reduceat(a.astype(np.float64), starts, axis=axis) / counts.reshape(shape)
        else:
            raise ValueError(f"how={how!r}: use 'max' or 'mean'")
    return a


def record_kind(record: xr.Dataset, modality: str = "") -> str:
    """``"waveform"`` (1D map), ``"spectrogram"`` / ``"grid"`` (2D map on coordinates) or ``"image"`` (2D on
    pixels ``(y, x)``), from the map's dims."""
    dims = record["anomaly"].dims
    if len(dims) == 1:
        return "waveform"
    if tuple(dims[-2:]) == ("y", "x") or modality == "image":
        return "image"
    if tuple(dims[-2:]) == ("frequency", "time") or modality == "spectrogram":
        return "spectrogram"
    return "grid"


# ---------------------------------------------------------------------------------------------------------------
# helpers


class _Figures:
    """``subplots`` like pyplot's, on a bare :class:`matplotlib.figure.Figure`: no pyplot state, no backend switch in
    the caller's session (a notebook keeps its own), nothing to close."""

    @staticmethod
    def subplots(nrows: int, ncols: int, figsize: tuple[float, float], layout: str = "constrained", **kwargs):
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout=layout)
        return fig, fig.subplots(nrows, ncols, **kwargs)


def _coord(ds: xr.Dataset, dim: str, n: int) -> np.ndarray:
    if dim in ds.coords and np.issubdtype(ds[dim].dtype, np.number):
        return np.asarray(ds[dim].values, dtype=np.float64)
    return np.arange(n, dtype=np.float64)


def _unit(ds: xr.Dataset, dim: str, default: str = "") -> str:
    if dim in ds.coords:
        return str(ds[dim].attrs.get("units", default))
    return default


def _label(name: str, unit: str) -> str:
    return f"{name} ({unit})" if unit else name


def _edges(c: np.ndarray) -> np.ndarray:
    """Cell edges from left-edge coordinates: ``c`` plus one more step at the end."""
    step = c[-1] - c[-2] if c.size > 1 else 1.0
    return np.append(c, c[-1] + step)


def _uniform(c: np.ndarray) -> bool:
    if c.size < 3:
        return True
    d = np.diff(c)
    return bool(np.allclose(d, d[0], rtol=1e-3, atol=0))


def _channel_names(signal: xr.DataArray) -> list[str]:
    n = signal.sizes.get("channel", 1)
    if "channel" in signal.coords:
        return [str(v) for v in signal["channel"].values]
    return [f"channel {i}" for i in range(n)]


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _range(lo: float, hi: float) -> str:
    """``lo–hi`` with two significant digits of the width (``2000.00000–2000.00010``, ``0.500–0.550``, ``40–48``)."""
    width = abs(hi - lo)
    if float(lo).is_integer() and float(hi).is_integer():
        dec = 0
    else:
        dec = int(np.clip(np.floor(-np.log10(width)) + 2, 0, 6)) if width > 0 else 6
    return f"{lo:.{dec}f}–{hi:.{dec}f}"


def _segment_text(seg: dict, main_unit: str, second_unit: str, kind: str) -> str:
    """``1.199–1.202 s`` / ``2.00–2.50 s, 952–1143 Hz`` / ``x 40–48, y 20–26 px``."""
    if kind == "image":
        return f"x {_range(seg['start'], seg['end'])}, y {_range(seg['low'], seg['high'])} {main_unit}".rstrip()
    text = f"{_range(seg['start'], seg['end'])} {main_unit}".rstrip()
    if np.isfinite(seg["low"]) and np.isfinite(seg["high"]):
        text += f", {_range(seg['low'], seg['high'])} {second_unit}".rstrip()
    return text


def _segments(segments: xr.Dataset | None) -> list[dict]:
    if segments is None or segments.sizes.get("segment", 0) == 0:
        return []
    keys = ("start", "end", "low", "high", "peak")
    cols = {k: segments[f"segment_{k}"].values.astype(np.float64) for k in keys}
    return [{k: cols[k][j] for k in keys} for j in range(segments.sizes["segment"])]


def _widen(lo: float, hi: float, span: float, frac: float = 0.004, pad: float = 0.0) -> tuple[float, float]:
    """Grow ``[lo, hi]`` by ``pad`` × ``span`` on each side (a box then frames what it marks instead of hiding it),
    then to at least ``frac`` of the axis, so a one-sample segment stays visible."""
    lo, hi = lo - pad * span, hi + pad * span
    need = frac * span
    if hi - lo >= need:
        return lo, hi
    mid = (lo + hi) / 2
    return mid - need / 2, mid + need / 2


def _title(record: xr.Dataset, attrs: dict, n_seg: int, index: int | None) -> str:
    source = str(record.attrs.get("source", ""))
    name = Path(source).name or source or "record"
    score = float(record.attrs.get("score", np.nan))
    flagged = bool(int(record.attrs.get("flagged", 0)))
    thr = float(attrs.get("score_threshold", np.nan))
    where = f"  (record {index})" if index is not None else ""
    verdict = f"score {_fmt(score)} {'>' if flagged else '≤'} threshold {_fmt(thr)}: {'FLAGGED' if flagged else 'ok'}"
    return f"{name}{where}\n{verdict} — {n_seg} segment{'s' * (n_seg != 1)} reported"


def _box(ax, x0: float, x1: float, y0: float, y1: float, label: str | None = None) -> None:
    import matplotlib.patheffects as pe
    from matplotlib.patches import Rectangle

    rect = Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1.6)
    rect.set_path_effects([pe.Stroke(linewidth=3.4, foreground="black"), pe.Normal()])
    ax.add_patch(rect)
    if label:
        top = min(y0, y1) if ax.yaxis_inverted() else max(y0, y1)
        ax.annotate(
            label,
            (x0, top),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=7,
            color="white",
            va="bottom",
            path_effects=[pe.Stroke(linewidth=2.5, foreground="black"), pe.Normal()],
        )


def _show(ax, values: np.ndarray, x: np.ndarray, y: np.ndarray, **kwargs):
    """Draw ``values`` (rows along ``y``, columns along ``x``, left-edge coordinates) with imshow when both axes
    are uniform, else pcolormesh; returns the mappable."""
    xe, ye = _edges(x), _edges(y)
    if _uniform(x) and _uniform(y):
        return ax.imshow(
            values,
            extent=(xe[0], xe[-1], ye[0], ye[-1]),
            origin="lower",
            aspect="auto",
            interpolation="nearest",
            **kwargs,
        )
    return ax.pcolormesh(xe, ye, values, shading="flat", **kwargs)


def _map_limits(amap: np.ndarray, thr: float) -> tuple[float, float]:
    finite = amap[np.isfinite(amap)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if np.isfinite(thr):
        lo, hi = min(lo, thr), max(hi, thr)
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _mark_threshold(cbar, thr: float) -> None:
    if np.isfinite(thr):
        cbar.ax.axhline(thr, color="white", linewidth=4.0)
        cbar.ax.axhline(thr, color="tab:red", linewidth=2.2)
        cbar.set_label(f"anomaly (red line: map threshold {_fmt(thr)})")


# ---------------------------------------------------------------------------------------------------------------
# one picture per kind


def _plot_waveform(plt, record, segs, attrs, title):
    amap = record["anomaly"]
    dim = amap.dims[0]
    t = _coord(record, dim, amap.size)
    unit = _unit(record, dim, attrs.get("main_unit", "") if dim == "time" else "")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True, height_ratios=[2, 1.25])
    if "signal" in record:
        signal = record["signal"]
        sig = signal.values.reshape(-1, t.size) if signal.ndim > 1 else signal.values[None]
        names = _channel_names(signal) if signal.ndim > 1 else ["signal"]
        tx, sx = envelope(sig, t)
        for c in range(sx.shape[0]):
            top.plot(tx, sx[c], lw=0.7, color=f"C{c % 10}", label=names[c] if c < len(names) else f"channel {c}")
        if sx.shape[0] > 1 or "channel" in signal.coords:
            top.legend(fontsize=8, loc="upper right", ncol=min(4, sx.shape[0]), framealpha=0.85)
        units = str(signal.attrs.get("units", "") or attrs.get("signal_units", ""))
        top.set_ylabel(_label("signal", units))
    else:
        top.text(0.5, 0.5, "no signal stored", transform=top.transAxes, ha="center")
    tm, mx = envelope(amap.values, t)
    thr = float(attrs.get("map_threshold", np.nan))
    bottom.plot(tm, mx, lw=0.8, color="k")
    if np.isfinite(thr):
        bottom.axhline(thr, color="tab:red", ls="--", lw=1.2, label=f"map threshold {_fmt(thr)}")
        bottom.legend(fontsize=8, loc="upper right", framealpha=0.85)
    span = float(t[-1] - t[0]) if t.size > 1 else 1.0
    for j, s in enumerate(segs):
        lo, hi = _widen(s["start"], s["end"], span)
        for ax in (top, bottom):
            ax.axvspan(lo, hi, color=_SEG_FACE, alpha=0.25, lw=0)
        if j < _MAX_LABELS:
            bottom.annotate(
                _segment_text(s, unit, "", "waveform"),
                (hi, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -2),
                textcoords="offset points",
                fontsize=7,
                color="tab:red",
                va="top",
            )
    bottom.set_ylabel("anomaly")
    bottom.set_xlabel(_label(dim, unit))
    bottom.set_xlim(t[0], t[-1] if t.size > 1 else t[0] + 1)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.set_title(title, fontsize=10)
    return fig


def _plot_grid(plt, record, segs, attrs, title, kind):
    amap = record["anomaly"]
    extra = amap.dims[:-2]
    map_values = amap.values
    if extra:  # xarray with more than two dims: the maximum over the leading ones
        map_values = np.nanmax(map_values.reshape(-1, *map_values.shape[-2:]), axis=0)
    ydim, xdim = amap.dims[-2:]
    y = _coord(record, ydim, map_values.shape[0])
    x = _coord(record, xdim, map_values.shape[1])
    xunit = _unit(record, xdim, attrs.get("main_unit", "") if kind == "spectrogram" else "")
    yunit = _unit(record, ydim, attrs.get("second_unit", "") if kind == "spectrogram" else "")
    thr = float(attrs.get("map_threshold", np.nan))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.8), sharex=True, sharey=True)
    shape = (MAX_COLUMNS, MAX_COLUMNS)
    if "signal" in record:
        signal = record["signal"]
        sig = signal.values.reshape(-1, *amap.shape)  # (C, *extra, H, W)
        nch = sig.shape[0]
        what = "signal" + (f" (mean of {nch} channels)" if nch > 1 else "")
        sig = np.nanmean(sig, axis=0) if nch > 1 else sig[0]
        if extra:  # show the slice of the leading dims where the map peaks
            flat = amap.values.reshape(-1, map_values.size)
            k = int(np.nanargmax(np.nanmax(flat, axis=1)))
            where = zip(extra, np.unravel_index(k, amap.shape[:-2]), strict=True)
            sig = sig.reshape(-1, *map_values.shape)[k]
            what += " at " + ", ".join(f"{d}={_coord(record, d, amap.sizes[d])[i]:g}" for d, i in where)
            what += " (where the map peaks)"
        sig = block_reduce(sig, shape, "max")
        units = str(signal.attrs.get("units", "") or attrs.get("signal_units", ""))
        finite = sig[np.isfinite(sig)]
        vmin, vmax = np.percentile(finite, [1, 99.9]) if finite.size else (0, 1)
        im = _show(top, sig, _reduced(x, sig.shape[1]), _reduced(y, sig.shape[0]), cmap="magma", vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=top, label=_label("level", units), pad=0.015, fraction=0.04)
        top.set_ylabel(_label(ydim, yunit))
        top.set_title(f"{title}\n{what}", fontsize=10)
    mv = block_reduce(map_values, shape, "max")
    vmin, vmax = _map_limits(mv, thr)
    im = _show(bottom, mv, _reduced(x, mv.shape[1]), _reduced(y, mv.shape[0]), cmap="viridis", vmin=vmin, vmax=vmax)
    cbar = fig.colorbar(im, ax=bottom, pad=0.015, fraction=0.04)
    _mark_threshold(cbar, thr)
    what = "anomaly map" + (" (maximum over " + ", ".join(extra) + ")" if extra else "")
    bottom.set_title(f"{what}; boxes: segments above the map threshold {_fmt(thr)}", fontsize=9)
    bottom.set_ylabel(_label(ydim, yunit))
    bottom.set_xlabel(_label(xdim, xunit))
    xe, ye = _edges(x), _edges(y)
    for j, s in enumerate(segs):
        x0, x1 = _widen(s["start"], s["end"], xe[-1] - xe[0], 0.015, 0.005)
        if np.isfinite(s["low"]):
            y0, y1 = _widen(s["low"], s["high"], ye[-1] - ye[0], 0.04, 0.01)
        else:
            y0, y1 = ye[0], ye[-1]
        for ax in (top, bottom):
            _box(ax, x0, x1, y0, y1, _segment_text(s, xunit, yunit, kind) if ax is bottom and j < _MAX_LABELS else None)
    return fig


def _reduced(c: np.ndarray, n: int) -> np.ndarray:
    """Left-edge coordinates of ``n`` cells spanning the same range as ``c`` (after a block reduction)."""
    if c.size == n:
        return c
    edges = _edges(c)
    return np.linspace(edges[0], edges[-1], n + 1)[:-1]


def _plot_image(plt, record, segs, attrs, title):
    import matplotlib as mpl

    amap = record["anomaly"]
    mv = amap.values
    height, width = mv.shape[-2:]
    ydim, xdim = amap.dims[-2:]
    y0, x0 = _coord(record, ydim, height)[0], _coord(record, xdim, width)[0]
    extent = (x0, x0 + width, y0 + height, y0)  # pixel i spans [i, i + 1); row 0 at the top
    thr = float(attrs.get("map_threshold", np.nan))
    shape = (MAX_COLUMNS, MAX_COLUMNS)
    img, cmap = None, None
    if "signal" in record:
        sig = record["signal"].values.reshape(-1, height, width).astype(np.float64)
        if sig.shape[0] == 3:
            img = np.moveaxis(block_reduce(sig, shape, "mean"), 0, -1)
        else:
            img, cmap = block_reduce(np.nanmean(sig, axis=0), shape, "mean"), "gray"
        lo, hi = np.nanmin(img), np.nanmax(img)
        if lo < 0 or hi > 1:  # raw values: stretch for display only
            img = (img - lo) / (hi - lo if hi > lo else 1.0)
    aspect = width / height
    fig_w = 12.0
    fig, axes = plt.subplots(1, 2, figsize=(fig_w, max(3.2, min(8.0, fig_w / 2 / aspect + 1.4))))
    left, right = axes
    mv = block_reduce(mv, shape, "max")
    vmin, vmax = _map_limits(mv, thr)
    for ax in axes:
        if img is not None:
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, extent=extent, interpolation="nearest")
        ax.set_xlabel(_label(xdim, "px"))
        ax.set_ylabel(_label(ydim, "px"))
    base = mpl.colormaps["inferno"]
    overlay = base
    if img is not None:  # transparent where the map is low, opaque where it is high: the image stays readable
        colours = base(np.linspace(0, 1, 256))
        colours[:, 3] = np.linspace(0.0, 0.85, 256) ** 0.7
        overlay = mpl.colors.ListedColormap(colours)
    norm = mpl.colors.Normalize(vmin, vmax)
    right.imshow(mv, cmap=overlay, norm=norm, extent=extent, interpolation="nearest")
    cbar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=base), ax=right, shrink=0.85)
    _mark_threshold(cbar, thr)
    left.set_title("image" + ("" if segs else " (no segment)"), fontsize=9)
    right.set_title(f"anomaly map over the image (map threshold {_fmt(thr)})", fontsize=9)
    for j, s in enumerate(segs):
        xa, xb = _widen(s["start"], s["end"], width, 0.02, 0.006)
        ya, yb = _widen(s["low"], s["high"], height, 0.02, 0.006) if np.isfinite(s["low"]) else (y0, y0 + height)
        for ax in axes:
            _box(ax, xa, xb, ya, yb, _segment_text(s, "px", "px", "image") if ax is left and j < _MAX_LABELS else None)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_record(
    record: xr.Dataset,
    segments: xr.Dataset | None,
    attrs: dict,
    path: str | os.PathLike,
    dpi: int = 110,
    index: int | None = None,
) -> Path:
    """Draw one record (a group of the result file) with its segments (rows of the segment table) to ``path``.

    ``attrs``: the result's attributes (thresholds, units, modality). Waveforms: signal over the map on one time
    axis; spectrograms / other 2D grids: signal image over map image with colour bars; images: the image and the map
    over it, in pixels. Written atomically; returns ``path``.
    """
    if "anomaly" not in record:
        raise ValueError("record has no 'anomaly' map: pass a group of a result file")
    if record["anomaly"].ndim < 1:
        raise ValueError("record's anomaly map is a scalar: nothing to draw")
    plt = _Figures()
    segs = _segments(segments)
    title = _title(record, attrs, len(segs), index)
    kind = record_kind(record, str(attrs.get("modality", "")))
    if kind == "waveform":
        fig = _plot_waveform(plt, record, segs, attrs, title)
    elif kind == "image":
        fig = _plot_image(plt, record, segs, attrs, title)
    else:
        fig = _plot_grid(plt, record, segs, attrs, title, kind)
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi)
    return path


# ---------------------------------------------------------------------------------------------------------------
# the index page


def _png_name(i: int, source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(source).stem)[:60].strip("._") or "record"
    return f"r{i:05d}_{stem}.png"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flagged td.flag { color: #b00; font-weight: bold; }
img { border: 1px solid #ccc; }
.meta { color: #555; font-size: 90%; }
"""


def _index_html(result: Result, rows: list[dict], note: str, with_images: bool) -> str:
    attrs = result.attrs
    esc = html.escape
    meta = ", ".join(
        f"{k} {esc(str(attrs[k]))}"
        for k in ("modality", "method", "adapter", "model", "threshold_method")
        if str(attrs.get(k, ""))
    )
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>rddpm-signals report: {esc(result.path.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Anomaly report: {esc(result.path.name)}</h1>",
        f'<p class="meta">{esc(str(result.path))}<br>{meta}<br>'
        f"rddpm-signals {esc(str(attrs.get('rddpm_signals_version', '')))}</p>",
        f"<p><b>{esc(note)}</b></p>",
        "<table><tr><th>rank</th><th>file</th><th>score</th><th>flagged</th><th>segments</th>"
        + ("<th>picture</th>" if with_images else "")
        + "</tr>",
    ]
    for r in rows:
        segs = r["segments"]
        seg_html = "<br>".join(esc(s) for s in segs[:20])
        if len(segs) > 20:
            seg_html += f"<br>… and {len(segs) - 20} more"
        cells = [
            f'<td class="num">{r["rank"]}</td>',
            f'<td title="{esc(r["source"])}">{esc(Path(r["source"]).name or r["source"])}'
            f'<br><span class="meta">record {r["index"]}</span></td>',
            f'<td class="num">{r["score"]:.4g}</td>',
            f'<td class="flag">{"yes" if r["flagged"] else "no"}</td>',
            f"<td>{seg_html or '—'}</td>",
        ]
        if with_images:
            png = esc(r["png"])
            cells.append(f'<td><a href="{png}"><img src="{png}" width="420" alt="{png}"></a></td>')
        out.append(f'<tr class="{"flagged" if r["flagged"] else ""}">' + "".join(cells) + "</tr>")
    out += ["</table>", "</body></html>", ""]
    return "\n".join(out)


def write_report(
    result_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    which: str = "flagged",
    top: int | None = None,
    dpi: int = 110,
) -> Path:
    """One PNG per chosen record and ``index.html`` (records by score, with segments and thumbnails) in ``out_dir``.

    ``which``: ``"flagged"`` (records whose score passed the threshold) or ``"all"``; ``top``: at most this many, the
    highest scores first. With nothing flagged the index says so and lists the ``top`` (default 10) highest scores
    without pictures. Returns the path of ``index.html``.
    """
    if which not in ("flagged", "all"):
        raise ValueError(f"which={which!r}: use 'flagged' or 'all'")
    if top is not None and int(top) < 1:
        raise ValueError(f"top={top}: pass a positive number of records (or None for all)")
    result = open_result(result_path)
    table, attrs = result.table, result.attrs
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = attrs.get("modality", "")
    main_unit, second_unit = str(attrs.get("main_unit", "")), str(attrs.get("second_unit", ""))

    scores = table["score"].values.astype(np.float64)
    flagged = table["flagged"].values.astype(bool)
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    chosen = [i for i in order if flagged[i]] if which == "flagged" else list(order)
    n_chosen = len(chosen)
    if top is not None:
        chosen = chosen[: int(top)]
    thr = float(attrs.get("score_threshold", np.nan))
    n_flag = int(flagged.sum())
    with_images = bool(chosen)
    if not chosen:  # nothing flagged: still show where the scores stand
        chosen = list(order[: int(top) if top is not None else 10])
        note = (
            f"No record flagged: all {result.n_records} scores ≤ threshold {thr:.4g}. "
            f"The {len(chosen)} highest scores are listed below (no pictures)."
        )
    else:
        note = f"{result.n_records} records, {n_flag} flagged (score > {thr:.4g}); "
        note += f"showing {len(chosen)} of {n_chosen} {'flagged' if which == 'flagged' else ''} records".replace(
            "  ", " "
        )
        note += f", by score; segments: map > {float(attrs.get('map_threshold', np.nan)):.4g}."

    rows = []
    sources = table["source"].values
    for rank, i in enumerate(chosen, 1):
        segs = _segments(result.segments_of(i))
        seg_kind = "image" if kind == "image" else "other"
        row = {
            "rank": rank,
            "index": int(i),
            "source": str(sources[i]),
            "score": float(scores[i]),
            "flagged": bool(flagged[i]),
            "segments": [_segment_text(s, main_unit, second_unit, seg_kind) for s in segs],
            "png": _png_name(int(i), str(sources[i])),
        }
        if with_images:
            plot_record(result.record(int(i)), result.segments_of(i), attrs, out_dir / row["png"], dpi, int(i))
        rows.append(row)
    index = out_dir / "index.html"
    atomic_write_text(index, _index_html(result, rows, note, with_images))
    return index
