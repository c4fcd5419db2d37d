"""The benchmark harness behind ``benchmarks/run.py`` and ``rddpm-signals benchmark``."""

from .cells import Cell, run_cell
from .methods import MethodSpec, parse_method
from .presets import PRESETS
from .run import main, run_benchmark

__all__ = ["Cell", "run_cell", "MethodSpec", "parse_method", "PRESETS", "main", "run_benchmark"]
