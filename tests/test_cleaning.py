"""Self-cleaning rules: the statistical test flags (almost) nothing on defect-free maps and finds planted
outliers; the whole-sample rule drops a planted odd sample; the no-op values reproduce the old masks exactly."""

import numpy as np
import pytest
from scipy import ndimage

from helpers import TINY_1D
from rddpm_signals import RobustDiffusion
from rddpm_signals.cleaning import (
    SelfCleaning,
    auto_by_layout,
    auto_dilate,
    auto_prior_m,
    benjamini_hochberg,
    discord_maps,
    flag_discord_maps,
    flag_discords,
    flag_points,
    flag_points_test,
    flag_samples,
    record_discord_maps,
    record_point_index,
    resolve_auto,
    spread_across_windows,
)
from rddpm_signals.scoring import PositionNormalizer
from rddpm_signals.subsequences import default_m, profile_maps, reference_of

# what a fit records in clean_settings_ for the grids' "auto" recipe (and for it spelled out on 1D samples)
GRID_CHOICE = {
    "rule": "share",
    "rounds": 5,
    "dilate": 2,
    "prior": "none",
    "prior_m": None,
    "samples": False,
    "across_windows": False,
}


def _noise_maps(shape, seed=0):
    return np.abs(np.random.default_rng(seed).normal(size=shape))


def _old_flag_points(maps, threshold, max_share, dilate):
    """The rule as it was before ``clean_rule`` existed (copied), the reference for the no-op check."""
    z = PositionNormalizer().fit(maps).transform(maps)
    flagged = z > max(threshold, float(np.quantile(z, 1.0 - max_share)))
    if dilate > 0 and flagged.any():
        flagged = ndimage.maximum_filter(flagged, size=(1,) + (2 * dilate + 1,) * (maps.ndim - 1), mode="constant")
    return flagged


@pytest.mark.parametrize("shape", [(120, 256), (100, 24, 24)])
def test_test_rule_flags_nothing_on_noise_where_the_share_rule_flags_much(shape):
    maps = _noise_maps(shape)
    assert flag_points_test(maps, fdr=0.01, dilate=2).mean() <= 0.001
    assert not flag_samples(maps, fdr=0.01).any()
    assert flag_points(maps, 1.5, 0.1, 2).mean() > 0.3  # the fixed-share rule excludes a lot regardless


def test_test_rule_finds_planted_outliers():
    rng = np.random.default_rng(1)
    maps = _noise_maps((120, 256), seed=1)
    truth = np.zeros(maps.shape, dtype=bool)
    for i in range(24):  # 20 % of the samples carry one defect at a random place
        s = rng.integers(0, 240)
        truth[i, s : s + 10] = True
    flagged = flag_points_test(maps + 3.0 * truth, fdr=0.01, dilate=2)
    assert flagged[truth].mean() > 0.95
    assert flagged[24:].mean() < 0.001  # clean samples keep their points


def test_whole_sample_rule_drops_an_odd_sample():
    maps = _noise_maps((60, 16, 16), seed=2)
    maps[7] *= 2.5  # a sample of another kind: reconstructed worse everywhere, no single point stands out much
    dropped = flag_samples(maps, fdr=0.01)
    assert dropped[7] and dropped.sum() == 1


def test_two_sided_sample_rule_also_drops_a_sample_reconstructed_too_well():
    maps = _noise_maps((60, 16, 16), seed=2)
    maps[7] *= 0.2  # a simpler kind of sample, reconstructed better everywhere than the normal ones
    assert not flag_samples(maps, fdr=0.01).any()
    dropped = flag_samples(maps, fdr=0.01, two_sided=True)
    assert dropped[7] and dropped.sum() == 1
    assert not flag_samples(_noise_maps((60, 16, 16), seed=2), fdr=0.01, two_sided=True).any()


def test_refined_sample_test_resists_masking():
    maps = _noise_maps((120, 64), seed=1)
    maps[:36] *= np.linspace(1.15, 2.0, 36)[:, None]  # 30 % of the samples reconstructed worse, by graded amounts
    once = flag_samples(maps, fdr=0.01)
    refined = flag_samples(maps, fdr=0.01, refine=True)
    assert not (once & ~refined).any()  # the flagged set only grows
    assert refined[:36].sum() >= once[:36].sum() + 10  # the first pass's wide MAD hid these (16 → 29 here)
    assert not refined[36:].any()
    assert not flag_samples(_noise_maps((120, 64), seed=11), fdr=0.01, refine=True).any()


def test_refined_sample_test_keeps_the_bulk_a_majority():
    maps = _noise_maps((120, 64), seed=5)
    maps[:50] *= np.linspace(1.5, 4.0, 50)[:, None]
    assert 2 * flag_samples(maps, fdr=0.3, refine=True).sum() <= len(maps)  # unguarded: 88 of 120


