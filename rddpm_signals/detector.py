"""RobustDiffusion: a DDPM trained with a robust noise-prediction loss, used as an anomaly detector.

Fitting learns a robust per-channel normalisation (median / IQR: the training data are contaminated) and trains a
UNet on the normalised samples. Scoring noises each sample part-way (``t0`` forward steps), denoises it back to a
"healthy" reconstruction ``x̂`` and maps ``|x - x̂|`` (in normalised units, averaged over channels).

Self-cleaning is on by default, so plain DDPM is ``RobustDiffusion(loss="mse", self_clean=False)`` and AnoDDPM
``RobustDiffusion(loss="mse", noise="simplex", self_clean=False)``; :mod:`rddpm_signals.methods` holds the table of
these presets (``make_detector("ddpm")``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.base import clone

from ._io import atomic_torch_save
from ._robust import median_mad, robust_center_scale
from ._validation import check_fitted, is_count
from .base import BaseDetector, quantile_scores, smooth_maps
from .cleaning import (
    AUTO,
    CLEAN_PRIORS,
    PRIOR_REFERENCES,
    SelfCleaning,
    auto_by_layout,
    auto_prior_m,
    check_cleaning_settings,
    check_window_positions,
    discord_maps,
    flag_discord_maps,
    is_auto,
    record_discord_maps,
    resolve_auto,
)
from .diffusion.noise import make_noise_fn
from .diffusion.sampler import SAMPLERS
from .diffusion.schedule import NoiseSchedule
from .distributed import Shard, prepare, resolve_device
from .losses import LOSSES, make_loss
from .maps import (
    MAP_STRUCTURES,
    SCORE_MODES,
    EnergyReference,
    RobustSampleScore,
    combine_maps,
    sample_features,
    structure_error,
)
from .nets.unet import UNet
from .persistence import plain_scalar
from .scoring import PositionNormalizer, ReconstructionSettings, error_maps
from .subsequences import default_m, profile_maps, reference_of
from .synthetic import choose_by_injection, inject_defects, outlier_share
from .training import TrainConfig, TrainResult, autocast, train

__all__ = ["RobustDiffusion", "channel_center_scale", "scale_channels"]

FORMAT_VERSION = 2
MAP_NORMALIZATIONS = ("none", "position")
# Offsets that keep the random streams of initialisation, training and scoring apart for one random_state.
_TRAIN_STREAM, _SCORE_STREAM, _AUTO_STREAM = 1, 2, 3
# map_structure="auto": training samples given synthetic defects; "bulk" replaces "none" only when the
# reconstruction map ranks those defects below AUTO_BLIND pixel AUROC, "bulk" ranks them AUTO_MARGIN higher, and the
# texture map singles out more training samples (scores beyond AUTO_TAIL_K robust SDs) than the reconstruction map
AUTO_SAMPLES, AUTO_BLIND, AUTO_MARGIN, AUTO_TAIL_K = 64, 0.6, 0.05, 3.0
# map_structure="discord": the matrix profile's reference holds at most DISCORD_REFERENCE points per channel; its
# scales come from up to DISCORD_SCALE_SAMPLES training samples of the second half (after a DISCORD_GAP-sample gap,
# so overlapping windows of one record do not match themselves) scored against the first half
DISCORD_REFERENCE, DISCORD_SCALE_SAMPLES, DISCORD_GAP, DISCORD_MIN_SAMPLES = 20000, 64, 4, 10


def _required_positions(positions: object, n_samples: int, dims: int, setting: str, instead: str) -> np.ndarray:
    """``positions`` checked (:func:`~rddpm_signals.cleaning.check_window_positions`) for a ``setting`` that needs
    them, or a one-line ``ValueError`` naming it and the setting to pass ``instead``."""
    if dims != 1 or positions is None:
        raise ValueError(
            f"{setting} needs 1D windows and fit(X, positions=...) — each window's record and first point (an "
            f"adapter Layout's record and offset[:, 0]); or pass {instead}"
        )
    return check_window_positions(positions, n_samples)


def channel_center_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel robust centre and scale of ``X`` ``(N, C, …)`` → two float32 ``(C,)`` arrays."""
    center, scale = robust_center_scale(np.moveaxis(X, 1, 0).reshape(X.shape[1], -1))
    return center.astype(np.float32), scale.astype(np.float32)


