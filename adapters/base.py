"""The adapter contract, the adapter registry, and the helpers every adapter shares.

An adapter turns a user's data ("items": waveforms, audio files, images, xarray objects) into the model's tensor and
puts a detector's anomaly maps back onto the items' own axes::

    adapter.fit(train_items)                       # learns a robust normalisation (median / IQR); returns self
    X, layout = adapter.to_tensor(items)           # X: float32 (N, C, L) or (N, C, H, W); layout: how to go back
    grid_masks = adapter.masks_to_grid(masks, layout)   # ground truth through the same cut: bool (N, L) / (N, H, W)
    out = adapter.to_signal(maps, layout)          # maps (N, L) / (N, H, W) → one map per item on its own axes

A model sample is one window / tile / clip of one item; :class:`Layout` records which item each sample came from and
where it sits, so ``to_signal`` can stitch overlapping windows back (overlaps averaged) and restore the item's own
axes (time in seconds, frequency in Hz, pixels, xarray coordinates).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import has_fit_parameter

from rddpm_signals._robust import robust_center_scale

__all__ = [
    "Adapter",
    "BaseAdapter",
    "Layout",
    "register",
    "unregister",
    "get",
    "available",
    "robust_center_scale",
    "choose_window",
    "window_starts",
    "plan_windows",
    "cut",
    "stitch",
    "overlap_share",
    "check_values",
    "check_maps",
    "mask_items",
    "as_pair",
    "positive_int",
]

REQUIRED_METHODS = ("fit", "to_tensor", "masks_to_grid", "to_signal")


@runtime_checkable
class Adapter(Protocol):
    """What the registry, the benchmark and the CLI rely on. Subclassing :class:`BaseAdapter` is optional."""

    def fit(self, items: Any) -> Adapter: ...

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]: ...

    def masks_to_grid(self, masks: Any, layout: Layout) -> np.ndarray: ...

    def to_signal(self, maps: Any, layout: Layout) -> Any: ...


@dataclass(frozen=True, eq=False)
class Layout:
    """How a model tensor was cut from its items, and what ``to_signal`` needs to go back.

    adapter: class name of the adapter that made it (``to_signal`` refuses another adapter's layout).
    record: ``(N,)`` int — the item each model sample (window, tile, clip) comes from.
    offset: ``(N, dims)`` int — where the sample starts on its item's model grid (samples, frames or pixels).
    window: the grid of one model sample, ``(L,)`` or ``(H, W)``.
    grids: per item, the item's model grid before cutting (after any resampling / resizing).
    items: per item, what the output axes need (original length or size, sample rate, coordinates, source).
    extra: adapter-wide values (frequency axis, model sample rate, an xarray template, …).
    """

    adapter: str
    record: np.ndarray
    offset: np.ndarray
    window: tuple[int, ...]
    grids: tuple[tuple[int, ...], ...]
    items: tuple[dict, ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        """Model samples ``N`` (rows of the tensor)."""
        return int(len(self.record))

    @property
    def n_items(self) -> int:
        """Input items (records, clips, images)."""
        return len(self.grids)

    @property
    def dims(self) -> int:
        """1 for ``(N, C, L)`` tensors, 2 for ``(N, C, H, W)``."""
        return len(self.window)

    @property
    def overlapping(self) -> bool:
        """Whether the samples overlap: most points of the items' grids that any sample covers lie in two or more
        (:func:`overlap_share` ≥ 0.5; a long record cut with a hop of up to about two thirds of the window). A
        detector told so (``fit(X, overlapping=True)``) knows that a point it leaves out of one sample is still seen
        in another."""
        return overlap_share(self.grids, self.record, self.offset, self.window) >= 0.5

    @property
    def positions(self) -> np.ndarray:
        """``(N, 2)`` int: each 1D sample's item and first point on that item's grid (what
        ``RobustDiffusion.fit(X, positions=...)`` takes)."""
        if self.dims != 1:
            raise ValueError(f"positions are for 1D windows; this layout's samples are {self.dims}D")
        offset = np.asarray(self.offset).reshape(self.n_samples, -1)[:, 0]
        return np.stack([np.asarray(self.record), offset], axis=1).astype(np.int64)

    def fit_keywords(self, detector: Any) -> dict[str, Any]:
        """What ``detector.fit`` takes from this layout, for the samples it describes: ``overlapping=True`` when they
        overlap and ``positions`` for 1D windows, each only where the detector's ``fit`` has that parameter
        (``RobustDiffusion``'s has both; a detector without them gets ``{}``)."""
        told: dict[str, Any] = {}
        if has_fit_parameter(detector, "overlapping") and self.overlapping:
            told["overlapping"] = True
        if self.dims == 1 and has_fit_parameter(detector, "positions"):
            told["positions"] = self.positions
        return told


# ------------------------------------------------------------------------------------------------------ registry
_REGISTRY: dict[str, type] = {}


def register(name: str, cls: type | None = None, *, overwrite: bool = False) -> Any:
    """Register adapter class ``cls`` under ``name`` (returns ``cls``); without ``cls``, a class decorator.

    ``cls`` must define ``fit``, ``to_tensor``, ``masks_to_grid`` and ``to_signal``. Re-registering a taken name
    with another class needs ``overwrite=True``.
    """
    if cls is None:

        def decorator(klass: type) -> type:
            return register(name, klass, overwrite=overwrite)

        return decorator
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"adapter name must be a non-empty string, got {name!r}")
    if not isinstance(cls, type):
        raise ValueError(f"register needs an adapter class, got {type(cls).__name__}: pass the class, not an instance")
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"{cls.__name__} lacks {', '.join(missing)}: an adapter defines {', '.join(REQUIRED_METHODS)}")
    if name in _REGISTRY and _REGISTRY[name] is not cls and not overwrite:
        raise ValueError(
            f"adapter name {name!r} is taken by {_REGISTRY[name].__name__}: pick another name or pass overwrite=True"
        )
    _REGISTRY[name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (a no-op when it is not there)."""
    _REGISTRY.pop(name, None)


def get(name: str) -> type:
    """The adapter class registered under ``name``; instantiate it with its own parameters."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown adapter {name!r}: use one of {available()} or register it first")
    return _REGISTRY[name]