def test_sticky_sample_drops_survive_a_round_where_the_samples_no_longer_stand_out():
    loud = _noise_maps((80, 64), seed=3)
    loud[:8] *= 3.0  # round 1: these samples stand out
    quiet = _noise_maps((80, 64), seed=4)  # round 2: the cleaner model no longer singles them out
    rounds = iter([loud, quiet, quiet])

    def cleaner(sticky):
        return SelfCleaning(
            lambda ema: next(rounds),
            30,
            start=0.0,
            rounds=3,
            threshold=1.5,
            max_share=0.1,
            dilate=0,
            rule="test",
            samples="two_sided",
            sample_sticky=sticky,
        )

    fresh = cleaner(False)
    assert fresh(None)[:8].eq(0).all() and fresh(None)[:8].eq(1).all()  # each round decides afresh
    rounds = iter([loud, quiet, quiet, quiet])
    sticky = cleaner(True)
    assert sticky(None)[:8].eq(0).all() and sticky(None)[:8].eq(0).all()
    assert [dropped for _, _, dropped in sticky.history] == [8, 8]
    resumed = cleaner(True)
    resumed.load_state_dict(sticky.state_dict())  # a checkpoint keeps the drops
    weights = resumed(None)
    assert weights[:8].eq(0).all() and weights[8:].mean() > 0.99
    assert "dropped" not in cleaner(True).state_dict()


def test_sticky_flagged_drops_keep_a_window_out_once_its_flags_are_gone():
    loud = _noise_maps((60, 64), seed=5)
    loud[3, 10:14] *= 40.0  # round 1: sample 3 holds a flag
    quiet = _noise_maps((60, 64), seed=6)  # round 2: the network no longer singles it out
    common = {"start": 0.0, "rounds": 2, "threshold": 1.5, "max_share": 0.1, "dilate": 0, "rule": "test"}

    def run(sticky):
        rounds = iter([loud, quiet])
        cleaner = SelfCleaning(lambda ema: next(rounds), 20, **common, samples="flagged", sample_sticky=sticky)
        return cleaner, [cleaner(None)[:, 0] for _ in range(2)]

    fresh, (_, second) = run(False)
    assert second[3].eq(1).all()  # each round decides afresh: the window is back
    sticky, (first, second) = run(True)
    assert first[3].eq(0).all() and second[3].eq(0).all() and second.sum() == 59 * 64
    assert [dropped for _, _, dropped in sticky.history] == [1, 1]
    resumed = SelfCleaning(lambda ema: quiet, 20, **common, samples="flagged", sample_sticky=True)
    resumed.load_state_dict(sticky.state_dict())  # a checkpoint keeps the drops
    assert resumed(None)[3, 0].eq(0).all()


def test_flagged_sample_rule_drops_every_sample_holding_a_flag_the_priors_included():
    maps = _noise_maps((60, 64), seed=5)
    maps[3, 10:14] *= 40.0  # a localised defect: flagged points in sample 3 only
    prior = np.zeros((60, 64), dtype=bool)
    prior[7, 50] = True  # the prior holds out one point of sample 7
    common = {"start": 0.0, "rounds": 2, "threshold": 1.5, "max_share": 0.1, "dilate": 0, "rule": "test"}
    cleaner = SelfCleaning(lambda ema: maps, 20, **common, prior=prior, samples="flagged")
    assert cleaner.due(0)
    weights = cleaner(None)[:, 0]  # step 0: the prior alone, whole samples
    assert weights[7].eq(0).all() and weights.sum() == 59 * 64
    assert cleaner.due(10)
    weights = cleaner(None)[:, 0]
    assert weights[[3, 7]].eq(0).all() and weights.sum() == 58 * 64
    assert [dropped for _, _, dropped in cleaner.history] == [1, 2]
    points = SelfCleaning(lambda ema: maps, 20, **common, prior=prior)  # without: the flagged points only
    for step in (0, 10):
        points.due(step)
        weights = points(None)[:, 0]
    assert 0 < (weights[3] == 0).sum() < 64 and (weights[7] == 0).sum() == 1
    rng = np.random.default_rng(9)
    X = np.stack([_pulse_record(64, rng) for _ in range(16)])[:, None, :].astype(np.float32)
    X[2, 0, 20:30] = 1.5
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2, "clean_samples": "flagged"}
    det = RobustDiffusion(**params).fit(X)  # the 1D "auto" recipe, samples dropped whole
    held = det.clean_mask_.reshape(16, -1)
    assert held[2].all() and np.array_equal(held.all(axis=1), held.any(axis=1))
    with pytest.raises(ValueError, match="clean_samples"):
        SelfCleaning(lambda ema: maps, 20, **common, samples="all")
    # flags in most samples: whole samples go only while they are at most half, else the round keeps the points
    for count, whole in ((30, True), (31, False)):
        prior = np.zeros((60, 64), dtype=bool)
        prior[:count, 0] = True
        cleaner = SelfCleaning(lambda ema: maps, 20, **common, prior=prior, samples="flagged")
        cleaner.due(0)
        weights = cleaner(None)[:, 0]
        assert weights.sum() == ((60 - count) * 64 if whole else 60 * 64 - count)
        assert cleaner.history[-1][2] == (count if whole else 0)


