"""Built-in datasets: ``load(name, contamination=0.2, seed=0, **options)`` → :class:`AnomalyDataset`.

Every generator is deterministic given ``seed``; the test split does not depend on ``contamination``.
Generators are imported on first use, so loading one dataset never pays for another's dependencies.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from .base import AnomalyDataset

__all__ = ["AnomalyDataset", "load", "register", "available", "training_windows_overlap"]

# name → "module:function" inside this package, or "module:function:first-argument"
_BUILTIN: dict[str, str] = {
    "forging": "forging:make_forging",
    "rolling": "rolling:make_rolling",
    "machine_sound": "machine_sound:make_machine_sound",
    "brick": "textures:make_texture:brick",
    "grass": "textures:make_texture:grass",
    "gravel": "textures:make_texture:gravel",
    # the development family (defaults are chosen on these) and the validation family (only to confirm them)
    "dev_signals": "signals1d:make_signals:dev",
    "val_signals": "signals1d:make_signals:val",
    "dev_surfaces": "surfaces2d:make_surfaces:dev",
    "val_surfaces": "surfaces2d:make_surfaces:val",
    "long_record": "long_record:make_long_record:dev",
    "val_long_record": "long_record:make_long_record:val",
    "whole_sample": "whole_sample:make_whole_sample:dev",
    "val_whole_sample": "whole_sample:make_whole_sample:val",
}
_REGISTERED: dict[str, Callable[..., AnomalyDataset]] = {}


def register(name: str, factory: Callable[..., AnomalyDataset]) -> None:
    """Make ``load(name, ...)`` call ``factory(contamination=, seed=, **options)``."""
    _REGISTERED[name] = factory


def available() -> list[str]:
    """Names that :func:`load` accepts."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def _factory(name: str) -> Callable[..., AnomalyDataset]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in _BUILTIN:
        raise ValueError(f"unknown dataset {name!r}: use one of {available()}")
    module, function, *first = _BUILTIN[name].split(":")
    factory = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return functools.partial(factory, *first)


def load(name: str, contamination: float = 0.2, seed: int = 0, **options) -> AnomalyDataset:
    """Generate (or read from an installed package) the dataset ``name``."""
    return _factory(name)(contamination=contamination, seed=seed, **options)


def training_windows_overlap(name: str, **options) -> bool:
    """Whether ``load(name, **options)``'s training samples are windows that overlap (its ``meta["train_layout"]``'s
    ``overlapping``), known without generating them: a built-in generator says so through a
    ``training_windows_overlap`` function of its module (the long records); any other dataset, registered ones
    included, counts as separate samples."""
    if name in _REGISTERED:
        return False
    factory = _factory(name)
    predict = getattr(importlib.import_module(factory.func.__module__), "training_windows_overlap", None)
    return bool(predict(*factory.args, **options)) if predict is not None else False
