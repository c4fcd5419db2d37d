"""Labelled data (xarray DataArray / Dataset, netCDF files) → model tensors; maps back with the same coordinates.

Dimensions are recognised by name: ``record`` (optional — one record when absent), ``channel`` (optional), and
either ``time`` (1D, ``(N, C, L)``) or ``y`` and ``x`` (2D, ``(N, C, H, W)``). A Dataset's data variables become
channels, in their order (they must share their dimensions). Any other dimension is a ValueError: rename it, or
select one value of it with ``.isel``.

``to_signal`` returns one DataArray named ``"anomaly"`` with the input's dimensions less ``channel``, the input's
coordinates along them (index and non-index coordinates alike) and the input's attrs. :func:`read_netcdf` and
:func:`write_netcdf` read and write netCDF files (writing goes through a temporary file, renamed when complete).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from rddpm_signals._io import atomic_path

from .base import (
    BaseAdapter,
    Layout,
    as_pair,
    check_maps,
    check_values,
    cut,
    plan_windows,
    positive_int,
    robust_center_scale,
    stitch,
)

__all__ = ["XarrayAdapter", "read_netcdf", "write_netcdf"]

GRIDS = {1: ("time",), 2: ("y", "x")}


def _engine() -> str:
    """The netCDF writer: netCDF4 or h5netcdf (netCDF4 / HDF5 files) when their libraries are installed, else
    ``None``, which lets xarray fall back to scipy (netCDF3 files)."""
    import importlib.util

    for engine, modules in (("netcdf4", ("netCDF4",)), ("h5netcdf", ("h5netcdf", "h5py"))):
        if all(importlib.util.find_spec(m) is not None for m in modules):
            return engine
    return "scipy"


def read_netcdf(path: str | os.PathLike, variable: str | None = None) -> xr.Dataset | xr.DataArray:
    """Read a netCDF file fully into memory (the file is closed on return): the Dataset, or one ``variable``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"netCDF file {str(path)!r} does not exist: check the path")
    try:
        with xr.open_dataset(path) as ds:
            ds = ds.load()
    except Exception as err:  # each backend raises its own error types for a corrupt file
        raise ValueError(
            f"could not read netCDF file {str(path)!r} ({type(err).__name__}: {err}): pass a file xarray can open"
        ) from None
    if variable is None:
        return ds
    if variable not in ds.data_vars:
        raise ValueError(f"netCDF file {str(path)!r} has no variable {variable!r}: use one of {list(ds.data_vars)}")
    return ds[variable]


def write_netcdf(obj: xr.DataArray | xr.Dataset, path: str | os.PathLike) -> Path:
    """Write a DataArray (an unnamed one as ``"anomaly"``) or Dataset to netCDF at ``path``, atomically."""
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=obj.name if obj.name is not None else "anomaly")
    if not isinstance(obj, xr.Dataset):
        raise ValueError(f"write_netcdf needs an xarray DataArray or Dataset, got {type(obj).__name__}")
    path = Path(path)
    with atomic_path(path) as tmp:
        obj.to_netcdf(tmp, engine=_engine())
    return path