def test_auto_recipe_drops_flagged_windows_whole_without_the_trim_only_where_1d_samples_overlap():
    overlapping = {"samples": "flagged", "loss": "mse", "across_windows": True}
    assert auto_by_layout(1, True) == overlapping
    separate = {"samples": False, "loss": "lts", "across_windows": False}
    assert auto_by_layout(1, False) == auto_by_layout(2, True) == auto_by_layout(2, False) == separate
    assert auto_by_layout(1, True, self_clean=False) == separate  # nothing dropped: the trim stays
    assert auto_by_layout(1, True, samples="flagged") == overlapping
    assert auto_by_layout(1, True, samples=False) == separate  # windows kept whole: the trim stays
    two_sided = {"samples": "two_sided", "loss": "lts", "across_windows": False}
    assert auto_by_layout(1, True, samples="two_sided") == two_sided
    assert auto_by_layout(1, False, samples="flagged") == {**separate, "samples": "flagged"}
    rng = np.random.default_rng(9)
    X = np.stack([_pulse_record(64, rng) for _ in range(16)])[:, None, :].astype(np.float32)
    X[2, 0, 20:30] = 1.5
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2}
    told = RobustDiffusion(**params).fit(X, overlapping=True)  # no positions: nothing to spread flags over
    assert told.clean_settings_["samples"] == "flagged" and told.loss_ == "mse"
    assert told.clean_settings_["across_windows"] is False
    held = told.clean_mask_.reshape(16, -1)
    assert held[2].all() and np.array_equal(held.all(axis=1), held.any(axis=1))
    explicit = RobustDiffusion(**params, clean_samples="flagged", loss="mse").fit(X)
    assert np.array_equal(told.clean_mask_, explicit.clean_mask_)
    assert np.array_equal(told.anomaly_map(X), explicit.anomaly_map(X))
    untold = RobustDiffusion(**params).fit(X)  # separate samples: flagged points only, the trimmed loss
    assert untold.clean_settings_["samples"] is False and untold.loss_ == "lts"
    assert not np.array_equal(untold.clean_mask_, told.clean_mask_)
    trimmed = RobustDiffusion(**params, loss="lts", clean_samples=False).fit(X)
    assert np.array_equal(untold.anomaly_map(X), trimmed.anomaly_map(X))
    pinned = RobustDiffusion(**params, clean_samples=False, loss="lts").fit(X, overlapping=True)  # explicit wins
    assert pinned.clean_settings_["samples"] is False and pinned.loss_ == "lts"
    assert np.array_equal(pinned.clean_mask_, untold.clean_mask_)
    assert np.array_equal(pinned.anomaly_map(X), untold.anomaly_map(X))
    plain = RobustDiffusion(**params, self_clean=False).fit(X, overlapping=True)  # nothing dropped: trim kept
    assert plain.loss_ == "lts"
    images = np.random.default_rng(5).normal(size=(6, 1, 8, 8)).astype(np.float32)
    tiles = RobustDiffusion(**{**TINY_1D, "dims": 2}).fit(images, overlapping=True)
    assert tiles.clean_settings_["samples"] is False and tiles.loss_ == "lts"  # overlapping grids: not measured
    with pytest.raises(ValueError, match="unknown loss 'msa'"):
        RobustDiffusion(**params, loss="msa").fit(X)


def test_benjamini_hochberg_step_up():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    # m = 10, q = 0.05: thresholds 0.005, 0.01, 0.015, …; the largest k with p_(k) <= k q / m is k = 2
    assert benjamini_hochberg(p, 0.05).tolist() == [True, True] + [False] * 8
    with pytest.raises(ValueError, match="clean_fdr"):
        benjamini_hochberg(p, 0.0)


def test_share_rule_is_the_old_rule_exactly():
    maps = _noise_maps((40, 64), seed=3)
    maps[:5, 10:20] += 2.0
    assert np.array_equal(flag_points(maps, 1.5, 0.1, 2), _old_flag_points(maps, 1.5, 0.1, 2))
    cleaner = SelfCleaning(lambda ema: maps, 10, start=0.1, rounds=2, threshold=1.5, max_share=0.1, dilate=2)
    weights = cleaner(None)
    assert np.array_equal(weights[:, 0].numpy() == 0, _old_flag_points(maps, 1.5, 0.1, 2))
    assert [dropped for _, _, dropped in cleaner.history] == [0]


def test_detector_no_op_values_reproduce_the_default_fit():
    X = np.random.default_rng(4).normal(size=(10, 2, 32)).astype(np.float32)
    default = RobustDiffusion(**TINY_1D).fit(X)
    # on 1D signals "auto" is the "test" rule, 10 rounds, dilation 32 or L // 4 (8 here) and the discord prior of
    # 64 points or L // 2
    waveform = {"clean_rule": "test", "clean_rounds": 10, "clean_dilate": 8, "clean_prior": "discord"}
    explicit = RobustDiffusion(**TINY_1D, **waveform, clean_prior_m=16, clean_fdr=0.01, clean_samples=False).fit(X)
    chosen = {**{k[6:]: v for k, v in waveform.items()}, "prior_m": 16, "samples": False, "across_windows": False}
    assert default.clean_settings_ == chosen
    assert np.array_equal(default.clean_mask_, explicit.clean_mask_)
    assert np.array_equal(default.anomaly_map(X), explicit.anomaly_map(X))
    grid = {"clean_rule": "share", "clean_rounds": 5, "clean_dilate": 2, "clean_prior": "none"}
    share = RobustDiffusion(**TINY_1D, **grid).fit(X)
    assert share.clean_settings_ == GRID_CHOICE
    test = RobustDiffusion(**TINY_1D, **{**grid, "clean_rule": "test"}, clean_samples=True).fit(X)
    assert test.clean_mask_.mean() < share.clean_mask_.mean()
    two_sided = RobustDiffusion(**TINY_1D, **{**grid, "clean_rule": "test"}, clean_samples="two_sided").fit(X)
    assert two_sided.clean_mask_.mean() < share.clean_mask_.mean()


