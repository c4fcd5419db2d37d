"""Images → ``(N, C, H, W)`` tensors (resized, or tiled into patches); maps back at each image's original size.

Items: PIL images, image file paths (anything Pillow reads), numpy arrays or torch tensors — ``(H, W)`` one grey
image, ``(H, W, C)`` with ``C`` in 1, 3, 4 one image (channels last), ``(N, H, W)`` N grey images,
``(N, H, W, C)`` N images — or a list of any of these (sizes may differ). 8-bit and 16-bit integers are scaled to
``[0, 1]``; floats are kept as they are. ``color="grey"`` converts colour with the ITU-R BT.601 luma weights,
``"rgb"`` repeats a grey image into three channels (alpha is dropped); ``"auto"`` picks grey when every training
image is grey.

``size`` resizes every image (bilinear, antialiased) before ``tile`` cuts it into ``tile`` patches every ``stride``
pixels (the last row / column of tiles is flush with the edge). ``to_signal`` averages overlapping tile maps back
and resizes the result to the original height × width, so a map lies pixel for pixel on its image. Masks take the
same path: resized with the same bilinear filter and kept where at least half a pixel is marked, then tiled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .base import (
    BaseAdapter,
    Layout,
    as_pair,
    check_maps,
    check_values,
    cut,
    mask_items,
    plan_windows,
    robust_center_scale,
    stitch,
)

__all__ = ["ImageAdapter", "read_image"]

COLORS = ("auto", "grey", "rgb")
_LUMA = np.array([0.299, 0.587, 0.114])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file with Pillow → float64 ``(C, H, W)`` (C = 1 or 3; 8/16-bit scaled to [0, 1])."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file {str(path)!r} does not exist: check the path")
    try:
        with Image.open(path) as img:
            img.load()
            return _from_pil(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"could not decode image file {str(path)!r} ({err}): pass an image Pillow can read") from None


def _from_pil(img: Any) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img, dtype=np.float64)[None] / 65535.0
    if img.mode in ("I", "F"):
        return np.asarray(img, dtype=np.float64)[None]
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB" if img.mode in ("RGBA", "P", "CMYK", "YCbCr", "LA", "RGBX") else "L")
    arr = np.asarray(img, dtype=np.float64) / 255.0
    return arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)


def _from_array(arr: np.ndarray, index: int) -> np.ndarray:
    """An array image ``(H, W)`` or ``(H, W, C)`` → float64 ``(C, H, W)``."""
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        arr = np.moveaxis(arr, -1, 0)
    elif arr.ndim == 2:
        arr = arr[None]
    else:
        raise ValueError(f"image {index} has shape {arr.shape}: pass (H, W) or (H, W, C) with C in 1, 3, 4")
    values = check_values(arr, f"image {index}")
    if arr.dtype == np.uint8:
        values = values / 255.0
    elif arr.dtype == np.uint16:
        values = values / 65535.0
    return values[:3]  # drop alpha


def _resize(x: np.ndarray, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize ``(..., H, W)`` → ``(..., *size)`` with torch (antialiased when shrinking)."""
    import torch
    import torch.nn.functional as F

    if x.shape[-2:] == size:
        return x
    lead = x.shape[:-2]
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(1, -1, *x.shape[-2:])
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    out = F.interpolate(t, size=size, mode=mode, align_corners=False, antialias=shrink)
    return out.reshape(*lead, *size).numpy()


