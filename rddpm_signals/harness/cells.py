"""One benchmark cell: (dataset, method, contamination, seed) under a preset → metrics, cached on disk.

A cell is a pure function of its resolved configuration (data options, detector class and parameters, seeds), so
its cache key is a hash of that configuration: an interrupted run resumes, a finished cell is never recomputed,
and changing any setting gives a new key instead of a stale result.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .. import __version__, datasets
from .._io import atomic_path, atomic_write_text
from ..cleaning import auto_by_layout, auto_signature, is_auto
from ..metrics import evaluate
from .methods import DIFFUSION_METHODS, parse_method
from .presets import dataset_options, model_params

__all__ = [
    "Cell",
    "resolved_key",
    "run_cell",
    "cached_cell",
    "compute_cell",
    "store_cell",
    "build_detector",
    "load_cell_data",
    "N_EXAMPLES",
]

N_EXAMPLES = 3  # defective test samples kept per cell for the example grids

# Parameters added after cells were cached, with the value that reproduces the code before them. At that value
# they are left out of the key, so the cells cached before they existed stay valid.
_ADDED_PARAMS = {
    "clean_refits": 0,
    "clean_rule": "share",
    "clean_fdr": 0.01,
    "clean_samples": False,
    "clean_sample_refine": False,
    "clean_sample_sticky": False,
    "clean_across_windows": False,
    "clean_prior": "none",
    "clean_prior_m": None,
    "clean_prior_reference": "halves",
    "clean_prior_k": 1,
    "map_t0s": None,
    "map_structure": "none",
    "score_mode": "quantile",
    "checkpoint_every": 500,
    "resume": True,
}


@dataclass(frozen=True)
class Cell:
    dataset: str
    method: str
    contamination: float
    seed: int
    preset: str = "quick"

    def resolved(self, data_options: dict | None = None) -> dict:
        """Everything that determines the cell's result; ``data_options`` over the preset's dataset options (another
        sample length, say)."""
        options = {**dataset_options(self.preset, self.dataset), **(data_options or {})}
        spec = parse_method(self.method)
        train_contamination = 0.0 if spec.trains_clean else self.contamination
        if spec.is_diffusion:
            params = {**model_params(self.preset, self.dataset), **DIFFUSION_METHODS[spec.base], **spec.overrides}
            params.update(random_state=self.seed, verbose=False)
            detector = "RobustDiffusion"
        else:
            params = spec.params()
            detector = spec.detector
        # Every parameter, defaults included: two spellings of one configuration share one key (and one fit), and
        # a changed library default gives a new key instead of a stale cached result.
        params = _detector_class(detector)(dims=1, **params).get_params()
        params.pop("dims")
        if detector == "RobustDiffusion":
            # Key, and pass, what "auto" resolves to on this dataset (fit_detector's overlapping= then changes nothing).
            # The built-in sets cut with overlap are the long records, all 1D (tests/test_harness.py checks).
            overlapping = datasets.training_windows_overlap(self.dataset, **options)
            recipe = auto_by_layout(1, overlapping, params["self_clean"], params["clean_samples"])
            resolvable = (("clean_samples", "samples"), ("loss", "loss"), ("clean_across_windows", "across_windows"))
            for name, setting in resolvable:
                if is_auto(params[name]):
                    params[name] = recipe[setting]
        if detector == "RobustDiffusion" and not params["self_clean"]:
            # Settings of a switched-off feature change nothing: keep them out of the key, so a new default for
            # them does not invalidate the cells that never used them.
            params = {k: v for k, v in params.items() if not k.startswith("clean_")}
        params = {k: v for k, v in params.items() if k not in _ADDED_PARAMS or v != _ADDED_PARAMS[k]}
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
        resolved = {
            "dataset": self.dataset,
            "data_options": options,
            "train_contamination": train_contamination,
            "seed": self.seed,
            "detector": detector,
            "params": params,
            "version": __version__,
        }
        if any(k.startswith("clean_") and is_auto(v) for k, v in params.items()):
            # "auto" reads the same whatever it resolves to: key what it resolves to as well
            resolved["auto_cleaning"] = auto_signature()
        return resolved

    def key(self) -> str:
        return resolved_key(self.resolved())


def resolved_key(resolved: dict) -> str:
    """The cache key of a resolved cell configuration (:meth:`Cell.resolved`, possibly edited by a caller)."""
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _detector_class(name: str) -> type:
    from ..methods import detector_class

    return detector_class(name)


def load_cell_data(resolved: dict):
    """The dataset a resolved cell configuration trains and tests on."""
    return datasets.load(
        resolved["dataset"],
        contamination=resolved["train_contamination"],
        seed=resolved["seed"],
        **resolved["data_options"],
    )


def fit_detector(detector, data) -> None:
    """``detector.fit`` on ``data``'s training samples, told what the layout they were cut with knows
    (``Layout.fit_keywords``: ``overlapping``, ``positions``) when the set has one (``meta["train_layout"]``: the
    long records, machine sound). What ``"auto"`` resolves to is already in the cell's parameters
    (:meth:`Cell.resolved`), so ``overlapping`` changes nothing here; ``positions`` let flags spread across windows."""
    layout = data.meta.get("train_layout") if isinstance(data.meta, dict) else None
    detector.fit(data.train_x, **(layout.fit_keywords(detector) if layout is not None else {}))


def build_detector(resolved: dict, dims: int):
    """The detector a resolved cell configuration describes. The key leaves out parameters added after it was
    defined while they hold their original value (``_ADDED_PARAMS``); they are set back here, since the library's
    default may have moved since (``map_structure``: ``"none"`` → ``"auto"``, and a cell that pins ``"none"`` must
    not get the choice)."""
    cls = _detector_class(resolved["detector"])
    known = cls(dims=dims).get_params()
    dropped = {k: v for k, v in _ADDED_PARAMS.items() if k in known and k not in resolved["params"]}
    if resolved["params"].get("self_clean") is False:  # its clean_* settings were left out as unused, not as original
        dropped = {k: v for k, v in dropped.items() if not k.startswith("clean_")}
    return cls(dims=dims, **{**dropped, **resolved["params"]})


def _graded(data, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The maps and masks the pixel metrics compare: the window maps themselves, or for a long record (a dataset
    with point masks) the maps stitched back onto the record, scored per point."""
    if "test_point_mask" in data.meta:  # machine sound carries a layout too, but is scored per clip
        from ..datasets.long_record import point_maps

        return point_maps(data, maps)
    return maps, data.test_mask