def test_auto_cleaning_keeps_the_share_rule_on_images_and_the_prior_off_where_it_cannot_run():
    images = np.random.default_rng(5).normal(size=(6, 1, 8, 8)).astype(np.float32)
    tiny_2d = {**TINY_1D, "dims": 2}
    auto = RobustDiffusion(**tiny_2d).fit(images)
    assert auto.clean_settings_ == GRID_CHOICE
    grid = {"clean_rule": "share", "clean_rounds": 5, "clean_dilate": 2, "clean_prior": "none"}
    explicit = RobustDiffusion(**tiny_2d, **grid).fit(images)
    assert np.array_equal(auto.clean_mask_, explicit.clean_mask_)
    one = np.random.default_rng(5).normal(size=(1, 1, 32)).astype(np.float32)
    assert RobustDiffusion(**TINY_1D).fit(one).clean_settings_["prior"] == "none"  # the prior needs two halves
    assert not hasattr(RobustDiffusion(**TINY_1D, self_clean=False).fit(one), "clean_settings_")


def test_bad_clean_options_are_rejected():
    X = np.zeros((4, 1, 16), dtype=np.float32)
    with pytest.raises(ValueError, match="clean_rule"):
        RobustDiffusion(**TINY_1D, clean_rule="top").fit(X)
    with pytest.raises(ValueError, match="clean_fdr"):
        RobustDiffusion(**TINY_1D, clean_fdr=1.5).fit(X)
    with pytest.raises(ValueError, match="clean_samples"):
        RobustDiffusion(**TINY_1D, clean_samples="low").fit(X)
    # checked with the other parameters, before any training (one check, shared with SelfCleaning)
    for bad, name in [({"clean_start": 1.0}, "clean_start"), ({"clean_rounds": 0}, "clean_rounds")]:
        with pytest.raises(ValueError, match=name):
            RobustDiffusion(**TINY_1D, **bad).fit(X)
    with pytest.raises(ValueError, match="clean_max_share"):
        RobustDiffusion(**TINY_1D, clean_max_share=0.0).fit(X)


def test_detector_records_every_cleaning_round(tmp_path):
    X = np.random.default_rng(6).normal(size=(10, 1, 32)).astype(np.float32)
    X[2, 0, 8:14] += 6.0
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2, "clean_rule": "share"}
    det = RobustDiffusion(**params, clean_prior="none", clean_samples=True, clean_refits=1).fit(X)
    history = det.clean_history_
    # stage 0: rounds at steps 2 and 6; stage 1 (the refit): the prior at step 0, then the same two rounds
    np.testing.assert_array_equal(history[:, :2], [[0, 2], [0, 6], [1, 0], [1, 2], [1, 6]])
    assert history[-1, 2] == det.clean_mask_.mean()
    assert history[2, 3] == 0  # the prior round scores nothing and drops nothing
    np.testing.assert_array_equal(history[:, 3], np.round(history[:, 3]))
    det.save(tmp_path / "d.pt")
    loaded = RobustDiffusion.load(tmp_path / "d.pt")
    np.testing.assert_array_equal(loaded.clean_history_, history)
    assert loaded.clean_settings_ == det.clean_settings_
    plain = RobustDiffusion(**{**params, "self_clean": False}).fit(X)
    assert not hasattr(plain, "clean_history_")


def _pulse_record(length, rng):
    """A jittered pulse train ``(length,)`` with small noise: a stand-in for a repetitive process signal."""
    t = np.arange(length)
    x = np.zeros(length)
    for centre in np.arange(8, length, 24) + rng.integers(-2, 3, size=len(np.arange(8, length, 24))):
        x += np.exp(-0.5 * ((t - centre) / 2.0) ** 2)
    return x + 0.02 * rng.normal(size=length)


def test_discord_prior_finds_defects_without_a_model_and_spares_clean_samples():
    rng = np.random.default_rng(7)
    X = np.stack([_pulse_record(128, rng) for _ in range(40)])[:, None, :]
    truth = np.zeros((40, 128), dtype=bool)
    # 10 % of the samples: a stretch of the pulse train replaced by a plateau, each at its own place and level (a
    # defect repeated exactly in the other half would be its own neighbour: discords find the rare, not the repeated)
    for i, start, level in [(3, 20, 1.3), (11, 60, 1.6), (25, 90, 1.4), (32, 40, 1.8)]:
        X[i, 0, start : start + 12] = level
        truth[i, start : start + 12] = True
    flagged = flag_discords(X, fdr=0.01, dilate=0, sigma=2.0, max_reference=20000)
    assert flagged.shape == (40, 128)
    assert flagged[truth].mean() > 0.8
    assert flagged[~truth.any(axis=1)].mean() < 0.005
    clean = flag_discords(np.delete(X, [3, 11, 25, 32], axis=0), fdr=0.01, dilate=0, sigma=2.0, max_reference=20000)
    assert clean.mean() < 0.005


