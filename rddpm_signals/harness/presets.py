"""Benchmark presets: which cells to run, and the data and model sizes per dataset.

``smoke`` runs in seconds (tests, a first check of an installation).
``quick`` is the README's main command: the default, plain DDPM and the classical and matrix-profile peers on two
modalities at 0 % and 20 %, sized for ≤ 10 minutes on two CPU cores (AnoDDPM is in ``robust`` and ``full``).
``full`` is every dataset at 0 / 10 / 20 / 30 % with three seeds, sized for a GPU and resumable on a CPU (each
cell is cached as soon as it finishes). ``robust`` is the CPU-sized robust-training comparison.
``develop`` / ``validate`` are the model-selection pair: defaults are chosen on the first and confirmed on the
second, whose base processes and defect kinds were not used while choosing.
"""

from __future__ import annotations

from copy import deepcopy

__all__ = ["PRESETS", "dataset_options", "model_params"]

_ALL_METHODS = ["rddpm", "rddpm_paper", "ddpm", "anoddpm", "clean", "rpca", "ssd"]

# The development / validation grids: the discord baselines are skipped (a "—") on 2D data.
_SELECTION_METHODS = ["rddpm", "ddpm", "clean", "rpca", "ssd", "discord", "discord_raw", "iforest"]
_SELECTION_DATA = {
    **{name: {"n_train": 192, "n_test": 96} for name in ("dev_signals", "val_signals")},
    **{name: {"n_train": 160, "n_test": 64} for name in ("dev_surfaces", "val_surfaces")},
    **{name: {"n_train": 160, "n_test": 64} for name in ("whole_sample", "val_whole_sample")},
    # the long records keep their own sizes: 24 576 training points (765 windows of 128, hop 32), 8 192 test points
}
_SELECTION_MODEL = {
    **{name: {"channels": 32, "train_steps": 1000} for name in ("dev_signals", "val_signals")},
    **{name: {"channels": 32, "train_steps": 1000} for name in ("long_record", "val_long_record")},
    **{name: {"channels": 16, "train_steps": 600} for name in ("dev_surfaces", "val_surfaces")},
    **{name: {"channels": 16, "train_steps": 600} for name in ("whole_sample", "val_whole_sample")},
}
_SMOKE_MODEL = {
    "channels": 8,
    "channel_mult": (1, 2),
    "attention": False,
    "timesteps": 50,
    "t0": 5,
    "train_steps": 4,
    "batch_size": 4,
}


def _selection(datasets: list[str]) -> dict:
    """A model-selection preset (``develop`` / ``validate``): the same grid and sizes on other ``datasets``."""
    return {
        "datasets": datasets,
        "methods": _SELECTION_METHODS,
        "contamination": [0.0, 0.1, 0.2, 0.3],
        "seeds": [0, 1],
        "data": _SELECTION_DATA,
        "model": _SELECTION_MODEL,
    }