def run_cell(cell: Cell, cache_dir: str | Path) -> dict:
    """Metrics of ``cell`` (from the cache when present). Writes ``<key>.json`` and ``<key>.npz`` (examples).

    The local executor calls this in its worker; the Ray executor runs :func:`compute_cell` in a Ray task and
    :func:`store_cell` in the driver — the same two steps, so both write the same files."""
    cached = cached_cell(cell, cache_dir)
    if cached is not None:
        return cached
    result, examples = compute_cell(cell)
    store_cell(cell, cache_dir, result, examples)
    return result


def cached_cell(cell: Cell, cache_dir: str | Path) -> dict | None:
    """The cached result of ``cell``, or None when it has not run."""
    path = Path(cache_dir) / f"{cell.key()}.json"
    if not path.exists():
        return None
    # Cells that resolve to the same configuration share a result ("clean" at every contamination level): label it
    # with this cell.
    return {**json.loads(path.read_text()), **asdict(cell)}


def compute_cell(cell: Cell) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Fit and score ``cell`` → its result row and its example arrays (``x``, ``map``, ``mask``, maybe ``recon``:
    the first :data:`N_EXAMPLES` defective test samples); no examples for a skipped cell. Writes nothing."""
    resolved = cell.resolved()
    data = load_cell_data(resolved)
    supported = getattr(_detector_class(resolved["detector"]), "supported_dims", (1, 2))
    if data.dims not in supported:  # e.g. the matrix profile on images: a "—" in the table, not a crash
        skipped = f"{resolved['detector']} does not score {data.dims}D"
        return {**asdict(cell), "key": cell.key(), "skipped": skipped}, None
    detector = build_detector(resolved, data.dims)
    start = time.perf_counter()
    fit_detector(detector, data)
    fit_s = time.perf_counter() - start
    maps = detector.anomaly_map(data.test_x)
    score_s = time.perf_counter() - start - fit_s
    scores = detector.score_maps(maps)
    result = {
        **asdict(cell),
        "key": cell.key(),
        **{k: round(v, 6) for k, v in evaluate(*_graded(data, maps), scores, data.test_label).items()},
        "fit_s": round(fit_s, 2),
        "score_s": round(score_s, 2),
        "score_ms_per_sample": round(1000 * score_s / len(data.test_x), 2),
    }
    idx = np.flatnonzero(data.test_label)[:N_EXAMPLES]
    examples = {"x": data.test_x[idx], "map": maps[idx], "mask": data.test_mask[idx]}
    if hasattr(detector, "reconstruct"):
        examples["recon"] = detector.reconstruct(data.test_x[idx])
    return result, examples


def store_cell(cell: Cell, cache_dir: str | Path, result: dict, examples: dict[str, np.ndarray] | None) -> None:
    """Write what :func:`compute_cell` gave to the cache: ``<key>.npz`` (when there are examples), then
    ``<key>.json`` last, each atomically — a cell whose JSON exists is complete."""
    cache_dir = Path(cache_dir)
    if examples is not None:
        with atomic_path(cache_dir / f"{cell.key()}.npz") as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, **examples)
    atomic_write_text(cache_dir / f"{cell.key()}.json", json.dumps(result, indent=1, sort_keys=True))
