"""Saving and loading without pickled code: one loader for every detector, and adapters as plain state.

Each detector keeps its own file format (``RobustDiffusion``: a ``torch.save`` archive read with
``weights_only=True``; ``RPCA`` / ``SSD`` and the other baselines: an ``.npz`` read with ``allow_pickle=False``).
:func:`load_detector` tells them apart and loads any of them; :func:`detector_to_bytes` /
:func:`detector_from_bytes` carry a fitted detector inside another file (the CLI's model file). Every detector's file
keeps its fitted ``dims_`` (files written before it was stored take it from the ``dims`` parameter). An adapter is
saved as its class name, its constructor parameters and its fitted attributes — numbers, strings, tuples and arrays
only.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "detector_kind",
    "load_detector",
    "detector_to_bytes",
    "detector_from_bytes",
    "adapter_state",
    "adapter_from_state",
]


# The tag a baseline's .npz carries where it differs from the class name.
_CLASS_OF_TAG = {"IsolationForest": "IsolationForestDetector"}


def detector_kind(source: str | os.PathLike | bytes) -> str:
    """The detector class name a saved detector file (or its bytes) holds; ValueError for anything else."""
    name = "the model bytes" if isinstance(source, bytes) else repr(str(source))
    handle = io.BytesIO(source) if isinstance(source, bytes) else source
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ValueError(f"no saved detector at {name}: check the path")
    try:
        with zipfile.ZipFile(handle) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(
            f"{name} is not a saved detector ({type(err).__name__}): pass a file written by save()"
        ) from None
    if "_kind.npy" in names:
        with np.load(io.BytesIO(source) if isinstance(source, bytes) else source, allow_pickle=False) as data:
            tag = str(data["_kind"])
        return _CLASS_OF_TAG.get(tag, tag)
    if any(n.endswith("/data.pkl") for n in names):
        return "RobustDiffusion"
    raise ValueError(f"{name} is not a saved detector: pass a file written by a detector's save()")


def load_detector(path: str | os.PathLike, device: str | None = None) -> Any:
    """Load any saved detector (``RobustDiffusion``, ``RPCA``, ``SSD``, …) from ``path``; nothing is unpickled.

    ``device`` overrides the saved device of a ``RobustDiffusion``.
    """
    from .methods import detector_class

    kind = detector_kind(path)
    cls = detector_class(kind)
    if kind == "RobustDiffusion":
        return cls.load(path, device=device)
    return cls.load(path)


def detector_to_bytes(detector: Any) -> bytes:
    """The bytes of ``detector.save(...)``: a fitted detector as a blob to embed in another file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "detector"
        detector.save(path)
        return path.read_bytes()


def detector_from_bytes(blob: bytes, device: str | None = None) -> Any:
    """Inverse of :func:`detector_to_bytes`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "detector"
        path.write_bytes(blob)
        return load_detector(path, device=device)


def plain_scalar(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (``torch.load(weights_only=True)`` refuses numpy scalars);
    anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------------------------------------------ adapters
def _plain(value: Any, what: str) -> Any:
    """``value`` in types ``torch.load(weights_only=True)`` reads back: arrays become tensors."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{what}: cannot save an array of dtype {value.dtype}")
        return {"__array__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return plain_scalar(value)
    if isinstance(value, tuple):
        return {"__tuple__": [_plain(v, what) for v in value]}
    if isinstance(value, list):
        return [_plain(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, what) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(f"{what}: cannot save a value of type {type(value).__name__} (numbers, strings, arrays only)")


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__array__"}:
            return value["__array__"].numpy()
        if set(value) == {"__tuple__"}:
            return tuple(_restore(v) for v in value["__tuple__"])
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def _adapter_name(cls: type) -> str:
    import adapters

    for name in adapters.available():
        if adapters.get(name) is cls:
            return name
    return f"{cls.__module__}:{cls.__qualname__}"


def adapter_state(adapter: Any) -> dict:
    """A fitted adapter as ``{"name", "params", "fitted"}`` of plain values (see :func:`adapter_from_state`)."""
    fitted = {k: v for k, v in vars(adapter).items() if k.endswith("_") and not k.startswith("_")}
    if not fitted:
        raise ValueError(f"this {type(adapter).__name__} is not fitted: fit it before saving")
    what = f"adapter {type(adapter).__name__}"
    return {
        "name": _adapter_name(type(adapter)),
        "params": _plain(adapter.get_params(), what),
        "fitted": _plain(fitted, what),
    }


def adapter_from_state(state: dict) -> Any:
    """Rebuild a fitted adapter from :func:`adapter_state`'s dict; the class is found by registered name, entry
    point or ``module:Class`` (see :func:`rddpm_signals.files.resolve_adapter`)."""
    from .files import resolve_adapter

    cls = resolve_adapter(state["name"])
    adapter = cls(**_restore(state["params"]))
    for key, value in _restore(state["fitted"]).items():
        setattr(adapter, key, value)
    return adapter