def test_discord_prior_splits_by_order_so_overlapping_windows_do_not_hide_a_defect():
    """Windows cut with overlap from one record: a defect sits in several neighbouring windows. With each half of the
    samples (in their order) profiled against the other half, the copies are not each other's neighbours; with the
    same windows interleaved (so each half holds every other window) they are, and the defect is missed."""
    rng = np.random.default_rng(8)
    record = _pulse_record(48 * 8 + 64, rng)
    record[60:72] = 1.5  # in the first half's windows only (a defect across the split would be missed: §25)
    starts = range(0, len(record) - 63, 8)
    windows = np.stack([record[s : s + 64] for s in starts])[:, None, :]
    truth = np.stack([(np.arange(s, s + 64) >= 60) & (np.arange(s, s + 64) < 72) for s in starts])
    assert truth.any(axis=1).sum() >= 6  # the defect appears in many overlapping windows
    flagged = flag_discords(windows, fdr=0.01, dilate=0, sigma=2.0, max_reference=20000)
    assert flagged[truth].mean() > 0.5
    assert flagged[~truth.any(axis=1)].mean() < 0.01
    interleaved = np.r_[0 : len(windows) : 2, 1 : len(windows) : 2]
    mixed = flag_discords(windows[interleaved], fdr=0.01, dilate=0, sigma=2.0, max_reference=20000)
    assert mixed[truth[interleaved]].mean() < 0.1


def _windows_of(records, length, hop):
    """Windows ``(N, 1, length)`` cut with ``hop`` from each of ``records`` and their positions ``(N, 2)``."""
    cut = [(r, s) for r, rec in enumerate(records) for s in range(0, len(rec) - length + 1, hop)]
    windows = np.stack([records[r][s : s + length] for r, s in cut])[:, None, :]
    return windows, np.array(cut)


def test_record_prior_finds_a_defect_where_the_halves_overlap_which_the_halves_see_as_their_own_neighbour():
    """Windows cut with overlap from one record: the halves' reference (the other half of the windows) shares the
    record points around the split, so a defect there finds itself; the record self-join does not (trivial matches
    are excluded by record position)."""
    rng = np.random.default_rng(8)
    record = _pulse_record(48 * 8 + 64, rng)
    windows, positions = _windows_of([record], 64, 8)
    half = len(windows) // 2
    lo, hi = positions[half, 1], positions[half - 1, 1] + 64  # the record points both halves' windows hold
    record[lo + 10 : lo + 22] = 1.5
    assert lo + 22 < hi
    windows, _ = _windows_of([record], 64, 8)
    index, _ = record_point_index(positions, 64)
    truth = (index >= lo + 10) & (index < lo + 22)
    halves = flag_discords(windows, fdr=0.01, dilate=0, sigma=2.0, max_reference=20000)
    maps = record_discord_maps(windows, positions, m=16)
    on_record = flag_discord_maps(maps, fdr=0.01, dilate=0, sigma=2.0)
    assert halves[truth].mean() < 0.2 and on_record[truth].mean() > 0.8
    assert on_record[~truth.any(axis=1)].mean() < 0.01
    # one value per record point, whichever window holds it
    values = np.full(index.max() + 1, np.nan)
    values[index] = maps[:, 0]
    np.testing.assert_array_equal(values[index], maps[:, 0])


def test_record_prior_keeps_records_apart_and_refuses_records_too_long_to_profile():
    rng = np.random.default_rng(11)
    records = [_pulse_record(256, rng), _pulse_record(192, rng)]
    windows, positions = _windows_of(records, 64, 16)
    maps = record_discord_maps(windows, positions, m=16)
    assert maps.shape == windows.shape and np.isfinite(maps).all()
    # the second record's windows read the same as when its first point is moved further along: positions are
    # record-relative, and no subsequence spans the two records
    shifted = positions.copy()
    shifted[positions[:, 0] == 1, 0] = 7
    np.testing.assert_array_equal(record_discord_maps(windows, shifted, m=16), maps)
    import rddpm_signals.cleaning as cleaning_module

    limit = cleaning_module.RECORD_PRIOR_MAX_POINTS
    try:
        cleaning_module.RECORD_PRIOR_MAX_POINTS = 100
        with pytest.raises(ValueError, match="clean_prior_reference='halves'"):
            record_discord_maps(windows, positions, m=16)
    finally:
        cleaning_module.RECORD_PRIOR_MAX_POINTS = limit