PRESETS: dict[str, dict] = {
    # Seconds, for tests and a first check of an installation; the figures mean nothing.
    "smoke": {
        "datasets": ["forging", "rolling"],
        "methods": ["rddpm", "ddpm", "anoddpm", "rpca", "ssd"],
        "contamination": [0.0, 0.2],
        "seeds": [0],
        "data": {
            "forging": {"n_train": 20, "n_test": 8, "length": 64},
            "rolling": {"size": 32, "n_train": 20, "n_test": 8},
            **{n: {"n_train": 20, "n_test": 8, "length": 64} for n in ("dev_signals", "val_signals")},
            **{
                n: {"n_train": 20, "n_test": 8}
                for n in ("dev_surfaces", "val_surfaces", "whole_sample", "val_whole_sample")
            },
            **{
                n: {"train_length": 2048, "test_length": 1024, "window": 64} for n in ("long_record", "val_long_record")
            },
        },
        "model": {name: dict(_SMOKE_MODEL) for name in ("forging", "rolling", *_SELECTION_MODEL)},
    },
    "quick": {
        "datasets": ["forging", "rolling"],
        # discord_raw (the matrix profile on raw subsequences, the stronger 1D spelling, §13) is the time-series
        # user's peer, skipped ("—") on rolling's images. STUMPY's z-normalised discord and AnoDDPM run in the
        # develop / validate / robust / full presets; here they would put the README's main command over its
        # budget (docs/RESULTS.md §1)
        "methods": ["rddpm", "ddpm", "rpca", "ssd", "discord_raw"],
        "contamination": [0.0, 0.2],
        "seeds": [0],
        "data": {
            "forging": {"n_train": 192, "n_test": 96},
            "rolling": {"size": 32, "n_train": 160, "n_test": 64},
        },
        "model": {
            "forging": {"channels": 32, "train_steps": 600},
            "rolling": {"channels": 16, "train_steps": 600},
        },
    },
    # The robust-training comparison (docs/RESULTS.md): four modalities, every contamination level, two seeds, sized
    # to finish in about two and a half hours on two CPU cores.
    "robust": {
        # brick, not grass: on grass and gravel the missing-texture defects score far below chance for every method,
        # so a contamination gap there means little (docs/RESULTS.md §8)
        "datasets": ["forging", "rolling", "machine_sound", "brick"],
        "methods": [
            "ddpm",
            "rddpm_paper",
            "rddpm:loss=l1,self_clean=false",
            "rddpm:loss=tukey,self_clean=false",
            "rddpm:loss=huber_adaptive,self_clean=false",
            "rddpm:loss=pseudo_huber_scheduled,self_clean=false",
            "rddpm:loss=lts_bucket,self_clean=false",
            "rddpm:loss=lts_element,self_clean=false",
            "rddpm:self_clean=false",
            # self-cleaning with its first settings: late start, few rounds, strict threshold
            "rddpm:clean_start=0.3,clean_rounds=3,clean_threshold=3.0",
            "rddpm",
        ],
        "contamination": [0.0, 0.1, 0.2, 0.3],
        "seeds": [0, 1],
        "data": {
            "forging": {"n_train": 192, "n_test": 96},
            "rolling": {"size": 32, "n_train": 160, "n_test": 64},
            "machine_sound": {"n_train": 160, "n_test": 64},
            "brick": {"n_train": 160, "n_test": 64},
            "grass": {"n_train": 160, "n_test": 64},
            "gravel": {"n_train": 160, "n_test": 64},
        },
        "model": {
            "forging": {"channels": 32, "train_steps": 1000},
            "rolling": {"channels": 16, "train_steps": 600},
            "machine_sound": {"channels": 16, "train_steps": 500},
            "brick": {"channels": 16, "train_steps": 600},
            "grass": {"channels": 16, "train_steps": 600},
            "gravel": {"channels": 16, "train_steps": 600},
        },
    },
    # Model selection (issue 12): choose defaults on ``develop``, confirm them on ``validate`` — other base
    # processes and other defect kinds, never used while choosing. CPU-sized like ``robust``.
    "develop": _selection(["dev_signals", "dev_surfaces", "long_record", "whole_sample"]),
    "validate": _selection(["val_signals", "val_surfaces", "val_long_record", "val_whole_sample"]),
    "full": {
        "datasets": ["forging", "rolling", "machine_sound", "brick", "grass", "gravel"],
        "methods": _ALL_METHODS,
        "contamination": [0.0, 0.1, 0.2, 0.3],
        "seeds": [0, 1, 2],
        "data": {},
        "model": {
            "forging": {"channels": 32, "train_steps": 2000},
            "rolling": {"channels": 32, "train_steps": 3000},
            "machine_sound": {"channels": 32, "train_steps": 3000},
            "brick": {"channels": 32, "train_steps": 3000},
            "grass": {"channels": 32, "train_steps": 3000},
            "gravel": {"channels": 32, "train_steps": 3000},
        },
    },
}


def _preset(name: str) -> dict:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}: use one of {sorted(PRESETS)}")
    return PRESETS[name]


def dataset_options(preset: str, dataset: str) -> dict:
    """Keyword options for ``datasets.load(dataset, ...)`` under ``preset`` (sizes)."""
    return deepcopy(_preset(preset)["data"].get(dataset, {}))


def model_params(preset: str, dataset: str) -> dict:
    """RobustDiffusion parameters for ``dataset`` under ``preset`` (before a method's own overrides)."""
    return deepcopy(_preset(preset)["model"].get(dataset, {}))
