"""Map options: the local-structure error sees missing texture that |x - x̂| barely sees; multi-t0 with a single
t0 is the plain map; whole-sample features single out a sample unlike the bulk."""

import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from helpers import TINY_1D
from rddpm_signals import RobustDiffusion
from rddpm_signals.maps import (
    EnergyReference,
    RobustSampleScore,
    combine_maps,
    sample_features,
    structure_error,
)
from rddpm_signals.metrics import pixel_auroc

PLAIN = {k: v for k, v in TINY_1D.items() if k != "map_structure"}  # TINY_1D without its map: these tests set it


def _textures(n, seed):
    return np.random.default_rng(seed).normal(size=(n, 1, 32, 32))


def test_structure_error_sees_a_blurred_patch_that_the_pixel_error_barely_sees():
    train = _textures(40, 0)
    x = _textures(4, 1)
    mask = np.zeros((4, 32, 32), dtype=bool)
    mask[:, 8:20, 10:22] = True
    blurred = uniform_filter(x, size=(1, 1, 7, 7), mode="nearest")
    x[:, :, 8:20, 10:22] = blurred[:, :, 8:20, 10:22]  # texture missing: the local mean is left
    # A good denoiser reconstructs the smooth patch as well as anything else: x̂ ≈ x up to a small error.
    x_hat = x + 0.05 * np.random.default_rng(2).normal(size=x.shape)
    pixel = np.abs(x - x_hat).mean(axis=1)
    bulk = EnergyReference(sigma=2.0).fit(train).error(x)
    assert pixel_auroc(pixel, mask) < 0.6
    assert pixel_auroc(bulk, mask) > 0.95
    # Against a reconstruction that puts texture back, the x-vs-x̂ structure error sees the patch too.
    restored = _textures(4, 1)
    assert pixel_auroc(structure_error(x, restored, 2.0), mask) > 0.95
    assert np.allclose(structure_error(x, x, 2.0), 0.0)


def test_combine_maps():
    a, b = np.ones((2, 5)), 3 * np.ones((2, 5))
    assert combine_maps([a]) is a
    assert np.allclose(combine_maps([a, b], [1.0, 3.0]), 1.0)
    with pytest.raises(ValueError, match="one scale per map"):
        combine_maps([a, b], [1.0])


def test_multi_t0_with_a_single_t0_is_the_plain_map():
    X = np.random.default_rng(3).normal(size=(8, 2, 32)).astype(np.float32)
    plain = RobustDiffusion(**TINY_1D, self_clean=False).fit(X)
    single = RobustDiffusion(**TINY_1D, self_clean=False, map_t0s=(TINY_1D["t0"],)).fit(X)
    assert np.array_equal(plain.anomaly_map(X), single.anomaly_map(X))
    multi = RobustDiffusion(**PLAIN, self_clean=False, map_t0s=(2, 5, 10), map_structure="bulk").fit(X)
    maps = multi.anomaly_map(X)
    assert maps.shape == (8, 32) and np.isfinite(maps).all()
    assert multi.map_t0_scale_.shape == (3,)


def test_sample_features_single_out_an_odd_sample():
    maps = np.abs(np.random.default_rng(4).normal(size=(50, 64)))
    odd = 2.0 * np.abs(np.random.default_rng(5).normal(size=(2, 64)))
    scorer = RobustSampleScore().fit(sample_features(maps))
    normal_scores = scorer.score(sample_features(maps))
    odd_scores = scorer.score(sample_features(odd))
    assert odd_scores.min() > np.quantile(normal_scores, 0.95)


def test_score_modes():
    X = np.random.default_rng(6).normal(size=(12, 1, 32)).astype(np.float32)
    det = RobustDiffusion(**TINY_1D, self_clean=False, score_mode="features").fit(X)
    assert det.anomaly_score(X).shape == (12,)
    det.set_params(score_mode="mean")
    maps = det.anomaly_map(X)
    assert np.allclose(det.score_maps(maps), maps.mean(axis=1))
    with pytest.raises(ValueError, match="score_mode"):
        RobustDiffusion(**TINY_1D, score_mode="max").fit(X)
    with pytest.raises(ValueError, match="map_structure"):
        RobustDiffusion(**PLAIN, map_structure="ssim").fit(X)


def _waves(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, 64)
    x = np.sin(2 * np.pi * (3 * t + rng.uniform(0, 1, (n, 1, 1)))) + 0.05 * rng.normal(size=(n, 2, 64))
    return x.astype(np.float32)


def test_discord_map_is_the_mean_of_the_two_maps_robust_z_scores(tmp_path):
    """map_structure="discord": (z of the finished |x - x̂| map + z of the raw-subsequence matrix profile, each
    point the smallest distance of the subsequences covering it) / 2, centres and scales learnt on training data."""
    from rddpm_signals import MatrixProfile

    X, test = _waves(16, 0), _waves(6, 1)
    test[2, :, 30:33] += 4.0  # a spike no training subsequence resembles
    det = RobustDiffusion(**PLAIN, self_clean=False, map_structure="discord").fit(X)
    maps = det.anomaly_map(test)
    assert maps.shape == (6, 64) and np.isfinite(maps).all()
    recon_center, recon_scale, profile_center, profile_scale = det.discord_scales_
    assert recon_scale > 0 and profile_scale > 0 and int(det.discord_m_) == 4  # 64 // 16
    profile = MatrixProfile(normalize=False, spread="min").fit(X).anomaly_map(test)
    recon = det.set_params(map_structure="none").anomaly_map(test)
    expected = 0.5 * ((recon - recon_center) / recon_scale + (profile - profile_center) / profile_scale)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-4)
    det.set_params(map_structure="discord")
    assert 27 <= int(np.argmax(maps[2])) <= 35 and maps[2].max() > maps[[0, 1, 3, 4, 5]].max()
    # one sample's map does not depend on its company, and save / load keeps it bitwise
    np.testing.assert_array_equal(det.anomaly_map(test[2:4]), maps[2:4])
    det.save(tmp_path / "d.pt")
    np.testing.assert_array_equal(RobustDiffusion.load(tmp_path / "d.pt").anomaly_map(test), maps)


def test_discord_map_refuses_images_and_tiny_sets_before_training():
    images = np.random.default_rng(0).normal(size=(12, 1, 8, 8)).astype(np.float32)
    det = RobustDiffusion(**{**PLAIN, "dims": 2}, map_structure="discord")
    with pytest.raises(ValueError, match="map_structure='discord' is for 1D signals"):
        det.fit(images)
    assert not hasattr(det, "dims_")
    with pytest.raises(ValueError, match="at least 10 training samples, got 8"):
        RobustDiffusion(**PLAIN, map_structure="discord").fit(_waves(8, 0))


def test_discord_reference_leaves_out_the_points_self_cleaning_excluded():
    X = _waves(16, 0)
    X[3, :, 20:26] += 5.0  # a training anomaly
    det = RobustDiffusion(**PLAIN, self_clean=True, map_structure="discord").fit(X)
    flagged = int(det.clean_mask_.sum())
    assert flagged > 0
    n_nan = np.isnan(det.discord_reference_).sum(axis=1)  # per channel: one NaN between samples, plus the flagged
    np.testing.assert_array_equal(n_nan, [15 + flagged] * 2)
    plain = RobustDiffusion(**PLAIN, self_clean=False, map_structure="discord").fit(X)
    assert np.isnan(plain.discord_reference_).sum(axis=1).tolist() == [15, 15]