def test_detector_record_prior_needs_positions_and_is_what_the_fit_holds_out_at_step_0():
    rng = np.random.default_rng(12)
    record = _pulse_record(32 * 8 + 64, rng)
    record[100:110] = 1.5
    windows, positions = _windows_of([record], 64, 8)
    X = windows.astype(np.float32)
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2, "clean_rule": "test"}
    det = RobustDiffusion(**params, clean_dilate=2, clean_prior_reference="record", clean_prior_k=2)
    # not told the windows overlap: the step-0 round holds out the prior's points alone (no whole-window drops)
    flags = det.prior_flags(X, positions=positions)
    index, _ = record_point_index(positions, 64)
    assert flags[(index >= 100) & (index < 110)].mean() > 0.8
    det.fit(X, positions=positions)
    assert det.clean_history_[0, 2] == flags.mean() and det.clean_mask_[flags].all()
    halves = RobustDiffusion(**params, clean_dilate=2).prior_flags(X, positions=positions)
    assert not np.array_equal(halves, flags)
    with pytest.raises(ValueError, match="needs 1D windows and fit\\(X, positions=...\\)"):
        RobustDiffusion(**params, clean_prior_reference="record").fit(X)
    with pytest.raises(ValueError, match="unknown clean_prior_reference"):
        RobustDiffusion(**params, clean_prior_reference="rest").fit(X)
    for bad in (0, 1.5, "two"):
        with pytest.raises(ValueError, match="clean_prior_k must be an integer >= 1"):
            RobustDiffusion(**params, clean_prior_k=bad).fit(X)
    with pytest.raises(ValueError, match="shape clean_prior='discord'"):
        RobustDiffusion(**params, clean_prior="none", clean_prior_k=2).fit(X)


def test_discord_prior_tests_each_channel_so_a_one_channel_defect_is_not_diluted():
    """A small level shift on one of four channels: tested channel by channel (Bonferroni over the channels) it is
    found; averaging the four channels' distances first (the rule before) dilutes it fourfold and finds less."""
    rng = np.random.default_rng(10)
    X = np.stack([np.stack([_pulse_record(128, rng) for _ in range(4)]) for _ in range(40)])
    truth = np.zeros((40, 128), dtype=bool)
    for i, channel, start in [(3, 0, 20), (11, 1, 60), (25, 2, 90), (32, 3, 40)]:
        X[i, channel, start : start + 12] += 0.06  # three times the noise level
        truth[i, start : start + 12] = True
    flagged = flag_discords(X, fdr=0.01, dilate=0, sigma=2.0, max_reference=20000)
    assert flagged[truth].mean() > 0.6
    assert flagged[~truth.any(axis=1)].mean() < 0.005
    m = default_m(128)
    averaged = np.concatenate(
        [
            profile_maps(X[:20], reference_of(X[20:], 20000, 0), m, False, "min"),
            profile_maps(X[20:], reference_of(X[:20], 20000, 0), m, False, "min"),
        ]
    )
    assert flag_points_test(averaged, fdr=0.01, dilate=0)[truth].mean() < 0.5


def test_detector_holds_the_discord_prior_out_from_the_first_step():
    rng = np.random.default_rng(9)
    X = np.stack([_pulse_record(64, rng) for _ in range(16)])[:, None, :].astype(np.float32)
    X[2, 0, 20:30] = 1.5
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2, "clean_rule": "test"}
    det = RobustDiffusion(**params, clean_dilate=2, clean_prior="discord", clean_prior_m=None).fit(X)
    assert det.clean_settings_["prior_m"] is None  # None: the matrix-profile default, default_m(64) = 4
    prior = flag_discords(det._normalise(X).numpy(), 0.01, 2, det.map_smoothing, 20000)
    assert prior[2, 20:30].all() and prior.sum() < 40
    # the prior's round at step 0, then the two cleaning rounds; every later mask keeps the prior
    np.testing.assert_array_equal(det.clean_history_[:, :2], [[0, 0], [0, 2], [0, 6]])
    assert det.clean_history_[0, 2] == prior.mean()
    assert det.clean_mask_[prior].all()
    without = RobustDiffusion(**params, clean_dilate=2, clean_prior="none").fit(X)
    assert not without.clean_mask_[2, 20:30].all()
    longer = RobustDiffusion(**params, clean_dilate=2, clean_prior="discord", clean_prior_m=32).fit(X)
    held = flag_discords(det._normalise(X).numpy(), 0.01, 2, det.map_smoothing, 20000, m=32)
    assert longer.clean_history_[0, 2] == held.mean() and longer.clean_mask_[held].all()
    assert not np.array_equal(held, prior)
    auto = RobustDiffusion(**params, clean_dilate=2).fit(X)  # "auto": the discord prior of length 64 // 2 = 32
    assert auto.clean_settings_["prior_m"] == 32 and np.array_equal(auto.clean_mask_, longer.clean_mask_)


def test_prior_flags_are_what_a_fit_holds_out_at_step_0_and_leave_the_detector_as_it_was():
    rng = np.random.default_rng(9)
    X = np.stack([_pulse_record(64, rng) for _ in range(16)])[:, None, :].astype(np.float32)
    X[2, 0, 20:30] = 1.5
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2, "clean_rule": "test"}
    unfitted = RobustDiffusion(**params, clean_dilate=2)
    flags = unfitted.prior_flags(X)
    assert flags.shape == (16, 64) and flags[2, 20:30].all() and not hasattr(unfitted, "clean_settings_")
    fitted = RobustDiffusion(**params, clean_dilate=2).fit(X)
    before = {k: v for k, v in vars(fitted).items() if k.endswith("_")}
    assert np.array_equal(fitted.prior_flags(X), flags) and fitted.clean_history_[0, 2] == flags.mean()
    assert fitted.clean_mask_[flags].all() and vars(fitted).keys() >= before.keys()
    assert all(vars(fitted)[k] is v for k, v in before.items())  # nothing refitted or replaced
    assert RobustDiffusion(**params, clean_prior="none").prior_flags(X) is None
    assert RobustDiffusion(**params, self_clean=False).prior_flags(X) is None
    with pytest.raises(ValueError, match="clean_prior_m"):
        RobustDiffusion(**params, clean_prior="discord", clean_prior_m=128).prior_flags(X)


