"""Method specifications for the benchmark harness: the public table of :mod:`rddpm_signals.methods` plus the
harness's own ``clean`` reference (``rddpm`` trained on the same dataset at contamination 0, the ceiling a robust
method aims at)."""

from __future__ import annotations

from ..methods import METHODS, MethodSpec
from ..methods import parse_method as _parse_public

__all__ = ["MethodSpec", "parse_method", "DIFFUSION_METHODS", "BASE_METHODS", "CLEAN"]

CLEAN = "clean"

#: constructor overrides of each diffusion method on top of the preset's per-dataset model settings
DIFFUSION_METHODS: dict[str, dict] = {
    **{name: dict(m.params) for name, m in METHODS.items() if m.detector == "RobustDiffusion"},
    CLEAN: {},
}
BASE_METHODS = (*METHODS, CLEAN)


class HarnessMethod(MethodSpec):
    """A :class:`MethodSpec` that also knows the ``clean`` reference."""

    @property
    def detector(self) -> str:
        return "RobustDiffusion" if self.base == CLEAN else super().detector

    def params(self) -> dict:
        return dict(self.overrides) if self.base == CLEAN else super().params()

    @property
    def trains_clean(self) -> bool:
        """The ``clean`` reference trains on the contamination-0 version of the dataset."""
        return self.base == CLEAN


def parse_method(text: str) -> HarnessMethod:
    """``"rddpm:delta=0.3,loss=huber"`` → a method with base ``rddpm`` and those overrides; ``clean`` too."""
    spec = _parse_public(text, extra_bases=(CLEAN,))
    return HarnessMethod(spec.base, spec.overrides, spec.label)
