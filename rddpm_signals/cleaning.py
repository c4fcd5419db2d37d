"""Self-cleaning training: after a warm-up, score every training sample with the current model and give the
points it flags zero weight in the loss (iterative trimmed-loss minimisation at the level of points).

Two rules choose the flagged points (``SelfCleaning(rule=…)``):

- ``"share"`` (:func:`flag_points`): a robust z-score per map position (median / MAD over the training samples),
  above a threshold and capped at a share of the points, then dilated. The cap counts the flagged points before the
  dilation: scattered flags dilate into a much larger excluded share (``SelfCleaning.history`` records it per
  round; docs/RESULTS.md §8 gives measured values). It excludes a fixed share whether or not there are defects.
- ``"test"`` (:func:`flag_points_test`): a statistical test of each point against the bulk of the training maps.
  The map is smoothed (so a defect's neighbouring points pool their evidence), log-transformed (reconstruction
  errors are positive and right-skewed; their logarithm is close to Gaussian), z-scored per position with the
  median / MAD, and a point is flagged only when its one-sided Gaussian p-value passes a Benjamini–Hochberg
  false-discovery-rate control at ``fdr`` over all points. On data without defects it flags (almost) nothing.

Either rule can also drop whole training samples (:func:`flag_samples`): a sample whose map as a whole is unlike
the bulk — its mean (a sample of another kind) or its upper tail (a localised defect) — by the same test across
samples. ``samples="two_sided"`` also drops samples whose map mean is unusually *low*: a sample of another, simpler
kind can be reconstructed more easily than the normal ones (docs/RESULTS.md §18). ``samples="flagged"`` drops every
sample that holds a flagged point (the prior's included), so the network never sees a flagged defect even as the
context of the points around it (docs/RESULTS.md §31e).

A prior that needs no model (:func:`flag_discords`, 1D): the points whose matrix-profile distance to the other half
of the training set is significant by the ``"test"`` rule. Held out from the first step and in every round, it
excludes defects before the network has seen them — which the map-based rules cannot do, since they need a model
that has learnt the normal mode (docs/RESULTS.md §25).

Several processes (``torchrun``): given ``n_samples``, each process scores its own contiguous share of the training
set (``score(ema, rows)``) and the maps are all-gathered, so every process flags the same points from the same maps
as one process would (on the CPU a sample's map does not depend on which others it is scored with, so the gathered
maps are bitwise the one-process maps). Without ``n_samples`` every process scores the whole set itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import numpy as np
import torch
from scipy import ndimage, stats
from torch import nn

from ._validation import is_count
from .base import smooth_maps
from .distributed import Shard
from .scoring import PositionNormalizer
from .subsequences import channel_profile_maps, default_m, nearest_distances, points_of, reference_of

__all__ = [
    "SelfCleaning",
    "flag_points",
    "flag_points_test",
    "flag_samples",
    "dilate_flags",
    "samples_holding",
    "flag_discords",
    "discord_maps",
    "record_discord_maps",
    "flag_discord_maps",
    "benjamini_hochberg",
    "CLEAN_RULES",
    "CLEAN_PRIORS",
    "SAMPLE_RULES",
    "check_cleaning_settings",
    "AUTO",
    "AUTO_CLEANING",
    "resolve_auto",
    "is_auto",
    "auto_prior_m",
    "auto_dilate",
    "auto_signature",
    "auto_by_layout",
    "spread_across_windows",
    "record_point_index",
    "check_window_positions",
    "AUTO_OVERLAPPING",
    "SEPARATE_SAMPLES",
]

CLEAN_RULES = ("share", "test")
CLEAN_PRIORS = ("none", "discord")
# where the discord prior finds each subsequence's neighbours: the other half of the samples, or (1D windows with
# their positions) the rest of the records the windows were cut from
PRIOR_REFERENCES = ("halves", "record")
RECORD_PRIOR_MAX_POINTS = 200_000  # the record self-join costs (points)² · m: beyond this, use "halves"
AUTO = "auto"
# What self-cleaning's "auto" settings become, by the samples' kind: 1D signals (N, C, L) and grids (images,
# spectrograms). The 1D recipe was confirmed against the grid one on five waveform sets at 0, 20 and 30 % on fresh
# data seeds (docs/RESULTS.md §27); on textures the "test" rule missed low-contrast defects (§20b), so grids keep it.
# On 1D signals the dilation is the table's at most (see auto_dilate: a quarter of shorter samples).
AUTO_CLEANING: dict[int, dict[str, object]] = {
    1: {"rule": "test", "rounds": 10, "dilate": 32, "prior": "discord"},
    2: {"rule": "share", "rounds": 5, "dilate": 2, "prior": "none"},
}


# What clean_samples="auto", loss="auto" and clean_across_windows="auto" become, by whether the training samples
# overlap (windows cut with a short hop from one long record; fit is told so with overlapping=True) and by the
# samples' kind. On overlapping 1D windows every window holding a flagged point is dropped whole (its points are still
# seen in the windows that overlap it) and the loss is plain MSE, which spares clean data the trim's cost
# (docs/RESULTS.md §33c): confirmed against the trimmed loss on fresh seeds of both long records (§34a, §34c). A point
# flagged in one window is flagged in every window covering it (when fit is given the windows' positions), so a
# defect at one window's edge does not stay in that window for MSE to learn (§35a; screened §35c, confirmed §35d).
# On separate samples none
# is dropped whole (that cost forging and dev_signals, §31f, §33g) and the loss is the trimmed one, which keeps what
# the flags miss out of the gradient. Overlapping grids were not measured: they keep the separate samples' recipe.
# Without self-cleaning "auto" is always the separate one.
SEPARATE_SAMPLES: dict[str, object] = {"samples": False, "loss": "lts", "across_windows": False}
AUTO_OVERLAPPING: dict[int, dict[str, object]] = {
    1: {"samples": "flagged", "loss": "mse", "across_windows": True},
    2: SEPARATE_SAMPLES,
}


def auto_by_layout(dims: int, overlapping: bool, self_clean: bool = True, samples: object = AUTO) -> dict[str, object]:
    """``{"samples": …, "loss": …, "across_windows": …}``: ``clean_samples`` (``samples``, an ``"auto"`` one
    resolved) and what ``loss="auto"`` and ``clean_across_windows="auto"`` become, for ``dims``-D samples that
    ``overlap`` or not: :data:`AUTO_OVERLAPPING`'s recipe, else :data:`SEPARATE_SAMPLES`'. The untrimmed loss and the
    spread come only with the recipe's sample rule: MSE with flagged points held out but their windows kept learnt
    what the flags missed (§33f), so with another ``samples`` it is ``"lts"`` without the spread."""
    recipe = AUTO_OVERLAPPING[1 if dims == 1 else 2] if overlapping and self_clean else SEPARATE_SAMPLES
    chosen = recipe["samples"] if is_auto(samples) else samples
    same = isinstance(chosen, str) and chosen == recipe["samples"]
    return {
        "samples": chosen,
        "loss": recipe["loss"] if same else SEPARATE_SAMPLES["loss"],
        "across_windows": recipe["across_windows"] if same else SEPARATE_SAMPLES["across_windows"],
    }


def is_auto(value: object) -> bool:
    """``value`` is the ``"auto"`` setting (a string test: settings may be numbers, bools or arrays)."""
    return isinstance(value, str) and value == AUTO


def resolve_auto(settings: dict[str, object], dims: int, length: int | None = None) -> dict[str, object]:
    """``settings`` (keys among ``rule``, ``rounds``, ``dilate``, ``prior``) with every ``"auto"`` value replaced by
    :data:`AUTO_CLEANING`'s for ``dims`` (1 → 1D signals, anything else → grids); on 1D signals of ``length``
    points an ``"auto"`` dilation is :func:`auto_dilate`'s (so it needs ``length``)."""
    table = dict(AUTO_CLEANING[1 if dims == 1 else 2])
    if dims == 1 and is_auto(settings.get("dilate")):
        if length is None:
            raise ValueError("an 'auto' clean_dilate on 1D signals depends on the sample length: pass length=")
        table["dilate"] = auto_dilate(length)
    return {k: table[k] if is_auto(v) else v for k, v in settings.items()}