def test_auto_prior_length_is_the_confirmed_64_points_or_half_a_shorter_sample():
    # 64 at both lengths the confirmation ran (256-point samples, the long records' 128-point windows)
    assert [auto_prior_m(n) for n in (128, 256, 512, 4096)] == [64, 64, 64, 64]
    assert [auto_prior_m(n) for n in (2, 3, 4, 5, 64, 100, 127)] == [2, 2, 2, 2, 32, 50, 63]


def test_auto_dilation_is_the_confirmed_32_points_or_a_quarter_of_a_shorter_sample():
    # 32 at both lengths the confirmation ran (256-point samples, 128-point windows); 16 at 64 points as measured
    assert [auto_dilate(n) for n in (128, 256, 4096)] == [32, 32, 32]
    assert [auto_dilate(n) for n in (2, 32, 64, 100)] == [0, 8, 16, 25]
    assert resolve_auto({"dilate": "auto"}, dims=1, length=64) == {"dilate": 16}
    assert resolve_auto({"dilate": "auto"}, dims=2, length=64) == {"dilate": 2}  # grids keep the table's
    assert resolve_auto({"dilate": 5}, dims=1, length=256) == {"dilate": 5}
    assert resolve_auto({"rule": "auto"}, dims=1) == {"rule": "test"}  # no length needed without the dilation
    with pytest.raises(ValueError, match="pass length="):
        resolve_auto({"dilate": "auto"}, dims=1)
    X = np.random.default_rng(5).normal(size=(6, 1, 64)).astype(np.float32)
    assert RobustDiffusion(**TINY_1D).fit(X).clean_settings_["dilate"] == 16