def available() -> list[str]:
    """Registered adapter names, sorted."""
    return sorted(_REGISTRY)


# ------------------------------------------------------------------------------------------------------ checks
def check_values(values: Any, what: str) -> np.ndarray:
    """``values`` as a non-empty, finite float64 array; ValueError naming ``what`` otherwise."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{what} could not be read as an array ({err}): pass numeric arrays") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}: convert it to floats first")
    if np.iscomplexobj(arr):
        raise ValueError(f"{what} is complex: pass real values (e.g. the magnitude)")
    if arr.size == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape}): pass at least one value")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        raise ValueError(f"{what} contains {bad} NaN or infinite values: impute or drop them first")
    return arr


def check_maps(maps: Any, layout: Layout) -> np.ndarray:
    """Detector maps as float64 ``(N, *layout.window)``; a singleton channel axis ``(N, 1, …)`` is dropped."""
    if hasattr(maps, "detach"):  # a torch tensor, without importing torch here
        maps = maps.detach().cpu().numpy()
    arr = np.asarray(maps)
    expected = (layout.n_samples, *layout.window)
    if arr.ndim == len(expected) + 1 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.shape != expected:
        raise ValueError(
            f"maps have shape {arr.shape} but this layout needs {expected} (one map per model sample, channels "
            "merged): pass the detector's anomaly_map of the tensor that came with this layout"
        )
    return check_values(arr, "maps")


# ------------------------------------------------------------------------------------------------------ windows
def choose_window(sizes: list[int], window: int | None, hop: int | None, unit: str, option: str) -> tuple[int, int]:
    """The ``(window, hop)`` to cut records of ``sizes`` (in ``unit``) with; ``window=None`` means whole records,
    which must then all have one size. ``option`` names the parameter in the errors."""
    if window is None:
        if len(set(sizes)) > 1:
            raise ValueError(
                f"records have different lengths ({min(sizes)} … {max(sizes)} {unit}): pass {option}=... to cut "
                "them into fixed windows"
            )
        return sizes[0], sizes[0]
    window = positive_int(window, option)
    hop = window if hop is None else positive_int(hop, option.replace("window", "hop"))
    short = [i for i, n in enumerate(sizes) if n < window]
    if short:
        i = short[0]
        raise ValueError(
            f"record {i} has {sizes[i]} {unit}, shorter than one window of {window}: lower {option} or drop the "
            "short records"
        )
    return window, hop


def window_starts(size: int, window: int, hop: int) -> np.ndarray:
    """Starts of windows of ``window`` every ``hop`` along an axis of ``size``; the last window is flush with the
    end, so every position is covered at least once."""
    if window < 1 or hop < 1:
        raise ValueError(f"window and hop must be >= 1, got window={window}, hop={hop}")
    if size < window:
        raise ValueError(f"an axis of {size} is shorter than one window of {window}")
    starts = np.arange(0, size - window + 1, hop)
    if starts[-1] + window < size:
        starts = np.append(starts, size - window)
    return starts


def plan_windows(
    grids: Sequence[tuple[int, ...]], window: tuple[int, ...], hop: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Windows over every item grid → ``record`` ``(N,)`` and ``offset`` ``(N, dims)``, item by item, row-major."""
    records: list[int] = []
    offsets: list[tuple[int, ...]] = []
    for i, grid in enumerate(grids):
        axes = [window_starts(size, w, h) for size, w, h in zip(grid, window, hop, strict=True)]
        for start in product(*axes):
            records.append(i)
            offsets.append(tuple(int(s) for s in start))
    return np.asarray(records, dtype=np.int64), np.asarray(offsets, dtype=np.int64).reshape(-1, len(window))