class XarrayAdapter(BaseAdapter):
    """DataArray / Dataset with named dims → float32 ``(N, C, L)`` or ``(N, C, H, W)``; maps → a DataArray with
    the input's coordinates and attrs.

    Parameters
    ----------
    window: cut ``time`` into windows of this many samples, or ``(y, x)`` into tiles of this size (an int: square);
        ``None``: one model sample per record.
    hop: samples / pixels between window starts (``None``: ``window``, no overlap).
    normalise: subtract each channel's median and divide by its IQR / 1.349, learned in ``fit``.

    Fitted attributes: ``dims_`` (1 or 2), ``n_channels_``, ``channels_`` (channel labels), ``center_`` /
    ``scale_`` ``(C,)``.
    """

    name = "xarray"

    def __init__(
        self,
        window: int | tuple[int, int] | None = None,
        hop: int | tuple[int, int] | None = None,
        normalise: bool = True,
    ):
        self.window = window
        self.hop = hop
        self.normalise = normalise

    # --------------------------------------------------------------------------------------------- reading
    @staticmethod
    def _as_dataarray(items: Any) -> xr.DataArray:
        if isinstance(items, str | os.PathLike):
            items = read_netcdf(items)
        if isinstance(items, xr.Dataset):
            if not items.data_vars:
                raise ValueError("the Dataset has no data variables (empty input): pass one with data")
            if "channel" in items.dims:
                raise ValueError(
                    "the Dataset already has a 'channel' dim and its variables would become channels too: pass "
                    "ds[name] for one variable"
                )
            dims = {name: var.dims for name, var in items.data_vars.items()}
            if len(set(dims.values())) > 1:
                raise ValueError(f"the Dataset's variables have different dims {dims}: select variables that agree")
            da = items.to_dataarray(dim="channel")
            return da.assign_attrs(items.attrs)
        if isinstance(items, xr.DataArray):
            return items
        raise ValueError(f"XarrayAdapter needs a DataArray, a Dataset or a netCDF path, got {type(items).__name__}")

    def _read(self, items: Any) -> tuple[xr.DataArray, np.ndarray, tuple[str, ...]]:
        """→ the DataArray, its values float64 ``(N, C, *grid)`` and the output dims."""
        da = self._as_dataarray(items)
        dims = set(da.dims)
        if "time" in dims:
            n = 1
        elif {"y", "x"} <= dims:
            n = 2
        else:
            raise ValueError(
                f"the DataArray has dims {da.dims} but needs 'time' (1D) or 'y' and 'x' (2D): rename its dims"
            )
        unknown = dims - {"record", "channel", *GRIDS[n]}
        if unknown:
            raise ValueError(
                f"the DataArray has dims {sorted(unknown)} the adapter does not know: rename them to record / "
                "channel, or select one value with .isel"
            )
        if hasattr(self, "dims_") and n != self.dims_:
            raise ValueError(f"the adapter was fitted on {self.dims_}D data but got {n}D dims {da.dims}")
        if da.dtype == object or not (np.issubdtype(da.dtype, np.number) or da.dtype == bool):
            raise ValueError(f"the DataArray must be numeric, got dtype {da.dtype}: convert it to floats first")
        order = ("record", "channel", *GRIDS[n])
        full = da
        for dim in ("record", "channel"):
            if dim not in dims:
                full = full.expand_dims(dim)
        values = check_values(full.transpose(*order).values, "the DataArray")
        out_dims = tuple(d for d in order if d in dims and d != "channel")
        return da, values, out_dims

    def _geometry(self, grid: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        if self.window is None:
            return grid, grid
        if self.dims_ == 1:
            window = (positive_int(self.window, "window"),)
            hop = window if self.hop is None else (positive_int(self.hop, "hop"),)
        else:
            window = as_pair(self.window, "window")
            hop = window if self.hop is None else as_pair(self.hop, "hop")
        if any(g < w for g, w in zip(grid, window, strict=True)):
            raise ValueError(
                f"the records' grid {grid} is smaller than one window {window}: lower window or pass longer records"
            )
        return window, hop

    # --------------------------------------------------------------------------------------------- API
    def fit(self, items: Any) -> XarrayAdapter:
        """Learn the layout (1D / 2D, channels) and each channel's median / IQR from a DataArray or Dataset."""
        for attr in ("n_channels_", "dims_"):
            self.__dict__.pop(attr, None)
        da, values, _ = self._read(items)
        self.dims_ = 1 if "time" in da.dims else 2
        self._geometry(values.shape[2:])
        channels = values.shape[1]
        self.center_, self.scale_ = robust_center_scale(np.moveaxis(values, 1, 0).reshape(channels, -1))
        self.channels_ = tuple(da["channel"].values.tolist()) if "channel" in da.coords else tuple(range(channels))
        self.n_channels_ = int(channels)
        return self

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        """A DataArray / Dataset → ``(X, layout)``: ``X`` float32 ``(N, C, *window)``, one row per window."""
        self._check_fitted()
        da, values, out_dims = self._read(items)
        if values.shape[1] != self.n_channels_:
            raise ValueError(
                f"the data have {values.shape[1]} channels but the adapter was fitted on {self.n_channels_}: "
                "pass data with the fitted channels"
            )
        grid = tuple(values.shape[2:])
        window, hop = self._geometry(grid)
        grids = (grid,) * values.shape[0]
        record, offset = plan_windows(grids, window, hop)
        x = self._normalise(cut(list(values), record, offset, window))
        coords = {name: coord.variable.copy() for name, coord in da.coords.items() if set(coord.dims) <= set(out_dims)}
        extra = {"dims": out_dims, "coords": coords, "attrs": dict(da.attrs), "has_record": "record" in da.dims}
        return x.astype(np.float32), Layout(type(self).__name__, record, offset, window, grids, (), extra)

    def masks_to_grid(self, masks: Any, layout: Layout) -> np.ndarray:
        """A mask DataArray (dims as the output, ``channel`` merged with *any*) or an array of the output's shape
        → bool ``(N, *window)``."""
        self._check_layout(layout)
        dims = layout.extra["dims"]
        if isinstance(masks, xr.DataArray):
            if "channel" in masks.dims:
                masks = masks.any("channel")
            if set(masks.dims) != set(dims):
                raise ValueError(f"the mask has dims {masks.dims} but the maps have {dims}: pass a mask on {dims}")
            masks = masks.transpose(*dims).values
        arr = np.asarray(masks)
        if not layout.extra["has_record"]:
            arr = arr[None]
        expected = (layout.n_items, *layout.grids[0])
        if arr.shape != expected:
            raise ValueError(f"the mask has shape {arr.shape} but the data have {expected}: pass a mask on {dims}")
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"the mask must be boolean or numeric, got dtype {arr.dtype}")
        return cut(list(arr.astype(bool)), layout.record, layout.offset, layout.window)

    def to_signal(self, maps: Any, layout: Layout) -> xr.DataArray:
        """Maps ``(N, *window)`` → one DataArray ``"anomaly"`` with the input's dims (less ``channel``), coords and
        attrs (overlapping windows averaged)."""
        self._check_layout(layout)
        values = np.stack(stitch(check_maps(maps, layout), layout))
        if not layout.extra["has_record"]:
            values = values[0]
        coords = {name: var.copy() for name, var in layout.extra["coords"].items()}
        return xr.DataArray(
            values, dims=layout.extra["dims"], coords=coords, attrs=dict(layout.extra["attrs"]), name="anomaly"
        )
