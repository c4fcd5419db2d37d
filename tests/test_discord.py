"""The matrix-profile discord baseline and the IsolationForest baseline."""

import numpy as np
import pytest

from rddpm_signals import IsolationForestDetector, MatrixProfile
from rddpm_signals.baselines.discord import nearest_distances, spread_to_points
from rddpm_signals.methods import make_detector


def cycles(n: int, length: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    x = np.sin(2 * np.pi * t / 16 + phase) + 0.4 * np.sin(2 * np.pi * t / 8 + 2 * phase)
    return (x + 0.02 * rng.normal(size=(n, 1, length))).astype(np.float32)


@pytest.mark.parametrize("join", ["ab", "self"])
def test_discord_finds_a_planted_spike(join):
    train = cycles(20)
    probe = cycles(3, seed=1)
    probe[:, 0, 70:73] += np.array([1.5, 3.0, 1.5])
    det = MatrixProfile(m=12, join=join).fit(train)
    maps = det.anomaly_map(probe)
    assert maps.shape == (3, 128)
    peak = maps.argmax(axis=1)
    assert np.all((peak >= 70 - 12) & (peak <= 72 + 12))  # a subsequence covering the spike
    clean = det.anomaly_map(cycles(3, seed=2))
    assert maps.max(axis=1).min() > clean.max(axis=1).max()


def test_discord_raw_sees_a_level_shift_that_z_normalisation_removes():
    train = cycles(20)
    probe = cycles(3, seed=1)
    probe[:, 0, 40:100] += 2.0  # the shape is unchanged, only the level moves
    clean = cycles(3, seed=2)
    inside = np.zeros(128, dtype=bool)
    inside[52:88] = True  # every subsequence of length 12 covering these points lies in the shifted stretch
    raw = make_detector("discord_raw", dims=1, m=12).fit(train)
    assert isinstance(raw, MatrixProfile) and raw.normalize is False
    assert raw.anomaly_map(probe)[:, inside].min() > raw.anomaly_map(clean).max()
    z = make_detector("discord", dims=1, m=12).fit(train)
    # z-normalised, the shifted stretch is as normal as a clean record (within twice its largest value)
    assert z.anomaly_map(probe)[:, inside].max() < 2 * z.anomaly_map(clean).max()


@pytest.mark.slow  # STUMPY's numba kernels compile for about a minute per process on two cores
def test_numpy_engine_matches_stumpy():
    stumpy = pytest.importorskip("stumpy")
    rng = np.random.default_rng(0)
    query, reference = rng.normal(size=64), rng.normal(size=300)
    reference[150] = np.nan
    reference[200:230] = 0.5  # constant subsequences: STUMPY's convention
    query[10:30] = -0.2
    for normalize in (True, False):
        ours = nearest_distances(query, reference, 8, normalize)
        theirs = stumpy.stump(query, 8, reference, ignore_trivial=False, normalize=normalize)[:, 0].astype(float)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_spread_to_points_takes_the_max_of_covering_subsequences():
    np.testing.assert_array_equal(spread_to_points(np.array([0.0, 5.0, 1.0]), 2), [0.0, 5.0, 5.0, 1.0])


def test_reference_is_subsampled_to_max_reference_and_seeded():
    X = cycles(40)
    a = MatrixProfile(max_reference=1000, random_state=1).fit(X)
    assert a.reference_.shape[1] <= 1000 and np.isnan(a.reference_).any()
    b = MatrixProfile(max_reference=1000, random_state=1).fit(X)
    np.testing.assert_array_equal(a.reference_, b.reference_)


def test_matrix_profile_refuses_images_and_bad_m():
    with pytest.raises(ValueError, match="1D"):
        MatrixProfile(dims=2).fit(np.zeros((4, 1, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="m must"):
        MatrixProfile(m=500).fit(cycles(4))
    assert MatrixProfile.supported_dims == (1,)


def test_iforest_ranks_an_off_class_image_above_in_class_ones():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:16, 0:16]
    ring = ((np.hypot(yy - 8, xx - 8) > 3) & (np.hypot(yy - 8, xx - 8) < 6)).astype(np.float32)
    square = ((np.abs(yy - 8) < 7) & (np.abs(xx - 8) < 7)).astype(np.float32)  # another class, filled
    noise = 0.1 * rng.normal(size=(66, 1, 16, 16)).astype(np.float32)
    train = ring[None, None] + noise[:60]
    test = np.concatenate([ring[None, None] + noise[60:65], square[None, None] + noise[65:]])
    det = IsolationForestDetector(dims=2, random_state=0).fit(train)
    scores = det.anomaly_score(test.astype(np.float32))
    assert scores[-1] > scores[:-1].max()
    maps = det.anomaly_map(test.astype(np.float32))
    assert maps.shape == (6, 16, 16) and np.all(maps == scores[:, None, None])  # no localisation


def _kth_distinct_brute(query, reference, m, k, self_join):
    """The k-th nearest distinct neighbour by brute force: raw distances, NaN-holding reference subsequences skipped,
    each pick's neighbours starting within m points passed over (and, in a self-join, those within m / 4 of the
    query)."""
    q = np.lib.stride_tricks.sliding_window_view(query, m)
    r = np.lib.stride_tricks.sliding_window_view(reference, m)
    out = []
    for i, row in enumerate(q):
        d = np.sqrt(((r - row) ** 2).sum(axis=1))
        d[~np.isfinite(d)] = np.inf
        if self_join:
            d[np.abs(np.arange(len(r)) - i) <= int(np.ceil(m / 4))] = np.inf
        for _ in range(k - 1):
            d[np.abs(np.arange(len(r)) - int(np.argmin(d))) < m] = np.inf
        out.append(d.min())
    return np.array(out)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_kth_nearest_distinct_neighbour_matches_brute_force(k):
    rng = np.random.default_rng(3)
    query, reference = rng.normal(size=90), rng.normal(size=200)
    reference[120] = np.nan
    m = 8
    np.testing.assert_allclose(
        nearest_distances(query, reference, m, False, k=k), _kth_distinct_brute(query, reference, m, k, False)
    )
    np.testing.assert_allclose(
        nearest_distances(query, None, m, False, k=k), _kth_distinct_brute(query, query, m, k, True)
    )
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        nearest_distances(query, reference, m, False, k=0)


def test_a_twin_discord_hides_from_the_nearest_neighbour_and_not_from_the_second():
    """A bump planted twice in a record: each copy is the other's nearest neighbour (k = 1 sees nothing unusual);
    the second nearest distinct neighbour is a normal stretch, far away."""
    t = np.arange(600)
    record = np.sin(2 * np.pi * t / 20) + 0.01 * np.random.default_rng(4).normal(size=600)
    bump = 1.5 * np.exp(-0.5 * ((np.arange(16) - 8) / 3.0) ** 2)
    for start in (150, 410):  # 13 periods apart: the same shape on the same phase
        record[start : start + 16] += bump
    first, second = (nearest_distances(record, None, 16, False, k=k) for k in (1, 2))
    normal = np.r_[0:120, 200:380, 460:585]
    assert first[150] < 3 * np.median(first[normal])
    assert second[150] > 10 * np.median(second[normal]) and second[410] > 10 * np.median(second[normal])