def scale_channels(X: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``X`` ``(N, C, …grid)`` in the robust per-channel units of ``center`` / ``scale`` ``(C,)``
    (:func:`channel_center_scale`), same shape; the dtype follows numpy's promotion of the three."""
    shape = (1, -1) + (1,) * (X.ndim - 2)
    return (X - center.reshape(shape)) / scale.reshape(shape)


def _seed(random_state: int | None, stream: int) -> int:
    return (0 if random_state is None else int(random_state)) * 1000003 + stream


def _saved_dims(state: dict, path: Path) -> int:
    """The fitted ``dims_`` of a saved state; files written before ``dims_`` existed have it as the ``dims``
    parameter (then always 1 or 2)."""
    dims = state.get("dims", state["params"].get("dims"))
    if dims not in (1, 2):
        raise ValueError(f"{str(path)!r} does not say whether it holds a 1D or 2D model: re-save it")
    return int(dims)


def _generator(random_state: int | None, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(random_state, stream))


_CHECKPOINT_FORMAT = "rddpm-signals-checkpoint/1"
# settings that leave training unchanged (scoring, I/O): not part of a checkpoint's fingerprint
_NOT_TRAINING = frozenset(
    {
        "verbose",
        "device",
        "checkpoint_path",
        "checkpoint_every",
        "resume",
        "sampler",
        "reverse_steps",
        "eta",
        "n_reconstructions",
        "scoring_batch_size",
        "score_quantile",
        "score_mode",
        "map_normalization",
        "map_t0s",
        "map_structure",
    }
)


class RobustDiffusion(BaseDetector):
    """Robust denoising diffusion anomaly detector for ``(N, C, L)`` signals (``dims=1``) or ``(N, C, H, W)``
    images (``dims=2``).

    Parameters
    ----------
    dims: 1, 2 or ``None`` (the default: taken from the array ``fit`` gets, a 3-D ``(N, C, L)`` → 1, a 4-D
        ``(N, C, H, W)`` → 2; the resolved value is the fitted attribute ``dims_``).
    loss: the noise-prediction loss: ``"auto"`` (the default) is ``"mse"`` for self-cleaned 1D samples that overlap
        (``fit(X, overlapping=True)``) where flagged windows are dropped whole (``clean_samples`` ``"auto"`` or
        ``"flagged"``), and ``"lts"`` everywhere else (:func:`rddpm_signals.cleaning.auto_by_layout`; the fitted
        attribute ``loss_`` says which); or one of :data:`rddpm_signals.losses.LOSSES`: ``"mse"`` (plain DDPM),
        ``"l1"``, ``"huber"``, ``"pseudo_huber"``, ``"lts"`` (the paper's), and the variants ``"huber_adaptive"``,
        ``"pseudo_huber_scheduled"``, ``"lts_bucket"``, ``"lts_element"``, ``"lts_test"``, ``"tukey"``,
        ``"cauchy"``, ``"geman_mcclure"`` (see :mod:`rddpm_signals.losses.objectives`).
    delta: the loss's threshold: Huber δ / pseudo-Huber c in noise units, or for the scaled variants a multiple of
        the running robust residual scale; for ``lts_test`` the outlier cut, in robust standard deviations of the
        log loss. ``None`` takes the loss's default.
    trim: share trimmed by the LTS losses (samples, or elements for ``lts_element``; the most ``lts_test`` trims);
        ``None``: the default.
    channels, channel_mult, num_res_blocks, attention: UNet width, levels, depth, mid-level attention.
    timesteps, schedule: length and kind (``"linear" | "cosine"``) of the noise schedule.
    train_steps, batch_size, lr, weight_decay, ema_decay, grad_clip: the optimisation (AdamW; the EMA weights
        are used for scoring).
    precision: ``"fp32"`` or ``"bf16"`` (autocast, for training and scoring).
    train_t_max: train only on timesteps below this (``None``: the whole schedule). Scoring never uses
        ``t >= t0``, so ``train_t_max`` a little above ``t0`` spends the training budget where it is used.
    t0: forward steps of the partial diffusion at scoring time (``0 … timesteps``).
    reverse_steps: reverse steps back from ``t0`` (``None``: all ``t0`` of them); fewer run a respaced chain. The
        default, 10 ancestral steps from ``t0 = 100``, scored as well as the full 100- and 250-step chains in
        ``benchmarks/speed.py`` at a tenth of the cost; multi-step DDIM scored lower.
    sampler: ``"ddpm"`` (ancestral) or ``"ddim"``; eta: DDIM stochasticity (0 = deterministic).
    noise: ``"gaussian"`` or ``"simplex"`` (AnoDDPM), for training and scoring alike.
    self_clean: after ``clean_start`` of the training steps, score the training set ``clean_rounds`` times with the
        current model and drop from the loss the points ``clean_rule`` flags, together with every point within
        ``clean_dilate`` of one (and, from the first step, the points ``clean_prior`` holds out). On by default
        (docs/RESULTS.md §2). The settings that default to ``"auto"`` (``clean_rule``, ``clean_rounds``,
        ``clean_dilate``, ``clean_prior``, ``clean_prior_m``) follow the kind of sample
        (:data:`rddpm_signals.cleaning.AUTO_CLEANING`; a fit records its choice in ``clean_settings_``): for 1D
        signals the ``"test"`` rule, 10 rounds, dilation 32 (``L // 4`` if shorter; §30d) and the discord prior of
        64 points (``L // 2`` if shorter); for images and spectrograms the ``"share"`` rule, 5 rounds, dilation 2
        and no prior (§27d). The share rule drops the points whose per-position robust z-score exceeds
        ``clean_threshold`` (at most a ``clean_max_share`` of all points). It starts early (10 % of the steps,
        before the model has learnt the rare defects) and flags aggressively (z > 1.5, so the cap decides). The cap
        applies *before* the dilation, and flagged points are scattered, so the share excluded is far larger than
        the cap: measured about a third of the points on forging strokes and 87–90 % on 32 × 32 images and
        spectrograms, covering 92–99 % of the defect points (``benchmarks/cleaning.py``). Excluding the same
        share at random scored far lower (machine sound, 30 %: 0.73–0.74 against 0.83–0.89 AUROC), as did capping
        the share after the dilation; ``clean_mask_.mean()`` reports the share a fit excluded. It costs
        ``clean_rounds`` cheap scorings of the training set.
    clean_refits: with self-cleaning, train this many more times, each from a fresh network with the points the
        previous run excluded held out from the first step (and cleaning on top). Each refit costs a whole fit.
        One refit raised machine-sound AUROC at every contamination level (+0.004 to +0.029) but lowered rolling
        by 0.013–0.021 and moved forging and grass by at most 0.007 (docs/RESULTS.md §8), so the default is 0.
    clean_rule: how self-cleaning flags points: ``"auto"`` (the default: ``"test"`` for 1D signals, ``"share"`` for
        images and spectrograms), ``"share"`` (the rule above) or ``"test"``: a point is flagged only
        when its smoothed log-map z-score (per position, median / MAD over the training samples) is significant
        against that bulk under a Benjamini–Hochberg false-discovery rate ``clean_fdr`` over all points, then dilated
        by ``clean_dilate``; on data without defects it flags (almost) nothing (:mod:`rddpm_signals.cleaning`).
        Against the share rule on fresh fits (docs/RESULTS.md §20b, §21): within 0.002 AUROC of it or above on 14 of 15
        clean fits and on every waveform fit at 20 %, but it misses most low-contrast texture defects (brick at
        20 %: −0.032 and −0.082 on two seeds) and, at 30 %, lost ``val_signals`` (−0.016 AUROC, −0.077 AUPRC).
        For waveforms, ``clean_rule="test", clean_samples="two_sided", clean_sample_refine=True,
        clean_sample_sticky=True, clean_rounds=10`` (opt-in) was ahead of the share rule on the mean over three fresh
        data seeds in all twelve (set, contamination) groups of four waveform sets (§23; the two validation sets at
        20–30 %: +0.016 to +0.033 AUROC, +0.033 to +0.092 AUPRC) but behind on forging (AUPRC −0.013 at 20 %,
        −0.023 at 30 %; AUROC −0.002, −0.003), where the share rule holds out 0.91–0.94 of the defect points and
        it 0.66–0.79; so it is not the default. Without the sample drops and with the discord prior (the 1D
        ``"auto"`` recipe) it held forging (§27d).
    clean_fdr: the false-discovery rate of the ``"test"`` rule and of ``clean_samples``.
    clean_samples: with self-cleaning, also drop whole training samples: ``"auto"`` (the default) is ``"flagged"``
        for 1D samples that overlap (``fit(X, overlapping=True)``: windows cut with a short hop from long records,
        as :class:`~rddpm_signals.AnomalyModel` and the CLI pass when the adapter's ``Layout.overlapping``), else
        ``False`` (:func:`rddpm_signals.cleaning.auto_by_layout`); ``False`` drops none; ``True`` drops the samples
        whose map mean or upper tail is an outlier among the training samples (same test, across samples);
        ``"two_sided"`` also drops samples whose map mean is unusually low (samples of another, simpler kind, which
        the network reconstructs more easily); ``"flagged"`` drops every sample that holds a flagged point
        (``clean_prior``'s included) while they are at most half of the samples. On overlapping windows a dropped
        window's points are still seen in its neighbours: there ``"auto"`` drops flagged windows whole and trains with
        ``loss="auto"``'s plain MSE (docs/RESULTS.md §34a); on sets of separate samples dropping them cost forging
        and dev_signals at 30 % (§31f), so it is not used there.
    clean_sample_refine: with ``clean_samples``, estimate the bulk again without the samples already dropped until
        none is added, so that many defective samples do not hide one another (masking).
    clean_sample_sticky: with ``clean_samples``, a sample once dropped stays dropped in every later cleaning round
        (otherwise each round decides afresh, and a defect the cleaner model no longer singles out comes back).
    clean_across_windows: on 1D windows cut from records (``fit(X, positions=...)``), a point that one window's
        cleaning flags is flagged in every window that covers it (with ``clean_samples="flagged"``, those windows are
        then dropped whole too): a defect at one window's edge may stand out only where it lies mid-window.
        ``"auto"`` (the default): on with the overlapping-window recipe (``fit(X, overlapping=True, positions=...)``,
        as :class:`~rddpm_signals.AnomalyModel` and the CLI pass; docs/RESULTS.md §35), off otherwise and whenever
        ``fit`` has no positions; ``True`` needs positions.
    clean_prior: with self-cleaning, points to hold out from the first training step on, found without a model:
        ``"auto"`` (the default: ``"discord"`` for 1D signals of at least 2 samples, else ``"none"``), ``"none"`` or
        ``"discord"`` (1D only): the points whose raw matrix-profile distance to the other half
        of the training set is significant by the ``"test"`` rule at ``clean_fdr``, dilated by ``clean_dilate``
        (:func:`rddpm_signals.cleaning.flag_discords`); every cleaning round adds its flags to them. The map-based
        rules need a network that has learnt the normal mode first; by then it has learnt some defects too. Costs
        one matrix profile of the training set before training, shared across processes under ``torchrun``
        (about 50 µs per training point on one thread, 10 s for forging's 192 × 4 × 256; docs/RESULTS.md §28b).
        Before training it finds 0.55–0.88 of the defect points of five waveform sets at 30 % and flags
        ≤ 0.2 % of clean machine-cycle points, 2.6–3.1 % of clean pulse-train points; on three data seeds seen while
        choosing, added to the default it raised ``val_signals`` at 30 % by +0.027 AUROC / +0.081 AUPRC and moved
        three other sets by < 0.001 (docs/RESULTS.md §25, a screen). On two fresh data seeds (§26) it gained +0.010
        to +0.052 AUROC on the two validation sets at 20–30 % and cost AUPRC 0.011–0.015 in three development groups
        (forging at 30 % on both seeds): so with the share rule it is not the default.
    clean_prior_m: the subsequence length (points) of the discord prior: ``"auto"`` (the default: 64, or
        ``L // 2`` when shorter, at least 2), an integer, or ``None`` = :func:`rddpm_signals.subsequences.default_m`
        (``L // 16`` clipped to [4, 64], the prior's length before ``"auto"``). A longer one compares longer shapes,
        so fewer short normal stretches look unique; it must not exceed the samples' length. With
        ``clean_rule="test", clean_rounds=10, clean_dilate=16``, 64 held out 0.00–0.01 of clean pulse-train points
        (16: up to 0.20) (docs/RESULTS.md §27c) and was confirmed on samples of 256 points and on windows of 128
        (§27d, §28). Samples shorter than 128 points were not measured (on short samples of a repetitive signal
        the prior may hold out clean points: check ``clean_mask_.mean()``).
    clean_prior_reference: where the discord prior looks for each subsequence's neighbours: ``"halves"`` (the
        default) the other half of the training samples, in order (at most 20 000 points per channel, a seeded
        subset beyond); ``"record"`` (1D windows only, ``fit(X, positions=...)``) the records the windows were cut
        from, as one self-join (:func:`rddpm_signals.cleaning.record_discord_maps`; up to 200 000 record points):
        every stretch of the record is a candidate neighbour, and none is the subsequence itself seen through an
        overlapping window. Before training it found more of the long records' defect points at 30 % (0.968 vs
        0.926) and flagged fewer clean machine-cycle points (0.021 vs 0.102), but on fresh seeds the fits moved by
        −0.005 to +0.003 pixel AUROC, and clean ``val_long_record`` lost 0.004: not the default
        (docs/RESULTS.md §37c, §37e).
    clean_prior_k: the discord prior's distance is to the ``k``-th nearest *distinct* neighbour (each neighbour's
        own ±``m`` stretch passed over before the next): 1 (the default) is the nearest. A defect that recurs a few
        times ("twins") is its own nearest neighbour elsewhere and hides from ``k = 1``; larger ``k`` also raises
        rare normal shapes (k = 2 and 4 with the record reference, offline: more defect points found, and more clean
        points flagged on one long record each, §37c; k = 4 on fresh seeds: −0.006 to +0.010 pixel AUROC at 30 %,
        clean ``val_long_record`` −0.004, §37f: not the default). On overlapping windows "distinct" holds only with
        ``clean_prior_reference="record"`` (each record stretch sits in several windows of the halves' reference).
    n_reconstructions: reconstructions averaged into each map. Each reconstruction is a random draw, and its
        noise is noise in the map; the mean of 4 raised pixel AUROC and AUPRC on every set measured whose map ranks
        above chance (docs/RESULTS.md §14) at 4× the scoring time of 1 (training is unchanged).
    map_normalization: ``"none"`` (raw ``|x - x̂|``) or ``"position"``: a robust z-score per map position, learnt
        from the training maps at the end of ``fit`` (needs test samples on the training grid).
    map_smoothing: Gaussian σ (in samples / pixels) applied to each map; 0 = none. Pixel-level reconstruction
        error is noisy where the normal data have fine texture; σ = 2 raised pixel AUROC on forging and rolling.
    map_t0s: ``None`` (only ``t0``) or several depths, e.g. ``(50, 100, 200)``: the map is the mean of their
        ``|x - x̂|`` maps, each divided by its median over the training maps (learnt at the end of ``fit``).
    map_structure: ``"auto"`` (the default) picks ``"none"`` or ``"bulk"`` at the end of ``fit`` (below); ``"none"``:
        the plain ``|x - x̂|`` map; ``"recon"``: add the local-structure error ``|E(x) - E(x̂)|`` (``E`` = log local
        standard deviation, :mod:`rddpm_signals.maps`); ``"bulk"``: add ``|z|`` of ``E(x)`` against the training samples
        at the same position (sees texture that is missing even where ``x̂`` copies ``x``). Either is divided by its
        training median and averaged with the (normalised) reconstruction map. ``"auto"``: chosen at the end of ``fit``
        without labels from synthetic local defects (bumps, missing detail, noise, gain changes;
        :mod:`rddpm_signals.synthetic`) written into training samples: ``"bulk"`` where the reconstruction map is nearly
        blind to them (pixel AUROC < 0.6, textures and spectrograms), ``"bulk"`` finds them clearly better (+0.05) and
        the texture map alone singles out more training samples (the training set's own defects) than the reconstruction
        map, else ``"none"``; the choice is ``map_structure_``, the figures (two AUROCs, two outlier shares)
        ``map_structure_scores_``. The choice reconstructs every training sample once more (``n_reconstructions`` draws)
        plus 64 injected ones: about 1.4 times the cost of scoring the training set, added to ``fit`` (forging,
        192 samples: 24 s on two CPU threads; docs/RESULTS.md §16); ``"none"`` skips it. ``"discord"`` (1D only,
        opt-in): the mean of two robust z-scores, the finished ``|x - x̂|`` map's and the raw-subsequence matrix
        profile's against the training samples (:mod:`rddpm_signals.subsequences`; subsequences of ``L // 16``
        points clipped to [4, 64], each point the smallest distance of the subsequences covering it, so the profile
        stays as sharp as the defect). Centres and scales come from training samples only: the second half's maps,
        its profile taken against the first half; the points self-cleaning excluded are left out of the reference.
        A classical model as a prior for what is normal: on 26 fits of the 1D sets it lost no more than 0.005 pixel
        AUROC on any and raised the mean by 0.02; on six fresh fits, +0.011 on average but −0.006 on one
        (docs/RESULTS.md §17). Scoring takes 18–50 % longer. Keeps the training samples (at most 20 000 points per
        channel) in the model.
    score_quantile: ``anomaly_score`` is this quantile of each map (1 = max).
    score_mode: ``"quantile"`` (the ``score_quantile`` quantile of the map), ``"mean"`` (the map's mean) or
        ``"features"`` (robust Mahalanobis distance of per-sample map features from the training samples';
        learnt at the end of ``fit``). :meth:`score_maps` applies it to maps already computed. Where the anomalies
        are whole samples of another kind, :class:`rddpm_signals.DenoisingTypicality` scores the samples themselves
        (docs/RESULTS.md §18).
    scoring_batch_size: samples reconstructed together when scoring (memory). On the CPU a sample's map is bitwise
        the same for any ``scoring_batch_size``, any batch it is scored in, any order or company: its noise is
        drawn from its own seed and the network always sees ``scoring.NET_ROWS`` rows per call. On CUDA maps agree
        across batchings to float rounding only.
    device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, …
    random_state: seed of initialisation, batch order and scoring noise; same seed → same maps.
    verbose: show a progress bar with the running loss during ``fit``.
    checkpoint_path: if set, ``fit`` checkpoints there every ``checkpoint_every`` steps and resumes from an existing
        checkpoint of the same run. A checkpoint carries a fingerprint (the data's shape and hash, every parameter
        that changes training, the refit stage, the format and package version); one of another run is refused
        with a one-line error naming what differs. ``resume=False`` ignores an existing checkpoint.

    Fitted attributes: ``dims_`` (1 or 2), ``net_`` (EMA UNet), ``center_`` / ``scale_`` ``(C,)``, ``n_channels_``,
    ``loss_`` (the loss trained with, ``"auto"`` resolved), ``loss_history_`` ``(train_steps,)``, ``device_``; with
    self-cleaning ``clean_settings_`` (dict: the ``rule``, ``rounds``, ``dilate``, ``prior``, ``prior_m``,
    ``samples`` and ``across_windows`` the fit used, ``"auto"`` resolved), ``clean_mask_`` (N, …grid) bool, the
    training points excluded at the end, and ``clean_history_`` ``(rounds, 4)``, one row per cleaning round: refit
    stage, training step, share of the training points excluded, samples dropped whole; with position normalisation
    ``map_center_`` / ``map_scale_`` (…grid); with ``map_structure="discord"`` ``discord_reference_`` ``(C, R)``,
    ``discord_scales_`` ``(4,)`` (centre and scale of the reconstruction map, then of the profile) and ``discord_m_``.
    """

    def __init__(
        self,
        dims: int | None = None,
        loss: str = "auto",
        delta: float | None = None,
        trim: float | None = None,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = True,
        timesteps: int = 1000,
        schedule: str = "linear",
        train_steps: int = 2000,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.995,
        grad_clip: float | None = 1.0,
        precision: str = "fp32",
        train_t_max: int | None = None,
        t0: int = 100,
        reverse_steps: int | None = 10,
        sampler: str = "ddpm",
        eta: float = 0.0,
        noise: str = "gaussian",
        self_clean: bool = True,
        clean_start: float = 0.1,
        clean_rounds: int | str = "auto",
        clean_threshold: float = 1.5,
        clean_max_share: float = 0.1,
        clean_dilate: int | str = "auto",
        clean_refits: int = 0,
        clean_rule: str = "auto",
        clean_fdr: float = 0.01,
        clean_samples: bool | str = "auto",
        clean_sample_refine: bool = False,
        clean_sample_sticky: bool = False,
        clean_across_windows: bool | str = "auto",
        clean_prior: str = "auto",
        clean_prior_m: int | str | None = "auto",
        clean_prior_reference: str = "halves",
        clean_prior_k: int = 1,
        n_reconstructions: int = 4,
        map_normalization: str = "none",
        map_smoothing: float = 2.0,
        map_t0s: Sequence[int] | None = None,
        map_structure: str = "auto",
        score_quantile: float = 0.99,
        score_mode: str = "quantile",
        scoring_batch_size: int = 64,
        device: str = "auto",
        random_state: int | None = 0,
        verbose: bool = True,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 500,
        resume: bool = True,
    ):
        self.dims = dims
        self.loss = loss
        self.delta = delta
        self.trim = trim
        self.channels = channels
        self.channel_mult = channel_mult
        self.num_res_blocks = num_res_blocks
        self.attention = attention
        self.timesteps = timesteps
        self.schedule = schedule
        self.train_steps = train_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.grad_clip = grad_clip
        self.precision = precision
        self.train_t_max = train_t_max
        self.t0 = t0
        self.reverse_steps = reverse_steps
        self.sampler = sampler
        self.eta = eta
        self.noise = noise
        self.self_clean = self_clean
        self.clean_start = clean_start
        self.clean_rounds = clean_rounds
        self.clean_threshold = clean_threshold
        self.clean_max_share = clean_max_share
        self.clean_dilate = clean_dilate
        self.clean_refits = clean_refits
        self.clean_rule = clean_rule
        self.clean_fdr = clean_fdr
        self.clean_samples = clean_samples
        self.clean_sample_refine = clean_sample_refine
        self.clean_sample_sticky = clean_sample_sticky
        self.clean_across_windows = clean_across_windows
        self.clean_prior = clean_prior
        self.clean_prior_m = clean_prior_m
        self.clean_prior_reference = clean_prior_reference
        self.clean_prior_k = clean_prior_k
        self.n_reconstructions = n_reconstructions
        self.map_normalization = map_normalization
        self.map_smoothing = map_smoothing
        self.map_t0s = map_t0s
        self.map_structure = map_structure
        self.score_quantile = score_quantile
        self.score_mode = score_mode
        self.scoring_batch_size = scoring_batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.resume = resume

    # ----------------------------------------------------------------------------------------------- building
    def _check_params(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}: use one of {SAMPLERS}")
        if not 0 <= self.t0 <= self.timesteps:
            raise ValueError(f"t0 must lie in [0, timesteps={self.timesteps}], got {self.t0}")
        if self.train_steps < 1 or self.batch_size < 1:
            raise ValueError("train_steps and batch_size must be >= 1")
        if self.n_reconstructions < 1:
            raise ValueError(f"n_reconstructions must be >= 1, got {self.n_reconstructions}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1 (training steps), got {self.checkpoint_every}")
        if self.train_t_max is not None and self.train_t_max < self.t0:
            raise ValueError(
                f"train_t_max={self.train_t_max} is below t0={self.t0}: the model would be scored on timesteps it "
                "never saw; raise train_t_max or leave it None"
            )
        if self.map_normalization not in MAP_NORMALIZATIONS:
            raise ValueError(f"unknown map_normalization {self.map_normalization!r}: use one of {MAP_NORMALIZATIONS}")
        if self.clean_refits < 0:
            raise ValueError(f"clean_refits must be >= 0, got {self.clean_refits}")
        given = {"rule": self.clean_rule, "rounds": self.clean_rounds}
        check_cleaning_settings(**self._cleaning_settings(given), allow_auto=True)
        if self.clean_prior not in (*CLEAN_PRIORS, AUTO):
            raise ValueError(f"unknown clean_prior {self.clean_prior!r}: use one of {(*CLEAN_PRIORS, AUTO)}")
        if self.clean_prior == "discord" and not self.self_clean:
            raise ValueError("clean_prior='discord' is part of self-cleaning: set self_clean=True")
        dilate = self.clean_dilate
        if not (is_auto(dilate) or is_count(dilate, 0)):
            raise ValueError(f"clean_dilate must be an integer >= 0 (points) or 'auto', got {dilate!r}")
        m = self.clean_prior_m
        if m is not None and not is_auto(m):
            if self.clean_prior == "none":
                raise ValueError("clean_prior_m is the length of clean_prior='discord': set that prior, or 'auto'")
            if not is_count(m, 2):
                raise ValueError(f"clean_prior_m must be an integer >= 2 (points), 'auto' or None; got {m!r}")
        if self.clean_prior_reference not in PRIOR_REFERENCES:
            raise ValueError(
                f"unknown clean_prior_reference {self.clean_prior_reference!r}: use one of {PRIOR_REFERENCES}"
            )
        if self.clean_prior == "none" and (self.clean_prior_reference != "halves" or self.clean_prior_k != 1):
            raise ValueError(
                "clean_prior_reference and clean_prior_k shape clean_prior='discord': set that prior (or 'auto'), or "
                "leave them at 'halves' and 1"
            )
        if not is_count(self.clean_prior_k, 1):
            raise ValueError(f"clean_prior_k must be an integer >= 1 (a neighbour's rank), got {self.clean_prior_k!r}")
        if self.map_structure not in MAP_STRUCTURES:
            raise ValueError(f"unknown map_structure {self.map_structure!r}: use one of {MAP_STRUCTURES}")
        if self.score_mode not in SCORE_MODES:
            raise ValueError(f"unknown score_mode {self.score_mode!r}: use one of {SCORE_MODES}")
        for t0 in self._t0s():
            if not 0 <= int(t0) <= self.timesteps:
                raise ValueError(f"map_t0s must lie in [0, timesteps={self.timesteps}], got {t0}")
        make_noise_fn(self.noise)
        if not (is_auto(self.clean_across_windows) or isinstance(self.clean_across_windows, bool)):
            raise ValueError(f"clean_across_windows must be True, False or 'auto', got {self.clean_across_windows!r}")
        if not (is_auto(self.loss) or self.loss in LOSSES):
            raise ValueError(f"unknown loss {self.loss!r}: use one of {[AUTO, *sorted(LOSSES)]}")

    def _check_prior_fits(self, X: np.ndarray, dims: int, settings: dict) -> None:
        """The prior ``settings`` chose (:meth:`_chosen_cleaning`) must suit the samples ``X``."""
        if self.clean_prior == "discord" and dims != 1:
            raise ValueError("clean_prior='discord' is for 1D signals (N, C, L): use clean_prior='auto' or 'none' here")
        m = settings["prior_m"]
        if settings["prior"] == "discord" and m is not None and int(m) > X.shape[-1]:
            raise ValueError(
                f"clean_prior_m={m} exceeds the samples' length {X.shape[-1]}: pass at most {X.shape[-1]}, or 'auto'"
            )

    def _auto_settings(self, dims: int, length: int) -> dict:
        """``clean_rule``, ``clean_rounds``, ``clean_dilate`` and ``clean_prior`` by their short names, each
        ``"auto"`` resolved for ``dims``-D samples of ``length`` points along the last axis
        (:func:`rddpm_signals.cleaning.resolve_auto`)."""
        given = {"rule": self.clean_rule, "rounds": self.clean_rounds, "dilate": self.clean_dilate}
        return resolve_auto({**given, "prior": self.clean_prior}, dims, length)

    def _layout_recipe(self, dims: int, overlapping: bool) -> dict[str, object]:
        """``{"samples": …, "loss": …}``: ``clean_samples`` and what ``loss="auto"`` becomes for ``dims``-D samples
        that overlap or not (:func:`~rddpm_signals.cleaning.auto_by_layout`)."""
        return auto_by_layout(dims, overlapping, self.self_clean, self.clean_samples)

    def _used_positions(self, positions: object, n_samples: int, dims: int, recipe: dict) -> np.ndarray | None:
        """``positions`` checked, when this fit spreads flags across windows (``clean_across_windows``, an
        ``"auto"`` one from the layout ``recipe``, with self-cleaning), else ``None`` (unused)."""
        auto = is_auto(self.clean_across_windows)
        if not (self.self_clean and (recipe["across_windows"] if auto else self.clean_across_windows)):
            return None
        if auto and (dims != 1 or positions is None):
            return None  # nothing to spread over
        return _required_positions(
            positions, n_samples, dims, "clean_across_windows=True", "clean_across_windows=False"
        )

    def _chosen_cleaning(self, X: np.ndarray, dims: int, samples: object) -> dict:
        """The self-cleaning settings a fit on ``X`` (``dims``-D samples) uses: :meth:`_auto_settings`, with an
        ``"auto"`` prior left off where it cannot run (fewer than 2 samples, or than 2 points), ``prior_m``: the
        discord prior's length (``None`` = :func:`~rddpm_signals.subsequences.default_m`; unused without it), and
        ``samples``: the sample rule, resolved (:meth:`_layout_recipe`)."""
        settings = self._auto_settings(dims, X.shape[-1])
        settings["samples"] = samples
        if is_auto(self.clean_prior) and (len(X) < 2 or X.shape[-1] < 2):
            settings["prior"] = "none"
        m = self.clean_prior_m
        discord = settings["prior"] == "discord"
        settings["prior_m"] = None if not discord or m is None else auto_prior_m(X.shape[-1]) if is_auto(m) else int(m)
        # plain ints: the choice is saved with the model and read back with weights_only=True (no numpy scalars)
        return {**settings, "rounds": int(settings["rounds"]), "dilate": int(settings["dilate"])}

    def _check_structure_fits(self, X: np.ndarray, dims: int) -> None:
        """``map_structure="discord"`` needs 1D signals and enough samples for its reference and its scales."""
        if self.map_structure != "discord":
            return
        if dims != 1:
            raise ValueError("map_structure='discord' is for 1D signals (N, C, L): use 'auto', 'none' or 'bulk' here")
        if len(X) < DISCORD_MIN_SAMPLES:
            raise ValueError(
                f"map_structure='discord' needs at least {DISCORD_MIN_SAMPLES} training samples, got {len(X)}: "
                "pass more samples or use map_structure='none'"
            )

    def _t0s(self) -> list[int]:
        return [self.t0] if self.map_t0s is None else [int(t) for t in self.map_t0s]

    def _needs_reference(self) -> bool:
        """Whether scoring needs statistics of the training maps learnt at the end of ``fit``."""
        return len(self._t0s()) > 1 or self.map_structure != "none" or self.score_mode == "features"

    def _make_net(self, n_channels: int, dims: int) -> UNet:
        return UNet(
            dims=dims,
            in_channels=n_channels,
            channels=self.channels,
            channel_mult=tuple(self.channel_mult),
            num_res_blocks=self.num_res_blocks,
            attention=self.attention,
        )

    def _schedule(self) -> NoiseSchedule:
        return NoiseSchedule.create(self.schedule, self.timesteps)

    def _settings(self, fast: bool = False) -> ReconstructionSettings:
        """The scoring reconstruction, or (``fast``) a ≤10-step DDIM one for self-cleaning."""
        if fast:
            steps = min(self.t0, 10)
            return ReconstructionSettings(self._schedule(), self.t0, "ddim", steps, 0.0, make_noise_fn(self.noise))
        return ReconstructionSettings(
            self._schedule(), self.t0, self.sampler, self.reverse_steps, self.eta, make_noise_fn(self.noise)
        )

    def _normalise(self, X: np.ndarray) -> torch.Tensor:
        """``X`` ``(N, C, …grid)`` in robust per-channel units, as a tensor of the same shape."""
        return torch.from_numpy(scale_channels(X, self.center_, self.scale_))

    def _denormalise(self, Z: torch.Tensor) -> np.ndarray:
        shape = (1, -1) + (1,) * (Z.ndim - 2)
        return Z.numpy() * self.scale_.reshape(shape) + self.center_.reshape(shape)

    def _eps_model(self, net: torch.nn.Module):
        device, precision = self.device_, self.precision

        def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(device, precision):
                return net(x_t, t).float()

        return eps_model

    def _raw_maps(self, Z: torch.Tensor, net: torch.nn.Module, fast: bool = False) -> tuple[np.ndarray, torch.Tensor]:
        """Channel-mean ``|z - ẑ|`` ``(N, …grid)`` and the reconstructions, with the per-call scoring generator."""
        maps, recon = error_maps(
            self._eps_model(net),
            Z,
            self._settings(fast),
            _seed(self.random_state, _SCORE_STREAM),
            self.device_,
            batch_size=self.scoring_batch_size,
            n_reconstructions=1 if fast else self.n_reconstructions,
        )
        return maps.numpy().astype(np.float64), recon

    # ----------------------------------------------------------------------------------------------- fitting
    def fit(
        self, X: object, y: object = None, *, overlapping: bool = False, positions: object = None
    ) -> RobustDiffusion:
        """Train on ``X`` ``(N, C, L)`` or ``(N, C, H, W)`` (which may hold unlabelled defects). Returns ``self``.

        ``overlapping``: the samples are windows that overlap (an adapter's ``Layout.overlapping``), so a point left
        out of one is still seen in another; on 1D windows ``clean_samples="auto"`` then drops flagged windows whole
        and ``loss="auto"`` is plain MSE (:func:`~rddpm_signals.cleaning.auto_by_layout`). ``positions`` ``(N, 2)``
        int: each 1D window's record and first point on it (an adapter ``Layout``'s ``record`` and ``offset``), used
        by ``clean_across_windows``.

        All or nothing: on any error (bad input, a refused checkpoint, a non-finite loss, an interrupt) the detector
        is left exactly as it was before the call — unfitted, or with its previous fit."""
        before = self._fitted_state()
        try:
            return self._fit(X, bool(overlapping), positions)
        except BaseException:
            for name in self._fitted_state():
                delattr(self, name)
            vars(self).update(before)
            raise

    def prior_flags(self, X: object, *, overlapping: bool = False, positions: object = None) -> np.ndarray | None:
        """Bool ``(N, L)`` or ``(N, H, W)``: the training points this detector's model-free prior (``clean_prior``)
        would hold out from the first step of ``fit(X, overlapping=overlapping, positions=positions)``, before any
        training; ``None`` where that fit has no prior (``self_clean=False``, or ``clean_prior`` ``"none"`` or
        resolved to it). Runs the prior alone, on a copy: the detector is left as it was, fitted or not."""
        probe = clone(self)
        probe._check_params()
        X, dims = probe._check_fit_X(X)
        if not probe.self_clean:
            return None
        settings = probe._chosen_cleaning(X, dims, probe._layout_recipe(dims, bool(overlapping))["samples"])
        probe._check_prior_fits(X, dims, settings)
        prior_positions = probe._prior_positions(positions, len(X), dims, settings)
        probe.clean_settings_ = settings
        probe.center_, probe.scale_ = channel_center_scale(X)
        return probe._model_free_prior(probe._normalise(X), prior_positions)

    def _cleaning_settings(self, chosen: dict) -> dict:
        """The ``clean_*`` settings :func:`~rddpm_signals.cleaning.check_cleaning_settings` checks, by its names,
        with ``rule`` and ``rounds`` from ``chosen`` (as given, or :meth:`_auto_settings`' with ``"auto"`` resolved)."""
        return {
            "start": self.clean_start,
            "rounds": chosen["rounds"],
            "max_share": self.clean_max_share,
            "rule": chosen["rule"],
            "fdr": self.clean_fdr,
            "samples": chosen.get("samples", self.clean_samples),
        }

    def _fitted_state(self) -> dict:
        """The fitted attributes (names ending in ``_``) and their values."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _fit(self, X: object, overlapping: bool, positions: object = None) -> RobustDiffusion:
        self._check_params()
        X, dims = self._check_fit_X(X)
        self._check_structure_fits(X, dims)
        recipe = self._layout_recipe(dims, overlapping)
        cleaning = self._chosen_cleaning(X, dims, recipe["samples"])
        prior_positions = self._prior_positions(positions, len(X), dims, cleaning) if self.self_clean else None
        positions = self._used_positions(positions, len(X), dims, recipe)
        cleaning = {**cleaning, "across_windows": positions is not None}
        self._check_prior_fits(X, dims, cleaning)
        self.loss_ = str(recipe["loss"] if is_auto(self.loss) else self.loss)
        schedule = self._schedule()
        t_range = self.timesteps if self.train_t_max is None else int(self.train_t_max)
        self.device_ = prepare(self.device)  # under torchrun: this process's GPU, and the process group
        self.center_, self.scale_ = channel_center_scale(X)
        self.n_channels_ = int(X.shape[1])
        data = self._normalise(X)

        if self.self_clean:
            self.clean_settings_ = cleaning
        prior = self._model_free_prior(data, prior_positions)
        rounds: list[list[float]] = []
        stages = 1 + (self.clean_refits if self.self_clean else 0)
        for stage in range(stages):
            # Every stage starts from the same fresh network: a refit has never seen the points flagged before.
            checkpoint = self._stage_checkpoint(stage, stages)
            result, cleaning = self._train_stage(data, dims, schedule, t_range, prior, checkpoint, positions)
            if result.weights is not None:
                prior = result.weights[:, 0].numpy() == 0
            if cleaning is not None:
                rounds += [[stage, *row] for row in cleaning.history]
        self.net_ = result.ema
        self.loss_history_ = np.asarray(result.history, dtype=np.float64)
        if prior is not None:
            self.clean_mask_ = prior
        if self.self_clean:
            self.clean_history_ = np.asarray(rounds, dtype=np.float64).reshape(-1, 4)
        if self._needs_reference():
            self._fit_scoring_reference(data)
        elif self.map_normalization == "position":
            self._fit_map_normalization(self._raw_maps(data, self.net_)[0])
        self.dims_ = dims  # last: a fit that failed before here leaves the detector unfitted
        return self

    def _prior_positions(self, positions: object, n_samples: int, dims: int, settings: dict) -> np.ndarray | None:
        """``positions`` checked, when the discord prior profiles the records (``clean_prior_reference="record"``),
        else ``None`` (unused)."""
        if settings.get("prior") != "discord" or self.clean_prior_reference != "record":
            return None
        return _required_positions(
            positions, n_samples, dims, "clean_prior_reference='record'", "clean_prior_reference='halves'"
        )

    def _model_free_prior(self, data: torch.Tensor, positions: np.ndarray | None = None) -> np.ndarray | None:
        """``clean_prior``'s points ``(N, L)`` to hold out from the first step, from the normalised training samples
        ``data`` ``(N, C, L)`` (with ``clean_prior_reference="record"``, their windows' ``positions`` ``(N, 2)``);
        ``None`` without one (or without self-cleaning)."""
        if not self.self_clean or self.clean_settings_["prior"] == "none":
            return None
        Z, m, k = data.numpy(), self.clean_settings_["prior_m"], int(self.clean_prior_k)
        shard = Shard.current()
        if positions is not None:  # one self-join of the records (every process computes it whole)
            maps = record_discord_maps(Z, positions, m, k)
        elif shard is None:
            maps = discord_maps(Z, DISCORD_REFERENCE, m, k=k)
        else:  # under torchrun each process profiles its share of the samples (the same maps, bitwise)
            shard = shard.of(len(Z))
            part = torch.from_numpy(discord_maps(Z, DISCORD_REFERENCE, m, rows=shard.rows, k=k))
            maps = shard.gather(part).numpy()
        return flag_discord_maps(maps, self.clean_fdr, self.clean_settings_["dilate"], self.map_smoothing)

    def _fingerprint(
        self, data: torch.Tensor, dims: int, prior: np.ndarray | None, path: str, positions: np.ndarray | None = None
    ) -> dict:
        """What identifies one training run: data, refit stage, every parameter that changes training (as text, so
        a list and a tuple of the same values agree), format and package version."""
        from . import __version__

        def digest(a: np.ndarray) -> str:
            return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]

        params = {k: repr(v) for k, v in sorted(self.get_params().items()) if k not in _NOT_TRAINING}
        params["loss"] = repr(self.loss_)  # as resolved: loss="auto" depends on overlapping=
        return {
            "format": _CHECKPOINT_FORMAT,
            "version": __version__,
            "data": f"{tuple(data.shape)} {digest(data.numpy())}",
            "dims": dims,
            "stage": Path(path).suffix if Path(path).suffix.startswith(".stage") else "final",
            "excluded": "none" if prior is None else digest(prior),
            # the cleaning's "auto" settings as this fit resolved them (clean_samples="auto" depends on overlapping=)
            "cleaning": repr(sorted(self.clean_settings_.items())) if self.self_clean else "none",
            **({} if positions is None else {"positions": digest(positions)}),
            **params,
        }

    def _stage_checkpoint(self, stage: int, stages: int) -> str | None:
        """The final stage checkpoints at ``checkpoint_path``; earlier ones beside it (``….stage0`` …)."""
        if self.checkpoint_path is None or stage == stages - 1:
            return self.checkpoint_path
        return f"{self.checkpoint_path}.stage{stage}"

    def _train_stage(
        self,
        data: torch.Tensor,
        dims: int,
        schedule: NoiseSchedule,
        t_range: int,
        prior: np.ndarray | None,
        checkpoint_path: str | None,
        positions: np.ndarray | None = None,
    ) -> tuple[TrainResult, SelfCleaning | None]:
        """One training run of a fresh ``dims``-D network on ``data`` ``(N, C, …grid)`` and its self-cleaning
        (``None`` without); ``prior`` ``(N, …grid)`` (the points an earlier stage excluded) is excluded from the
        first step on and stays excluded; ``positions`` ``(N, 2)``: the windows' records and first points, to spread
        flags across windows (``clean_across_windows``)."""
        loss_fn = make_loss(
            self.loss_, delta=self.delta, trim=self.trim, t_range=t_range, alphas_cumprod=schedule.alphas_cumprod
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.random_state, 0))
            net = self._make_net(self.n_channels_, dims)
        config = TrainConfig(
            steps=self.train_steps,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            ema_decay=self.ema_decay,
            grad_clip=self.grad_clip,
            precision=self.precision,
            t_max=self.train_t_max,
            checkpoint_path=checkpoint_path,
            checkpoint_every=self.checkpoint_every,
            fingerprint=(
                None if checkpoint_path is None else self._fingerprint(data, dims, prior, checkpoint_path, positions)
            ),
            resume=self.resume,
            verbose=self.verbose,
            description=f"fit {self.loss_}",
        )
        reweighter = None
        if self.self_clean:
            reweighter = SelfCleaning(
                lambda ema, rows=slice(None): self._raw_maps(data[rows], ema, fast=True)[0],
                self.train_steps,
                **self._cleaning_settings(self.clean_settings_),
                threshold=self.clean_threshold,
                dilate=self.clean_settings_["dilate"],
                prior=prior,
                sigma=self.map_smoothing,
                n_samples=len(data),
                sample_refine=self.clean_sample_refine,
                sample_sticky=self.clean_sample_sticky,
                positions=positions,
            )
        result = train(
            net,
            data,
            schedule,
            loss_fn,
            make_noise_fn(self.noise),
            config,
            _generator(self.random_state, _TRAIN_STREAM),
            self.device_,
            reweighter=reweighter,
        )
        return result, reweighter

    def _fit_map_normalization(self, train_maps: np.ndarray) -> None:
        normalizer = PositionNormalizer().fit(smooth_maps(train_maps, self.map_smoothing))
        self.map_center_, self.map_scale_ = normalizer.center_, normalizer.scale_

    @contextlib.contextmanager
    def _at_t0(self, t0: int):
        """Temporarily score at depth ``t0`` (through the one scoring path, :meth:`_raw_maps`)."""
        saved = self.t0
        self.t0 = int(t0)
        try:
            yield
        finally:
            self.t0 = saved

    def _structure(self) -> str:
        """The map structure in use: ``map_structure``, or with ``"auto"`` the one chosen at fit."""
        if self.map_structure != "auto":
            return self.map_structure
        check_fitted(self, "map_structure_")
        return self.map_structure_

    def _map_parts(self, Z: torch.Tensor, structure: str | None = None) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The raw ``|z - ẑ|`` map at each depth of :meth:`_t0s` and the structure map (or ``None``);
        ``structure`` overrides :meth:`_structure`."""
        structure = self._structure() if structure is None else structure
        parts, structures = [], []
        for t0 in self._t0s():
            with self._at_t0(t0):
                raw, recon = self._raw_maps(Z, self.net_)
            parts.append(raw)
            if structure == "recon":
                structures.append(structure_error(Z.numpy(), recon.numpy(), max(self.map_smoothing, 1.0)))
        if structure == "recon":
            return parts, np.mean(np.stack(structures), axis=0)
        if structure == "bulk":
            ref = EnergyReference.fitted(max(self.map_smoothing, 1.0), self.energy_center_, self.energy_scale_)
            return parts, ref.error(Z.numpy())
        return parts, None

    def _scoring_maps(self, Z: torch.Tensor, structure: str | None = None) -> np.ndarray:
        """Raw (unsmoothed) maps ``(N, …grid)`` with the multi-t0 and structure options; plain ``|z - ẑ|`` when
        they are off. ``structure`` overrides :meth:`_structure`."""
        structure = self._structure() if structure is None else structure
        structure = "none" if structure == "discord" else structure  # its reconstruction part is the plain map
        if not (len(self._t0s()) > 1 or structure != "none"):
            return self._raw_maps(Z, self.net_)[0]
        return self._combine(*self._map_parts(Z, structure))

    def _combine(self, parts: list[np.ndarray], structure_map: np.ndarray | None) -> np.ndarray:
        """One map from the per-depth maps and the structure map of :meth:`_map_parts`."""
        maps = combine_maps(parts, None if len(parts) == 1 and structure_map is None else self.map_t0_scale_)
        if structure_map is not None:
            maps = 0.5 * (maps + structure_map / max(float(self.structure_scale_), 1e-12))
        return maps

    def _fit_structure_reference(
        self, data: torch.Tensor, structure: str
    ) -> tuple[list[np.ndarray], np.ndarray | None] | None:
        """The local-energy reference and the training-map scales that ``structure`` needs; returns the training
        maps it computed for them (:meth:`_map_parts` of ``data``), or ``None`` when it needed none."""
        if structure == "bulk":
            ref = EnergyReference(max(self.map_smoothing, 1.0)).fit(data.numpy())
            self.energy_center_, self.energy_scale_ = ref.normalizer_.center_, ref.normalizer_.scale_
        if not (len(self._t0s()) > 1 or structure != "none"):
            return None
        parts, structure_map = self._map_parts(data, structure)
        self.map_t0_scale_ = np.array([max(float(np.median(p)), 1e-12) for p in parts])
        if structure_map is not None:
            self.structure_scale_ = np.asarray(max(float(np.median(structure_map)), 1e-12))
        return parts, structure_map

    def _choose_structure(self, data: torch.Tensor) -> str:
        """``map_structure="auto"``: ``"none"`` or ``"bulk"``, without labels. Synthetic local defects are written
        into up to ``AUTO_SAMPLES`` training samples (:mod:`rddpm_signals.synthetic`); ``"bulk"`` is chosen only
        where the reconstruction map is nearly blind to them (pixel AUROC below ``AUTO_BLIND``), ``"bulk"`` ranks
        them more than ``AUTO_MARGIN`` higher, and the texture map alone singles out a larger share of the
        training samples themselves (scores beyond ``AUTO_TAIL_K`` robust SDs; the training set's own defects)
        than the reconstruction map does. Where the reconstruction works, averaging the energy z-score in dilutes
        it (forging, rolling, brick). Sets ``map_structure_scores_``: the two injected figures, then the two
        training outlier shares (reconstruction, texture)."""
        rng = np.random.default_rng(_seed(self.random_state, _AUTO_STREAM))
        pick = np.sort(rng.permutation(len(data))[:AUTO_SAMPLES])
        injected, mask, kind = inject_defects(data[pick].numpy(), rng)
        injected = torch.from_numpy(injected.astype(np.float32))
        train_parts, train_texture = self._fit_structure_reference(data, "bulk")  # both candidates' references
        parts, structure_map = self._map_parts(injected, "bulk")  # one reconstruction serves both candidates
        candidates = {"none": (parts, None), "bulk": (parts, structure_map)}

        def maps_of(structure: str) -> np.ndarray:
            return smooth_maps(self._combine(*candidates[structure]), self.map_smoothing)

        choice, figures = choose_by_injection(("none", "bulk"), maps_of, mask, kind, AUTO_MARGIN, AUTO_BLIND)
        tails = [
            outlier_share(quantile_scores(smooth_maps(m, self.map_smoothing), self.score_quantile), AUTO_TAIL_K)
            for m in (self._combine(train_parts, None), train_texture)
        ]
        self.map_structure_scores_ = np.concatenate([figures, tails])
        return "bulk" if choice == "bulk" and tails[1] > tails[0] else "none"

    def _fit_scoring_reference(self, data: torch.Tensor) -> None:
        """Learn, from the training maps, the scales of the multi-t0 / structure maps, the local-energy reference,
        the position normalisation and the whole-sample score's reference (with ``map_structure="auto"``, first
        the structure itself)."""
        if self.map_structure == "auto":
            self.map_structure_ = self._choose_structure(data)  # fits the references of either choice
        else:
            self._fit_structure_reference(data, "none" if self.map_structure == "discord" else self.map_structure)
        train_raw = None
        if self.map_normalization == "position" or self.score_mode == "features":
            train_raw = self._scoring_maps(data)
        if self.map_normalization == "position":
            self._fit_map_normalization(train_raw)
        if self._structure() == "discord":
            self._fit_discord_reference(data)
        if self.score_mode == "features":
            train_maps = self._with_discord(data, self._finish_maps(train_raw))
            scorer = RobustSampleScore(random_state=0).fit(sample_features(train_maps))
            self.sample_location_, self.sample_precision_ = scorer.location_, scorer.precision_

    def _fit_discord_reference(self, data: torch.Tensor) -> None:
        """``map_structure="discord"``: the training samples as the matrix profile's reference, and the robust
        centre and scale of both maps, learnt on training samples only: up to ``DISCORD_SCALE_SAMPLES`` of the
        second half (``B``), their finished reconstruction maps and their profile against the first half. With
        self-cleaning, the points it excluded (``clean_mask_``) are left out of both references (set to NaN, so no
        reference subsequence touches one): the training set's own anomalies, which in a long record recur in many
        overlapping windows, would otherwise give a test anomaly like them a near neighbour."""
        Z = data.numpy().astype(np.float64)
        n, _, length = Z.shape
        queries = Z
        mask = getattr(self, "clean_mask_", None)
        if mask is not None:
            masked = np.where(np.asarray(mask).reshape(n, 1, length), np.nan, Z)
            windows = np.lib.stride_tricks.sliding_window_view(masked, default_m(length), axis=2)
            if np.isfinite(windows).all(axis=-1).any(axis=(0, 2)).all():  # every channel keeps a subsequence
                Z = masked
        self.discord_m_ = np.asarray(default_m(length))
        self.discord_reference_ = reference_of(Z, DISCORD_REFERENCE, 0)
        later = np.arange(n // 2 + DISCORD_GAP, n)
        if len(later) == 0:  # few samples: no gap
            later = np.arange(n // 2, n)
        b = later[np.linspace(0, len(later) - 1, min(DISCORD_SCALE_SAMPLES, len(later))).astype(int)]
        first_half = reference_of(Z[: n // 2], DISCORD_REFERENCE, 0)
        profile = profile_maps(queries[b], first_half, int(self.discord_m_), False, "min")
        recon = self._finish_maps(self._scoring_maps(data[torch.from_numpy(b)]))
        self.discord_scales_ = np.array([*median_mad(recon), *median_mad(profile)])

    def _with_discord(self, Z: torch.Tensor, maps: np.ndarray) -> np.ndarray:
        """With ``map_structure="discord"``: the mean of the robust z-scores of the finished reconstruction ``maps``
        ``(N, L)`` and of the samples' matrix profile (raw subsequences, each point the smallest distance among the
        subsequences covering it) against the training reference; otherwise ``maps`` unchanged."""
        if self._structure() != "discord":
            return maps
        check_fitted(self, "discord_reference_")
        m = int(self.discord_m_)
        profile = profile_maps(Z.numpy().astype(np.float64), self.discord_reference_, m, False, "min")
        recon_center, recon_scale, profile_center, profile_scale = (float(v) for v in self.discord_scales_)
        return 0.5 * ((maps - recon_center) / recon_scale + (profile - profile_center) / profile_scale)

    def _finish_maps(self, raw: np.ndarray) -> np.ndarray:
        maps = smooth_maps(raw, self.map_smoothing)
        if self.map_normalization == "position":
            normalizer = PositionNormalizer()
            normalizer.center_, normalizer.scale_ = self.map_center_, self.map_scale_
            maps = normalizer.transform(maps)
        return maps

    # ----------------------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def reconstruct(self, X: object) -> np.ndarray:
        """The "healthy" reconstruction of ``X`` (mean of ``n_reconstructions``), same shape and units as ``X``."""
        X = self._check_X(X)
        _, recon = self._raw_maps(self._normalise(X), self.net_)
        return self._denormalise(recon).astype(np.float32)

    @torch.no_grad()
    def anomaly_map(self, X: object) -> np.ndarray:
        """``|x - x̂|`` in normalised units, averaged over channels and reconstructions, then smoothed and (with
        ``map_normalization="position"``) z-scored per position: ``(N, L)`` or ``(N, H, W)``, higher = more
        anomalous."""
        X = self._check_X(X)
        Z = self._normalise(X)
        return self._with_discord(Z, self._finish_maps(self._scoring_maps(Z)))

    def score_maps(self, maps: np.ndarray) -> np.ndarray:
        """Per-sample scores ``(N,)`` of maps ``(N, …grid)`` from :meth:`anomaly_map`, by ``score_mode``."""
        if self.score_mode == "mean":
            return np.asarray(maps, dtype=np.float64).reshape(len(maps), -1).mean(axis=1)
        if self.score_mode == "features":
            check_fitted(self, "sample_location_")
            scorer = RobustSampleScore()
            scorer.location_, scorer.precision_ = self.sample_location_, self.sample_precision_
            return scorer.score(sample_features(maps))
        return quantile_scores(maps, self.score_quantile)

    def anomaly_score(self, X: object) -> np.ndarray:
        """Per-sample score ``(N,)``: :meth:`score_maps` of :meth:`anomaly_map` (by default the
        ``score_quantile`` quantile of each map)."""
        return self.score_maps(self.anomaly_map(X))

    # ----------------------------------------------------------------------------------------------- persistence
    _FITTED_ARRAYS = ("center_", "scale_", "loss_history_", "map_center_", "map_scale_")
    _FITTED_ARRAYS += ("clean_mask_", "clean_history_")
    # learnt only when the map_t0s / map_structure / score_mode options are on
    _FITTED_ARRAYS += ("map_t0_scale_", "structure_scale_", "energy_center_", "energy_scale_")
    _FITTED_ARRAYS += ("sample_location_", "sample_precision_", "map_structure_scores_")
    _FITTED_ARRAYS += ("discord_reference_", "discord_scales_", "discord_m_")
    # fitted choices, saved as they are: a string (map_structure="auto") and a dict (the "auto" cleaning settings)
    _FITTED_CHOICES = ("map_structure_", "clean_settings_", "loss_")

    def save(self, path: str | os.PathLike) -> None:
        """Write parameters, EMA weights, normalisations, ``dims_`` and fitted arrays to ``path`` (atomically)."""
        check_fitted(self, "dims_")
        # plain Python values: load reads them back with weights_only=True, which refuses numpy scalars
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.get_params().items()}
        params = {k: plain_scalar(v) for k, v in params.items()}
        arrays = {k: torch.from_numpy(np.asarray(getattr(self, k))) for k in self._FITTED_ARRAYS if hasattr(self, k)}
        atomic_torch_save(
            {
                "format_version": FORMAT_VERSION,
                "params": params,
                "state_dict": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
                "n_channels": self.n_channels_,
                "dims": self.dims_,
                "arrays": arrays,
                "choices": {k: getattr(self, k) for k in self._FITTED_CHOICES if hasattr(self, k)},
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> RobustDiffusion:
        """Load a detector written by :meth:`save` (``torch.load(weights_only=True)``); ``device`` overrides the
        saved one."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no saved detector at {str(path)!r}: check the path")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
            kind = type(err).__name__
            raise ValueError(f"{str(path)!r} is not a RobustDiffusion file ({kind}): re-save it") from None
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{str(path)!r} is not a RobustDiffusion file of format {FORMAT_VERSION}: re-save it")
        params = dict(state["params"])
        params["checkpoint_path"] = None
        if device is not None:
            params["device"] = device
        det = cls(**params)
        for name, value in state["arrays"].items():
            setattr(det, name, value.numpy())
        for name, value in state.get("choices", {}).items():
            if name in cls._FITTED_CHOICES and isinstance(value, (str, dict)):
                setattr(det, name, value)
        det.n_channels_ = int(state["n_channels"])
        det.dims_ = _saved_dims(state, path)
        det.device_ = resolve_device(det.device)
        net = det._make_net(det.n_channels_, det.dims_)
        net.load_state_dict(state["state_dict"])
        det.net_ = net.to(det.device_).eval().requires_grad_(False)
        return det
