"""The public table of detection methods: one place that the harness, the CLI and the docs use.

A method is named ``NAME`` or ``NAME:key=value,key=value``; the overrides go to the detector's constructor, so
``rddpm:loss=tukey,delta=3`` or ``ddpm:t0=50`` are methods too. Values are read as JSON where they parse
(``3``, ``0.5``, ``true``, ``null``, ``[1, 2]``), ``True`` / ``False`` / ``None`` as Python spells them, and as
strings otherwise.

==============  =========================================================================================
``rddpm``       ``RobustDiffusion()``: the library's default robust configuration (LTS + self-cleaning; MSE with
                flagged windows dropped whole, a flag counting in every window over it, where 1D windows overlap)
``rddpm_paper`` ``RobustDiffusion(loss="huber", delta=1.0, self_clean=False)``: the paper's fixed-δ Huber
``ddpm``        ``RobustDiffusion(loss="mse", self_clean=False)``: a plain DDPM
``anoddpm``     ``RobustDiffusion(loss="mse", noise="simplex", self_clean=False)``: AnoDDPM
``rpca``        ``RPCA()``: principal component pursuit (low rank + sparse)
``ssd``         ``SSD()``: smooth B-spline background + sparse anomalies
``discord``     ``MatrixProfile()``: matrix-profile discords against the training set (1D only)
``discord_raw`` ``MatrixProfile(normalize=False)``: the same on raw, not z-normalised, subsequences (1D only)
``iforest``     ``IsolationForestDetector()``: IsolationForest on raw samples (no localisation)
==============  =========================================================================================

Self-cleaning is on by default in ``RobustDiffusion``, so a plain DDPM is ``loss="mse"`` *with*
``self_clean=False``; ``make_detector("ddpm")`` builds exactly that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["METHODS", "MethodSpec", "parse_method", "make_detector", "detector_class", "available_methods"]


@dataclass(frozen=True)
class _Method:
    detector: str
    params: dict
    description: str


#: name → (detector class, constructor parameters, what it is)
METHODS: dict[str, _Method] = {
    "rddpm": _Method(
        "RobustDiffusion",
        {},
        "robust diffusion, the default (self-cleaning; LTS, or MSE on overlapping 1D windows; map chosen at fit)",
    ),
    "rddpm_paper": _Method(
        "RobustDiffusion",
        {"loss": "huber", "delta": 1.0, "self_clean": False, "map_normalization": "none", "map_structure": "none"},
        "robust diffusion with the paper's fixed-delta Huber loss",
    ),
    "ddpm": _Method(
        "RobustDiffusion",
        {"loss": "mse", "self_clean": False, "map_normalization": "none", "map_structure": "none"},
        "plain DDPM (MSE, the |x - x̂| map)",
    ),
    "anoddpm": _Method(
        "RobustDiffusion",
        {"loss": "mse", "noise": "simplex", "self_clean": False, "map_normalization": "none", "map_structure": "none"},
        "AnoDDPM (MSE, simplex noise)",
    ),
    "rpca": _Method("RPCA", {}, "robust PCA (principal component pursuit)"),
    "ssd": _Method("SSD", {}, "smooth-sparse decomposition (B-spline background + sparse anomaly)"),
    "discord": _Method(
        "MatrixProfile", {}, "matrix-profile discords: distance to the nearest training subsequence (1D)"
    ),
    # STUMPY's z-normalisation removes level and amplitude changes; on aligned records those are the defects
    "discord_raw": _Method(
        "MatrixProfile",
        {"normalize": False},
        "matrix-profile discords on raw subsequences of robustly scaled channels (1D; sees level changes)",
    ),
    "iforest": _Method("IsolationForestDetector", {}, "IsolationForest on raw samples (one score per sample)"),
}


def detector_class(name: str) -> type:
    """The detector class called ``name`` (``"RobustDiffusion"``, ``"RPCA"``, ``"SSD"``, …)."""
    from . import baselines
    from .detector import RobustDiffusion

    classes = {"RobustDiffusion": RobustDiffusion}
    classes.update({n: c for n in baselines.__all__ if isinstance(c := getattr(baselines, n), type)})
    if name not in classes:
        raise ValueError(f"unknown detector class {name!r}: use one of {sorted(classes)}")
    return classes[name]


def available_methods() -> list[str]:
    """Method base names, in table order."""
    return list(METHODS)


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(text, text)


@dataclass(frozen=True)
class MethodSpec:
    """A parsed method: its base name, its constructor overrides and the text it was parsed from."""

    base: str
    overrides: dict = field(default_factory=dict, hash=False)
    label: str = ""

    @property
    def detector(self) -> str:
        """Name of the detector class."""
        return METHODS[self.base].detector

    @property
    def is_diffusion(self) -> bool:
        return self.detector == "RobustDiffusion"

    def params(self) -> dict:
        """The preset's constructor parameters with the overrides on top."""
        return {**METHODS[self.base].params, **self.overrides}


def parse_method(text: str, extra_bases: tuple[str, ...] = ()) -> MethodSpec:
    """``"rddpm:delta=0.3,loss=huber"`` → ``MethodSpec("rddpm", {"delta": 0.3, "loss": "huber"})``.

    ``extra_bases`` admits names a caller adds on top of :data:`METHODS` (the harness's ``clean`` reference).
    """
    base, _, rest = str(text).strip().partition(":")
    if base not in METHODS and base not in extra_bases:
        known = [*METHODS, *extra_bases]
        raise ValueError(f"unknown method {base!r}: use one of {known} (optionally NAME:key=value,...)")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad override {item!r} in method {text!r}: write NAME:key=value,key=value")
        overrides[key.strip()] = _value(value.strip())
    return MethodSpec(base, overrides, label=str(text))


def make_detector(method: str | MethodSpec, dims: int | None = None, **params: object):
    """A fresh detector for ``method`` on ``dims``-dimensional samples (1: ``(N, C, L)``, 2: ``(N, C, H, W)``;
    ``None``: taken from the array ``fit`` gets); ``params`` (e.g. ``random_state``) go on top of the preset and the
    method's own overrides. Unknown parameter names are a one-line ValueError."""
    spec = parse_method(method) if isinstance(method, str) else method
    cls = detector_class(spec.detector)
    merged = {**spec.params(), **params}
    if "dims" in merged:  # e.g. "rddpm:dims=2"
        if dims is not None and merged["dims"] != dims:
            raise ValueError(f"method {spec.label or spec.base!r} sets dims={merged['dims']!r} but dims={dims!r}")
        dims = merged.pop("dims")
    valid = set(cls(dims=dims).get_params())
    unknown = sorted(set(merged) - valid - {"dims"})
    if unknown:
        import difflib

        names = sorted(valid - {"dims"})
        close = sorted({m for u in unknown for m in difflib.get_close_matches(u, names, n=3, cutoff=0.6)})
        hint = f"did you mean {', '.join(close)}?" if close else f"{cls.__name__}().get_params() lists all {len(names)}"
        raise ValueError(
            f"{spec.detector} has no parameter {', '.join(map(repr, unknown))} (method {spec.label or spec.base!r}): "
            f"{hint}"
        )
    return cls(dims=dims, **merged)
