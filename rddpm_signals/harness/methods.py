"""Method specifications for the benchmark harness.

A method is named by a string ``NAME`` or ``NAME:key=value,key=value``; the overrides go to the detector's
constructor, so ``rddpm:loss=tukey,delta=3`` or ``ddpm:t0=50`` are methods too. Base names:

==============  =======================================================================================
``rddpm``       RobustDiffusion with the library's default robust configuration
``rddpm_paper`` RobustDiffusion with the paper's fixed-δ Huber loss (δ = 1)
``ddpm``        RobustDiffusion(loss="mse"): a plain DDPM
``anoddpm``     RobustDiffusion(loss="mse", noise="simplex"): AnoDDPM
``clean``       ``rddpm`` trained on the same dataset at contamination 0 (the ceiling a robust method aims at)
``rpca``        RPCA (principal component pursuit)
``ssd``         SSD (smooth-sparse decomposition)
==============  =======================================================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

__all__ = ["MethodSpec", "parse_method", "DIFFUSION_METHODS", "BASE_METHODS"]

#: constructor overrides of each diffusion method on top of the preset's per-dataset model settings
DIFFUSION_METHODS: dict[str, dict] = {
    "rddpm": {},
    "rddpm_paper": {"loss": "huber", "delta": 1.0, "self_clean": False, "map_normalization": "none"},
    "ddpm": {"loss": "mse", "self_clean": False, "map_normalization": "none"},
    "anoddpm": {"loss": "mse", "noise": "simplex", "self_clean": False, "map_normalization": "none"},
    "clean": {},
}
BASE_METHODS = (*DIFFUSION_METHODS, "rpca", "ssd")


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"True": True, "False": False, "None": None}.get(text, text)


@dataclass(frozen=True)
class MethodSpec:
    base: str
    overrides: dict = field(default_factory=dict, hash=False)
    label: str = ""

    @property
    def is_diffusion(self) -> bool:
        return self.base in DIFFUSION_METHODS

    @property
    def trains_clean(self) -> bool:
        """The "clean" reference trains on the contamination-0 version of the dataset."""
        return self.base == "clean"


def parse_method(text: str) -> MethodSpec:
    """``"rddpm:delta=0.3,loss=huber"`` → ``MethodSpec("rddpm", {"delta": 0.3, "loss": "huber"})``."""
    base, _, rest = text.partition(":")
    if base not in BASE_METHODS:
        raise ValueError(f"unknown method {base!r}: use one of {list(BASE_METHODS)} (optionally NAME:key=value,...)")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"bad override {item!r} in method {text!r}: write NAME:key=value,key=value")
        overrides[key.strip()] = _value(value.strip())
    return MethodSpec(base, overrides, label=text)