def auto_dilate(length: int) -> int:
    """``clean_dilate="auto"`` on 1D signals of ``length`` points: :data:`AUTO_CLEANING`'s 32, or a quarter of the
    sample when that is shorter.

    32 was confirmed against 16 on samples of 256 points and windows of 128 (docs/RESULTS.md §30d); on 64-point
    samples the default measured was 16 (§29a), which a quarter keeps: a 32-point margin each way would hold out
    half or more of such a sample around a single flag."""
    return int(min(int(AUTO_CLEANING[1]["dilate"]), length // 4))


def auto_prior_m(length: int) -> int:
    """``clean_prior_m="auto"``: 64 points, or half the samples' ``length`` when that is shorter (at least 2).

    64 is what the confirmation measured at both lengths it ran (docs/RESULTS.md §27d: samples of 256 points and
    the long records' windows of 128); half of a shorter sample keeps every point covered by subsequences that
    still overlap. Callers keep the prior off below 2 points."""
    return int(np.clip(length // 2, 2, 64))


def auto_signature() -> str:
    """A short digest of what the ``"auto"`` settings resolve to: :data:`AUTO_CLEANING`, :func:`auto_prior_m` and
    :func:`auto_dilate` at every sample length up to 4096. Part of a benchmark cell's cache key (the parameters
    themselves still read ``"auto"``), so a changed resolution refits the cells that use it."""
    lengths = range(2, 4097)
    resolution = {
        "table": AUTO_CLEANING,
        "prior_m": [auto_prior_m(n) for n in lengths],
        "dilate": [auto_dilate(n) for n in lengths],
    }
    return hashlib.sha1(json.dumps(resolution, sort_keys=True).encode()).hexdigest()[:12]


def dilate_flags(flagged: np.ndarray, dilate: int) -> np.ndarray:
    """Bool ``(N, …grid)``: ``flagged`` widened by ``dilate`` points each way along the grid axes (not across
    samples); ``dilate`` 0 returns it unchanged."""
    if dilate > 0 and flagged.any():
        size = (1,) + (2 * dilate + 1,) * (flagged.ndim - 1)
        flagged = ndimage.maximum_filter(flagged, size=size, mode="constant")
    return flagged


def check_window_positions(positions: object, n_samples: int) -> np.ndarray:
    """``positions`` as an int64 ``(n_samples, 2)`` array — each window's record and first point on that record —
    or a one-line ``ValueError``."""
    try:
        array = np.asarray(positions)
    except Exception:  # noqa: BLE001 - any unreadable input gets the same message
        array = np.empty(0)
    if array.shape != (n_samples, 2) or not np.issubdtype(array.dtype, np.integer) or (array < 0).any():
        raise ValueError(
            f"positions must be non-negative integers of shape ({n_samples}, 2) — each window's record and first "
            f"point (an adapter Layout's record and offset) — got shape {getattr(array, 'shape', None)}"
        )
    return array.astype(np.int64)


def record_point_index(positions: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """Where each point of ``length``-point 1D windows lies on their records: ``(N, length)`` int indices into one
    grid of all records laid end to end, and that grid's size. ``positions`` ``(N, 2)`` int: each window's record and
    first point on it (``adapters.Layout.positions``). Two window points share an index when they are the same point
    of the same record."""
    positions = np.asarray(positions)
    _, record = np.unique(positions[:, 0], return_inverse=True)
    start = positions[:, 1]
    span = np.zeros(record.max() + 1, dtype=np.int64)
    np.maximum.at(span, record, start + length)
    base = np.concatenate([[0], np.cumsum(span)[:-1]])
    return (base[record] + start)[:, None] + np.arange(length), int(span.sum())


def spread_across_windows(flags: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Bool ``(N, L)``: ``flags`` ``(N, L)`` of 1D windows with every point flagged that any window covering the same
    point of the same record flags. ``positions`` ``(N, 2)`` int: each window's record and first point on it.

    A defect near one window's edge can stand out in the windows where it lies in the middle and not in the one
    where it sits at the edge; without this, that window keeps it (docs/RESULTS.md §35a)."""
    index, size = record_point_index(positions, flags.shape[1])
    hit = np.zeros(size, dtype=bool)
    hit[index[flags]] = True
    return hit[index]


def samples_holding(flagged: np.ndarray) -> np.ndarray:
    """Bool ``(N,)``: the samples of ``flagged`` ``(N, …grid)`` that hold at least one flagged point."""
    return flagged.reshape(len(flagged), -1).any(axis=1)


def flag_points(maps: np.ndarray, threshold: float, max_share: float, dilate: int) -> np.ndarray:
    """Bool ``(N, …grid)``: points whose per-position robust z-score exceeds ``threshold``, at most a ``max_share``
    of all points (the highest z first), then dilated by ``dilate`` points along the grid axes (so the returned share
    can be well above ``max_share``)."""
    if not 0.0 < max_share < 1.0:
        raise ValueError(f"clean_max_share must lie in (0, 1), got {max_share}")
    z = PositionNormalizer().fit(maps).transform(maps)
    cut = max(threshold, float(np.quantile(z, 1.0 - max_share)))
    return dilate_flags(z > cut, dilate)


def benjamini_hochberg(p: np.ndarray, fdr: float) -> np.ndarray:
    """Bool array of ``p``'s shape: the discoveries of the Benjamini–Hochberg step-up procedure at level ``fdr``."""
    if not 0.0 < fdr < 1.0:
        raise ValueError(f"clean_fdr must lie in (0, 1), got {fdr}")
    flat = np.asarray(p, dtype=np.float64).ravel()
    m = flat.size
    order = np.argsort(flat)
    passed = flat[order] <= fdr * np.arange(1, m + 1) / m
    out = np.zeros(m, dtype=bool)
    if passed.any():
        out[order[: int(np.flatnonzero(passed)[-1]) + 1]] = True
    return out.reshape(np.shape(p))


def _log_z(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Per-position robust z-score of the log of the smoothed maps ``(N, …grid)``."""
    smooth = smooth_maps(np.asarray(maps, dtype=np.float64), sigma)
    eps = 1e-3 * max(float(np.median(smooth)), 1e-12)
    logs = np.log(np.maximum(smooth, 0.0) + eps)
    return PositionNormalizer().fit(logs).transform(logs)


def flag_points_test(maps: np.ndarray, fdr: float, dilate: int, sigma: float = 2.0) -> np.ndarray:
    """Bool ``(N, …grid)``: points significantly above the bulk of the training maps ``(N, …grid)``.

    The maps are smoothed with a Gaussian of ``sigma`` points, log-transformed and z-scored per position (median /
    MAD over the samples); one-sided Gaussian p-values pass Benjamini–Hochberg at ``fdr`` over all points, and the
    discoveries are dilated by ``dilate`` points.
    """
    z = _log_z(maps, sigma)
    return dilate_flags(benjamini_hochberg(stats.norm.sf(z), fdr), dilate)


def sample_statistics(maps: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Two per-sample statistics of the training maps ``(N, …grid)`` → ``(N, 2)``: the log of the sample's mean map
    value (a sample unlike the rest everywhere) and the 99th percentile of its log-map z-scores (a localised
    defect)."""
    maps = np.asarray(maps, dtype=np.float64)
    flat = maps.reshape(len(maps), -1)
    mean = np.log(flat.mean(axis=1) + 1e-3 * max(float(np.median(flat)), 1e-12))
    tail = np.quantile(_log_z(maps, sigma).reshape(len(maps), -1), 0.99, axis=1)
    return np.stack([mean, tail], axis=1)


def discord_maps(
    Z: np.ndarray, max_reference: int, m: int | None = None, rows: slice | None = None, k: int = 1
) -> np.ndarray:
    """The discord prior's raw maps ``(n, C, L)`` float64 of the training samples ``Z`` ``(N, C, L)`` (``rows`` of
    them only, when given: ``n`` of ``N``): each sample of the first half (``N // 2``, in order) profiled against
    the second half and the other way round — per channel and point the smallest raw distance of the length-``m``
    subsequences covering it (default :func:`~rddpm_signals.subsequences.default_m`) to their nearest neighbour
    there (``k`` > 1: their ``k``-th nearest distinct one; at most ``max_reference`` reference points per channel,
    a seeded subset beyond). A sample's map does not depend on the other rows asked for, so processes can share the
    samples and gather the maps."""
    Z = np.asarray(Z, dtype=np.float64)
    n = len(Z)
    if n < 2:
        raise ValueError(f"clean_prior='discord' needs at least 2 training samples, got {n}: pass more samples")
    m = default_m(Z.shape[-1]) if m is None else int(m)
    half = n // 2
    wanted = np.arange(n)[slice(None) if rows is None else rows]
    parts = [
        channel_profile_maps(Z[idx], reference_of(other, max_reference, 0), m, False, "min", k=k)
        for idx, other in ((wanted[wanted < half], Z[half:]), (wanted[wanted >= half], Z[:half]))
        if len(idx)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, *Z.shape[1:]))


def record_discord_maps(Z: np.ndarray, positions: np.ndarray, m: int | None = None, k: int = 1) -> np.ndarray:
    """The discord prior's raw maps ``(N, C, L)`` float64 of 1D windows ``Z`` ``(N, C, L)`` cut from records, each
    subsequence profiled against the rest of the records rather than against the other half of the windows
    (:func:`discord_maps`). ``positions`` ``(N, 2)`` int: each window's record and first point on it.

    The windows are laid back onto their records (points no window covers are NaN; records are kept apart by a NaN),
    and per channel each length-``m`` subsequence gets the raw distance to its ``k``-th nearest distinct neighbour
    on the records (a self-join: neighbours within ``m / 4`` of the subsequence itself are trivial matches,
    :func:`~rddpm_signals.subsequences.nearest_distances`); a point takes the smallest over the subsequences
    covering it, and each window reads its points back. A record point has one value in every window that covers
    it, and no subsequence meets itself through an overlapping window. Cost: (record points)² · m per channel."""
    Z = np.asarray(Z, dtype=np.float64)
    n, channels, length = Z.shape
    m = default_m(length) if m is None else int(m)
    index, size = record_point_index(positions, length)
    # record_point_index lays the records end to end in order: one NaN slot before each record but the first keeps
    # every subsequence on one record
    record = np.unique(np.asarray(positions)[:, 0], return_inverse=True)[1]
    spaced = index + record[:, None]
    total = size + int(record.max())
    if total > RECORD_PRIOR_MAX_POINTS:
        raise ValueError(
            f"the records hold {size} points, more than clean_prior_reference='record' profiles "
            f"({RECORD_PRIOR_MAX_POINTS}): use clean_prior_reference='halves'"
        )
    maps = np.zeros(Z.shape)
    for c in range(channels):
        series = np.full(total, np.nan)
        series[spaced] = Z[:, c]
        values = points_of(nearest_distances(series, None, m, False, k), m, "min")
        maps[:, c] = values[spaced]
    return maps


def flag_discord_maps(maps: np.ndarray, fdr: float, dilate: int, sigma: float) -> np.ndarray:
    """Bool ``(N, L)``: the discords among :func:`discord_maps`' ``maps`` ``(N, C, L)`` of the whole training set.
    Each channel's maps are smoothed by ``sigma``, log-transformed and z-scored per position like
    :func:`flag_points_test`'s; a point's p-value is its largest z-score's, Bonferroni-corrected over the channels
    (a defect on one channel of four is not diluted fourfold); Benjamini–Hochberg at ``fdr`` runs over all points
    and the discoveries are dilated by ``dilate``."""
    channels = maps.shape[1]
    z = np.stack([_log_z(maps[:, c], sigma) for c in range(channels)], axis=1).max(axis=1)
    p = np.minimum(1.0, channels * stats.norm.sf(z))
    return dilate_flags(benjamini_hochberg(p, fdr), dilate)


def flag_discords(
    Z: np.ndarray, fdr: float, dilate: int, sigma: float, max_reference: int, m: int | None = None
) -> np.ndarray:
    """Bool ``(N, L)``: the points of the training samples ``Z`` ``(N, C, L)`` that are discords against the rest —
    :func:`flag_discord_maps` of :func:`discord_maps`. Splitting the halves by order, not alternately, keeps
    overlapping windows cut from one record out of each other's reference, where a defect would find itself as a
    neighbour."""
    return flag_discord_maps(discord_maps(Z, max_reference, m), fdr, dilate, sigma)


SAMPLE_RULES = (False, True, "two_sided", "flagged")


def check_cleaning_settings(
    *,
    start: float,
    rounds: int | str,
    max_share: float,
    rule: str,
    fdr: float,
    samples: bool | str,
    allow_auto: bool = False,
) -> None:
    """Raise ``ValueError`` naming the detector's ``clean_*`` parameter at fault. The one check of these settings:
    :class:`SelfCleaning` and ``RobustDiffusion``'s parameter validation both call it (the latter with
    ``allow_auto``: ``rule``, ``rounds`` and ``samples`` may also be ``"auto"``, resolved at fit)."""
    auto = (AUTO,) if allow_auto else ()
    if not 0.0 <= start < 1.0:
        raise ValueError(f"clean_start must lie in [0, 1) (a share of the training steps), got {start}")
    if not ((allow_auto and is_auto(rounds)) or is_count(rounds, 1)):
        raise ValueError(f"clean_rounds must be an integer >= 1{' or ' + repr(AUTO) if auto else ''}, got {rounds!r}")
    if not 0.0 < max_share < 1.0:
        raise ValueError(f"clean_max_share must lie in (0, 1), got {max_share}")
    if not ((allow_auto and is_auto(rule)) or rule in CLEAN_RULES):
        raise ValueError(f"unknown clean_rule {rule!r}: use one of {(*CLEAN_RULES, *auto)}")
    if not 0.0 < fdr < 1.0:
        raise ValueError(f"clean_fdr must lie in (0, 1), got {fdr}")
    if not ((allow_auto and is_auto(samples)) or samples in SAMPLE_RULES):
        raise ValueError(f"clean_samples must be one of {(*SAMPLE_RULES, *auto)}, got {samples!r}")


def flag_samples(
    maps: np.ndarray,
    fdr: float,
    sigma: float = 2.0,
    two_sided: bool = False,
    refine: bool = False,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Bool ``(N,)``: training samples whose statistics (:func:`sample_statistics`) lie significantly above the
    bulk (with ``two_sided``, the map mean also significantly below it): each statistic is robustly z-scored across
    samples (median / MAD), the two p-values are combined by Bonferroni (twice the smaller), and
    Benjamini–Hochberg at ``fdr`` runs over the samples.

    ``refine``: resist masking — many outlying samples widen the MAD and hide one another — by estimating the bulk's
    median / MAD again without the samples already flagged, until no sample is added (the flagged set only grows,
    and the bulk stays a majority of the samples).

    ``keep`` ``(N,)`` bool: samples flagged earlier (an earlier cleaning round) that stay flagged; the bulk is
    estimated without them."""
    feats = sample_statistics(maps, sigma)
    flagged = np.zeros(len(feats), dtype=bool) if keep is None else keep.copy()
    while True:
        z = PositionNormalizer().fit(feats[~flagged]).transform(feats)
        p_each = stats.norm.sf(z)
        if two_sided:
            p_each[:, 0] = 2.0 * stats.norm.sf(np.abs(z[:, 0]))
        found = flagged | benjamini_hochberg(np.minimum(1.0, 2.0 * p_each.min(axis=1)), fdr)
        if not refine:
            return found
        if np.array_equal(found, flagged) or 2 * found.sum() > len(feats):
            return flagged
        flagged = found


class SelfCleaning:
    """A :class:`~rddpm_signals.training.Reweighter` that re-flags the training points ``rounds`` times, evenly
    spaced from ``start`` (a share of ``steps``) to the end. The settings have no defaults here: the detector's
    ``clean_*`` parameters are the one place they are set.

    ``score(ema)`` must return the training set's anomaly maps ``(N, …grid)`` under the EMA network. ``prior``
    ``(N, …grid)`` bool, when given (a refit after an earlier cleaning run, or a model-free prior such as
    :func:`flag_discords`), is excluded from step 0 on and added to every later mask.
    ``rule`` is ``"share"`` (``threshold``, ``max_share``) or ``"test"`` (``fdr``, on maps
    smoothed by ``sigma``); ``samples`` (``True`` or ``"two_sided"``) also drops whole samples that
    :func:`flag_samples` flags at ``fdr`` (``sample_refine``: its masking-resistant form; ``sample_sticky``: a
    sample once dropped stays dropped in every later round); ``"flagged"`` drops every sample holding a flagged point
    (the prior's included) whole, in a round where they are at most half of the samples (else that round keeps its
    flagged points only; ``sample_sticky``: the samples dropped by an earlier round count as holding a flag).
    ``positions`` ``(N, 2)`` int, for 1D windows cut from records: each window's record and first point; a point is
    then flagged in every window that covers it once one does (:func:`spread_across_windows`).
    ``history`` records each round as ``(step, share of the points excluded, samples dropped whole)``; a checkpoint
    keeps it (:meth:`state_dict`), so a resumed fit still reports every round. ``n_samples``: the training set's size;
    when given and several processes train, ``score(ema, rows)`` is called with this process's ``rows`` (a slice)
    instead and must return the maps of those samples only.
    """

    def __init__(
        self,
        score: Callable[[nn.Module], np.ndarray],
        steps: int,
        *,
        start: float,
        rounds: int,
        threshold: float,
        max_share: float,
        dilate: int,
        prior: np.ndarray | None = None,
        rule: str = "share",
        fdr: float = 0.01,
        samples: bool | str = False,
        sigma: float = 2.0,
        n_samples: int | None = None,
        sample_refine: bool = False,
        sample_sticky: bool = False,
        positions: np.ndarray | None = None,
    ):
        check_cleaning_settings(start=start, rounds=rounds, max_share=max_share, rule=rule, fdr=fdr, samples=samples)
        first = int(start * steps)
        self.steps_due = {first + (steps - first) * k // rounds for k in range(rounds)}
        if prior is not None:
            self.steps_due.add(0)
        self.prior = prior
        self.score, self.threshold, self.max_share, self.dilate = score, threshold, max_share, dilate
        self.rule, self.fdr, self.samples, self.sigma = rule, fdr, samples, sigma
        self.n_samples = n_samples
        self.sample_refine = sample_refine
        self.sample_sticky = sample_sticky
        self.positions = positions
        self.dropped: np.ndarray | None = None  # (N,) samples dropped whole so far, kept with sample_sticky
        self.mask: np.ndarray | None = None
        self.history: list[tuple[int, float, int]] = []
        self._step = -1

    def due(self, step: int) -> bool:
        self._step = step
        return step in self.steps_due

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a training checkpoint keeps of the cleaning: ``history`` as a ``(rounds, 3)`` float64 tensor, and
        the samples dropped so far ``(N,)`` bool once a round has dropped any (``sample_sticky`` carries them on)."""
        state = {"history": torch.tensor(self.history, dtype=torch.float64).reshape(-1, 3)}
        if self.dropped is not None:
            state["dropped"] = torch.from_numpy(self.dropped.copy())
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.history = [(int(step), share, int(dropped)) for step, share, dropped in state["history"].tolist()]
        self.dropped = state["dropped"].numpy().copy() if "dropped" in state else None

    def _flag(self, maps: np.ndarray) -> tuple[np.ndarray, int]:
        """The flagged points ``(N, …grid)`` and the number of samples dropped whole."""
        # flag_points is looked up in this module at every call, so benchmarks/cleaning.py can swap it.
        if self.rule == "share":
            mask = flag_points(maps, self.threshold, self.max_share, self.dilate)
        else:
            mask = flag_points_test(maps, self.fdr, self.dilate, self.sigma)
        if self.samples in (False, "flagged"):
            return mask, 0
        keep = self.dropped if self.sample_sticky else None
        drop = flag_samples(
            maps, self.fdr, self.sigma, two_sided=self.samples == "two_sided", refine=self.sample_refine, keep=keep
        )
        self.dropped = drop
        mask[drop] = True
        return mask, int(drop.sum())

    def _maps(self, ema: nn.Module) -> np.ndarray:
        """The training set's maps ``(N, …grid)``: scored here, or share by share across the processes."""
        shard = Shard.current()
        if shard is None or self.n_samples is None:
            return self.score(ema)
        shard = shard.of(self.n_samples)
        part = torch.from_numpy(np.ascontiguousarray(self.score(ema, shard.rows)))
        return shard.gather(part).numpy()

    def __call__(self, ema: nn.Module) -> torch.Tensor:
        dropped = 0
        if self.prior is not None and self._step == 0:
            self.mask = self.prior.copy()  # nothing to score with yet
        else:
            self.mask, dropped = self._flag(self._maps(ema))
            if self.prior is not None:
                self.mask |= self.prior
        if self.positions is not None:
            self.mask = spread_across_windows(self.mask, self.positions)
        if self.samples == "flagged":
            holds = samples_holding(self.mask)
            if self.sample_sticky and self.dropped is not None:
                holds |= self.dropped
            # Whole samples go only while they are a minority: past half, the round keeps its flagged points (as
            # clean_samples=False), so the training set never shrinks to a remnant or to nothing.
            if 2 * holds.sum() <= len(holds):
                self.mask[holds] = True
                dropped = int(holds.sum())
                if self.sample_sticky:
                    self.dropped = holds
        self.history.append((self._step, float(self.mask.mean()), dropped))
        return torch.from_numpy(~self.mask).float().unsqueeze(1)