def test_bad_clean_prior_is_rejected():
    X1, X2 = np.zeros((4, 1, 16), dtype=np.float32), np.zeros((4, 1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="unknown clean_prior"):
        RobustDiffusion(**TINY_1D, clean_prior="rpca").fit(X1)
    with pytest.raises(ValueError, match="self_clean=True"):
        RobustDiffusion(**TINY_1D, clean_prior="discord", self_clean=False).fit(X1)
    with pytest.raises(ValueError, match="1D signals"):
        RobustDiffusion(**{**TINY_1D, "dims": 2}, clean_prior="discord").fit(X2)
    with pytest.raises(ValueError, match="at least 2 training samples"):
        flag_discords(X1[:1], 0.01, 0, 2.0, 20000)
    with pytest.raises(ValueError, match="clean_prior_m is the length of clean_prior='discord'"):
        RobustDiffusion(**TINY_1D, clean_prior="none", clean_prior_m=8).fit(X1)
    for bad in (-1, 2.5, "wide"):
        with pytest.raises(ValueError, match="clean_dilate must be an integer >= 0"):
            RobustDiffusion(**TINY_1D, clean_dilate=bad).fit(X1)
    for bad in (1, 8.5, "8"):
        with pytest.raises(ValueError, match="clean_prior_m must be an integer >= 2"):
            RobustDiffusion(**TINY_1D, clean_prior="discord", clean_prior_m=bad).fit(X1)
    with pytest.raises(ValueError, match="exceeds the samples' length 16"):
        RobustDiffusion(**TINY_1D, clean_prior="discord", clean_prior_m=17).fit(X1)


def test_bad_clean_rule_and_rounds_are_named_with_auto_among_the_choices():
    X1 = np.zeros((4, 1, 16), dtype=np.float32)
    with pytest.raises(ValueError, match=r"unknown clean_rule 'shares': use one of \('share', 'test', 'auto'\)"):
        RobustDiffusion(**TINY_1D, clean_rule="shares").fit(X1)
    for bad in (0, 2.5, True, "many"):
        with pytest.raises(ValueError, match="clean_rounds must be an integer >= 1 or 'auto'"):
            RobustDiffusion(**TINY_1D, clean_rounds=bad).fit(X1)


def test_cleaning_choice_is_saved_as_plain_values(tmp_path):
    """Settings given as numpy integers are recorded as ints, so the saved choice loads with weights_only=True."""
    X = np.random.default_rng(11).normal(size=(8, 1, 32)).astype(np.float32)
    det = RobustDiffusion(**TINY_1D, clean_rounds=np.int64(2), clean_dilate=np.int64(3), clean_prior_m=np.int64(8))
    det.fit(X).save(tmp_path / "d.pt")
    assert det.clean_settings_ == {
        "rule": "test",
        "rounds": 2,
        "dilate": 3,
        "prior": "discord",
        "prior_m": 8,
        "samples": False,
        "across_windows": False,
    }
    assert all(type(v) in (str, int, bool) for v in det.clean_settings_.values())
    assert RobustDiffusion.load(tmp_path / "d.pt").clean_settings_ == det.clean_settings_


def test_discord_maps_of_shares_put_together_are_the_whole_sets_maps():
    """What lets processes share the prior: a sample's map does not depend on the other rows asked for, so the
    shares' maps, concatenated, are bitwise the whole set's, and flagging them gives flag_discords' points."""
    rng = np.random.default_rng(3)
    X = np.stack([_pulse_record(64, rng) for _ in range(11)])[:, None, :]
    X[7, 0, 30:40] = 1.5
    whole = discord_maps(X, 20000, m=16)
    for cuts in ([0, 4, 11], [0, 5, 6, 11], [0, 6, 11]):  # shares within, across and at the halves' border
        shares = [discord_maps(X, 20000, m=16, rows=slice(a, b)) for a, b in zip(cuts, cuts[1:], strict=False)]
        assert np.array_equal(np.concatenate(shares), whole)
    assert discord_maps(X, 20000, m=16, rows=slice(3, 3)).shape == (0, 1, 64)
    flags = flag_discord_maps(whole, 0.01, 2, 2.0)
    assert np.array_equal(flags, flag_discords(X, 0.01, 2, 2.0, 20000, m=16)) and flags[7, 30:40].all()


def test_record_point_index_gives_one_index_per_point_of_each_record():
    # record 7: windows of 4 at 0 and 2 (points 0-5); record 3: one window at 1 (points 1-4, grid 0-4)
    index, size = record_point_index(np.array([[7, 0], [7, 2], [3, 1]]), 4)
    assert size == 5 + 6  # records in sorted order: 3 (0-4), then 7 (0-5)
    assert index.tolist() == [[5, 6, 7, 8], [7, 8, 9, 10], [1, 2, 3, 4]]


def test_spread_across_windows_flags_a_point_in_every_window_of_its_record_that_covers_it():
    # record 0: windows of 4 points starting at 0, 2, 4; record 1: one window at 0
    positions = np.array([[0, 0], [0, 2], [0, 4], [1, 0]])
    flags = np.zeros((4, 4), dtype=bool)
    flags[1, 3] = True  # record 0, point 5: also in window 2 (its point 1), not in window 0
    flags[3, 0] = True  # record 1's own window: nothing of record 0 is touched
    spread = spread_across_windows(flags, positions)
    expected = flags.copy()
    expected[2, 1] = True
    assert np.array_equal(spread, expected)
    assert np.array_equal(spread_across_windows(spread, positions), spread)  # idempotent
    # in a cleaning round: the flagged window and the one sharing the point are dropped whole
    maps = _noise_maps((4, 4), seed=1)
    prior = flags.copy()
    prior[3] = False
    common = {"start": 0.0, "rounds": 1, "threshold": 1.5, "max_share": 0.1, "dilate": 0, "rule": "test"}
    cleaner = SelfCleaning(lambda ema: maps, 10, **common, prior=prior, samples="flagged", positions=positions)
    cleaner.due(0)
    weights = cleaner(None)[:, 0]
    assert weights[[1, 2]].eq(0).all() and weights[[0, 3]].eq(1).all()


def test_clean_across_windows_needs_the_windows_positions_and_holds_a_point_out_of_every_window():
    rng = np.random.default_rng(4)
    record = np.concatenate([_pulse_record(64, rng) for _ in range(10)]).astype(np.float32)
    record[300:310] += 2.0
    hop, length = 16, 64
    starts = np.arange(0, len(record) - length + 1, hop)
    X = np.stack([record[s : s + length] for s in starts])[:, None, :]
    params = {**TINY_1D, "train_steps": 10, "clean_start": 0.2, "clean_rounds": 2, "clean_samples": "flagged"}
    with pytest.raises(ValueError, match="positions"):
        RobustDiffusion(**params, clean_across_windows=True).fit(X)
    with pytest.raises(ValueError, match="positions must be"):
        RobustDiffusion(**params, clean_across_windows=True).fit(X, positions=starts)
    positions = np.stack([np.zeros_like(starts), starts], axis=1)
    det = RobustDiffusion(**params, clean_across_windows=True).fit(X, positions=positions)
    plain = RobustDiffusion(**params).fit(X, positions=positions)  # separate samples: positions unused
    assert np.array_equal(plain.clean_mask_, RobustDiffusion(**params).fit(X).clean_mask_)
    assert plain.clean_settings_["across_windows"] is False and det.clean_settings_["across_windows"] is True
    told = RobustDiffusion(**params).fit(X, overlapping=True, positions=positions)  # "auto": the windows' recipe
    assert told.clean_settings_["across_windows"] is True and told.loss_ == "mse"
    assert np.array_equal(
        told.clean_mask_,
        RobustDiffusion(**params, clean_across_windows=True, loss="mse").fit(X, positions=positions).clean_mask_,
    )
    with pytest.raises(ValueError, match="clean_across_windows must be"):
        RobustDiffusion(**params, clean_across_windows="yes").fit(X, positions=positions)
    # step 0 holds out the model-free prior alone: spread over the windows that share its points, it holds more
    assert det.clean_history_[0, 1] == plain.clean_history_[0, 1] == 0
    assert det.clean_history_[0, 2] > plain.clean_history_[0, 2] > 0