class ImageAdapter(BaseAdapter):
    """Images of any size → float32 ``(N, C, H, W)``; tile or image maps → one ``(y, x)`` map per image.

    Parameters
    ----------
    size: resize every image to this ``(height, width)`` (an int: square) first; ``None``: keep sizes.
    tile: cut (resized) images into patches of this size; ``None``: one sample per image (all images must then
        share a size).
    stride: pixels between tile starts (``None``: ``tile``, no overlap).
    color: ``"auto"``, ``"grey"`` or ``"rgb"`` — the model's channels (1 or 3).
    normalise: subtract each channel's median and divide by its IQR / 1.349, learned in ``fit``.

    Fitted attributes: ``n_channels_``, ``center_`` / ``scale_`` ``(C,)``.
    ``to_signal`` returns a list with one ``xarray.DataArray`` per image, dims ``("y", "x")`` with pixel
    coordinates at the original size (attrs ``height``, ``width``, ``source``).
    """

    name = "image"

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        tile: int | tuple[int, int] | None = None,
        stride: int | tuple[int, int] | None = None,
        color: str = "auto",
        normalise: bool = True,
    ):
        self.size = size
        self.tile = tile
        self.stride = stride
        self.color = color
        self.normalise = normalise

    # --------------------------------------------------------------------------------------------- reading
    def read_item(self, item: Any, index: int) -> tuple[np.ndarray, str | None]:
        """One image → float64 ``(C, H, W)`` and its source path (or ``None``)."""
        from PIL import Image

        if isinstance(item, str | os.PathLike):
            return read_image(item), str(item)
        if isinstance(item, Image.Image):
            return _from_pil(item), None
        if hasattr(item, "detach"):
            item = item.detach().cpu().numpy()
        return _from_array(np.asarray(item), index), None

    @staticmethod
    def _split_items(items: Any) -> list[Any]:
        from PIL import Image

        if hasattr(items, "detach"):
            items = items.detach().cpu().numpy()
        if isinstance(items, np.ndarray):
            if items.ndim == 2 or (items.ndim == 3 and items.shape[-1] in (1, 3, 4)):
                return [items]
            if items.ndim in (3, 4):
                return list(items)
            raise ValueError(
                f"an image array must be (H, W), (H, W, C), (N, H, W) or (N, H, W, C), got shape {items.shape}"
            )
        if isinstance(items, str | os.PathLike | Image.Image):
            return [items]
        if isinstance(items, list | tuple):
            return list(items)
        raise ValueError(f"cannot read images from a {type(items).__name__}: pass arrays, PIL images or paths")

    def _images(self, items: Any) -> tuple[list[np.ndarray], list[str | None]]:
        parts = self._split_items(items)
        if not parts:
            raise ValueError("no images given (empty input): pass at least one image")
        images, sources = [], []
        for i, part in enumerate(parts):
            img, source = self.read_item(part, i)
            images.append(img)
            sources.append(source)
        return images, sources

    def _to_channels(self, img: np.ndarray, channels: int) -> np.ndarray:
        if img.shape[0] == channels:
            return img
        if channels == 1:
            return np.tensordot(_LUMA, img, axes=1)[None]
        return np.repeat(img, 3, axis=0)

    # --------------------------------------------------------------------------------------------- geometry
    def _geometry(self, sizes: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], tuple[int, int], tuple[int, int]]:
        """Model grids (after resizing), the tile, the stride."""
        grids = sizes if self.size is None else [as_pair(self.size, "size")] * len(sizes)
        if self.tile is None:
            if len(set(grids)) > 1:
                raise ValueError(
                    f"images have different sizes ({sorted(set(grids))[:3]} …): pass size=... to resize them or "
                    "tile=... to cut patches"
                )
            return grids, grids[0], grids[0]
        tile = as_pair(self.tile, "tile")
        stride = tile if self.stride is None else as_pair(self.stride, "stride")
        for i, grid in enumerate(grids):
            if grid[0] < tile[0] or grid[1] < tile[1]:
                raise ValueError(
                    f"image {i} is {grid[0]}×{grid[1]} pixels, smaller than one tile of {tile[0]}×{tile[1]}: lower "
                    "tile or resize with size=..."
                )
        return grids, tile, stride

    # --------------------------------------------------------------------------------------------- API
    def fit(self, items: Any) -> ImageAdapter:
        """Learn the channel count (grey / RGB) and each channel's median / IQR from ``items``."""
        if self.color not in COLORS:
            raise ValueError(f"color must be one of {COLORS}, got {self.color!r}")
        self.__dict__.pop("n_channels_", None)
        images, _ = self._images(items)
        if self.color == "auto":
            channels = 3 if any(img.shape[0] == 3 for img in images) else 1
        else:
            channels = 1 if self.color == "grey" else 3
        grids, _, _ = self._geometry([img.shape[1:] for img in images])
        pixels = [
            _resize(self._to_channels(img, channels), g).reshape(channels, -1)
            for img, g in zip(images, grids, strict=True)
        ]
        self.center_, self.scale_ = robust_center_scale(np.concatenate(pixels, axis=1))
        self.n_channels_ = channels
        return self

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        """``items`` → ``(X, layout)``: ``X`` float32 ``(N, C, tile_h, tile_w)`` (or the image / resized size)."""
        self._check_fitted()
        images, sources = self._images(items)
        sizes = [tuple(int(s) for s in img.shape[1:]) for img in images]
        grids, tile, stride = self._geometry(sizes)
        data = [_resize(self._to_channels(img, self.n_channels_), g) for img, g in zip(images, grids, strict=True)]
        record, offset = plan_windows(grids, tile, stride)
        x = self._normalise(cut(data, record, offset, tile))
        info = tuple({"size": s, "source": src} for s, src in zip(sizes, sources, strict=True))
        return x.astype(np.float32), Layout(type(self).__name__, record, offset, tile, tuple(grids), info)

    def masks_to_grid(self, masks: Any, layout: Layout) -> np.ndarray:
        """Per-image masks ``(H, W)`` at the original size → bool ``(N, tile_h, tile_w)``."""
        self._check_layout(layout)

        def read(mask: np.ndarray, i: int) -> np.ndarray:
            size = layout.items[i]["size"]
            if mask.ndim == 3 and mask.shape[-1] == 1:
                mask = mask[..., 0]
            if mask.shape != size:
                raise ValueError(f"mask {i} has shape {mask.shape} but image {i} is {size}: pass (H, W) masks")
            return _resize(mask.astype(np.float64), layout.grids[i]) >= 0.5

        grid_masks = mask_items(masks, layout.n_items, 2, read)
        return cut(grid_masks, layout.record, layout.offset, layout.window).astype(bool)

    def to_signal(self, maps: Any, layout: Layout) -> list[xr.DataArray]:
        """Tile or image maps ``(N, h, w)`` → one ``DataArray`` ``(y, x)`` per image at its original size."""
        self._check_layout(layout)
        out = []
        for m, info in zip(stitch(check_maps(maps, layout), layout), layout.items, strict=True):
            height, width = info["size"]
            values = _resize(m, (height, width))
            attrs = {"height": height, "width": width}
            if info.get("source"):
                attrs["source"] = info["source"]
            coords = {"y": np.arange(height), "x": np.arange(width)}
            out.append(xr.DataArray(values, dims=("y", "x"), coords=coords, attrs=attrs, name="anomaly"))
        return out