def _slices(start: np.ndarray, window: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(int(s), int(s) + w) for s, w in zip(start, window, strict=True))


def cut(arrays: Sequence[np.ndarray], record: np.ndarray, offset: np.ndarray, window: tuple[int, ...]) -> np.ndarray:
    """Cut windows from per-item arrays ``(..., *grid)`` → ``(N, ..., *window)`` (leading axes kept)."""
    lead = (Ellipsis,)
    return np.stack([arrays[r][lead + _slices(o, window)] for r, o in zip(record, offset, strict=True)])


def stitch(maps: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """Put window maps ``(N, *window)`` back on each item's model grid, averaging where windows overlap."""
    sums = [np.zeros(grid) for grid in layout.grids]
    counts = [np.zeros(grid) for grid in layout.grids]
    for m, r, o in zip(maps, layout.record, layout.offset, strict=True):
        sl = _slices(o, layout.window)
        sums[r][sl] += m
        counts[r][sl] += 1.0
    for i, c in enumerate(counts):
        if not c.all():
            raise ValueError(f"the layout leaves part of item {i} uncovered: build it with plan_windows")
    return [s / c for s, c in zip(sums, counts, strict=True)]


def overlap_share(
    grids: Sequence[tuple[int, ...]], record: np.ndarray, offset: np.ndarray, window: tuple[int, ...]
) -> float:
    """The share of the grid points covered by samples (``record`` ``(N,)``, ``offset`` ``(N, dims)``, each
    ``window`` long, on items of ``grids``) that lie in two or more of them; 0.0 when nothing is covered."""
    counts = [np.zeros(grid, dtype=np.int32) for grid in grids]
    for r, o in zip(record, np.asarray(offset).reshape(len(record), -1), strict=True):
        counts[r][_slices(o, window)] += 1
    covered = sum(int((c > 0).sum()) for c in counts)
    return sum(int((c > 1).sum()) for c in counts) / covered if covered else 0.0


def as_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """``7`` → ``(7, 7)``; ``(h, w)`` → ``(h, w)``; both positive integers."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair of them, got {value!r}")
    return int(pair[0]), int(pair[1])


def positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------------------------ base class
class BaseAdapter(BaseEstimator):
    """Shared plumbing for the built-in adapters (scikit-learn estimator rules: ``get_params`` / ``clone`` work).

    Subclasses set ``center_`` / ``scale_`` in ``fit`` and call :meth:`_normalise` in ``to_tensor``.
    """

    #: the name the adapter is registered under
    name: str = ""

    def fit(self, items: Any) -> BaseAdapter:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        """``fit(items)`` then ``to_tensor(items)``."""
        return self.fit(items).to_tensor(items)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_channels_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit(items) first")

    def _check_layout(self, layout: Any) -> None:
        if not isinstance(layout, Layout) or layout.adapter != type(self).__name__:
            made_by = layout.adapter if isinstance(layout, Layout) else type(layout).__name__
            raise ValueError(
                f"this layout comes from {made_by}, not {type(self).__name__}: pass the layout that "
                f"{type(self).__name__}.to_tensor returned"
            )

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        """``(x - center_) / scale_`` with the statistics broadcast over the sample axis and the grid."""
        if not getattr(self, "normalise", True):
            return x
        extra = x.ndim - 1 - self.center_.ndim
        shape = self.center_.shape + (1,) * extra
        return (x - self.center_.reshape(shape)) / self.scale_.reshape(shape)


def mask_items(
    masks: Any, n_items: int, single_ndim: int, reader: Callable[[np.ndarray, int], np.ndarray]
) -> list[np.ndarray]:
    """Split ``masks`` into one mask per item and read each with ``reader(mask, index)``.

    ``masks`` is a list (one mask per item) or an array: with at most ``single_ndim`` axes it is one item's mask,
    with more its first axis runs over the items. ValueError when the count differs from the layout's items.
    """
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray):
        parts = list(masks) if masks.ndim > single_ndim else [masks]
    elif isinstance(masks, list | tuple):
        parts = list(masks)
    else:
        raise ValueError(f"masks must be a list of arrays (one per item) or an array, got {type(masks).__name__}")
    if len(parts) != n_items:
        raise ValueError(f"got {len(parts)} masks for {n_items} items: pass one mask per item, in the same order")
    out = []
    for i, part in enumerate(parts):
        if hasattr(part, "detach"):
            part = part.detach().cpu().numpy()
        arr = np.asarray(part)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"mask {i} must be boolean or numeric, got dtype {arr.dtype}")
        if arr.size and not np.isfinite(arr.astype(np.float64)).all():
            raise ValueError(f"mask {i} contains NaN or infinite values: pass a boolean mask")
        out.append(reader(arr.astype(bool) if arr.dtype != bool else arr, i))
    return out
