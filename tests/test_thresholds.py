"""Label-free thresholds: properties checked on generated arrays (hypothesis) and the errors for bad input."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rddpm_signals.thresholds import binarize, contamination_threshold, mad_threshold

FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=8)
VALUES = hnp.arrays(np.float64, SHAPES, elements=FINITE)
SHARES = st.floats(0.0, 0.99, exclude_max=False)
FAST = settings(max_examples=60, deadline=None)


# --- mad_threshold ------------------------------------------------------------------------------------------


@FAST
@given(values=VALUES, k=st.floats(0.0, 10.0))
def test_mad_threshold_is_median_plus_k_robust_sigmas(values, k):
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    expected = median + k * 1.4826 * mad
    assert mad_threshold(values, k) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert mad_threshold(values, k) >= median - 1e-9


@FAST
@given(values=VALUES, k=st.floats(0.0, 10.0), shift=st.floats(-1e3, 1e3), scale=st.floats(0.01, 100.0))
def test_mad_threshold_follows_shifts_and_scales_and_ignores_shape(values, k, shift, scale):
    base = mad_threshold(values, k)
    assert mad_threshold(values * scale + shift, k) == pytest.approx(base * scale + shift, rel=1e-6, abs=1e-3)
    assert mad_threshold(values.reshape(-1), k) == base
    assert mad_threshold(values.T, k) == base


@FAST
@given(values=hnp.arrays(np.float64, st.integers(5, 60), elements=st.floats(-10, 10)), k=st.floats(0.0, 5.0))
def test_mad_threshold_grows_with_k(values, k):
    assert mad_threshold(values, k + 1.0) >= mad_threshold(values, k)


def test_mad_threshold_is_robust_to_a_minority_of_huge_outliers():
    rng = np.random.default_rng(0)
    clean = rng.normal(size=10_000)
    dirty = clean.copy()
    dirty[:2000] = 1e9  # 20 % contamination, far out
    assert mad_threshold(clean) == pytest.approx(3.0, abs=0.1)  # Gaussian: MAD · 1.4826 estimates sigma = 1
    # The threshold moves (median and MAD both grow) but stays on the scale of the clean values: ≈ 4.5 here.
    assert 3.0 < mad_threshold(dirty) < 5.0
    assert np.mean(dirty > mad_threshold(dirty)) == pytest.approx(0.2, abs=1e-3)
    assert np.mean(clean > mad_threshold(clean)) == pytest.approx(0.00135, abs=0.001)


def test_mad_threshold_of_constant_values_is_that_value():
    assert mad_threshold(np.full((3, 4), 2.5)) == 2.5
    assert not binarize(np.full((3, 4), 2.5), mad_threshold(np.full((3, 4), 2.5))).any()


# --- contamination_threshold --------------------------------------------------------------------------------


@FAST
@given(values=VALUES, share=SHARES)
def test_contamination_threshold_flags_at_most_the_share(values, share):
    threshold = contamination_threshold(values, share)
    flagged = int(np.sum(values > threshold))
    allowed = int(np.floor(share * values.size + 1e-9))
    assert flagged <= allowed
    assert threshold in values  # it is one of the values (an inverted-CDF quantile)
    if len(np.unique(values)) == values.size:  # distinct values: exactly that many
        assert flagged == min(allowed, values.size - 1)


@FAST
@given(values=VALUES, a=SHARES, b=SHARES)
def test_contamination_threshold_falls_as_the_share_grows(values, a, b):
    low, high = sorted((a, b))
    assert contamination_threshold(values, high) <= contamination_threshold(values, low)


@FAST
@given(values=VALUES)
def test_zero_contamination_gives_the_maximum(values):
    assert contamination_threshold(values, 0.0) == values.max()
    assert not binarize(values, contamination_threshold(values, 0.0)).any()


def test_contamination_threshold_by_hand():
    values = np.arange(10.0).reshape(2, 5)  # 0 … 9
    assert contamination_threshold(values, 0.2) == 7.0  # flags 8 and 9
    assert contamination_threshold(values, 0.3) == 6.0  # 0.3 · 10 is 2.9999999999999996 in floating point
    assert contamination_threshold(values, 0.25) == 7.0  # floor(2.5) = 2 flagged
    assert contamination_threshold(values, 0.95) == 0.0  # at least one value stays below


# --- binarize -----------------------------------------------------------------------------------------------


@FAST
@given(values=VALUES, threshold=FINITE)
def test_binarize_is_strictly_above(values, threshold):
    flags = binarize(values, threshold)
    assert flags.dtype == bool and flags.shape == values.shape
    np.testing.assert_array_equal(flags, values > threshold)


def test_binarize_takes_one_threshold_per_sample():
    maps = np.arange(24.0).reshape(2, 3, 4)
    flags = binarize(maps, np.array([5.0, 20.0]))
    np.testing.assert_array_equal(flags[0], maps[0] > 5.0)
    np.testing.assert_array_equal(flags[1], maps[1] > 20.0)
    # A full-shape threshold works element by element.
    np.testing.assert_array_equal(binarize(maps, maps), np.zeros_like(maps, dtype=bool))


def test_thresholds_compose_with_binarize_on_maps():
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(20, 16, 16))
    maps[:, 4:6, 4:6] += 8.0  # 4 of 256 points per map stand out
    flags = binarize(maps, mad_threshold(maps, k=4.0))
    assert flags[:, 4:6, 4:6].all()
    assert flags.mean() < 0.02
    flags = binarize(maps, contamination_threshold(maps, 4 / 256))
    assert flags.sum() == 20 * 4 and flags[:, 4:6, 4:6].all()


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", [mad_threshold, lambda v: contamination_threshold(v, 0.1)])
@pytest.mark.parametrize(
    "values,message",
    [
        (np.array([1.0, np.nan, 2.0]), "NaN"),
        (np.array([1.0, np.inf]), "NaN or infinite"),
        (np.array([]), "empty"),
        (np.zeros((3, 0)), "empty"),
        (np.array(["a", "b"]), "numeric"),
        (np.array([1 + 2j]), "real"),
        ([[1.0, 2.0], [3.0]], "array"),
    ],
)
def test_thresholds_reject_bad_values(function, values, message):
    with pytest.raises(ValueError, match=message):
        function(values)


@pytest.mark.parametrize("share", [-0.1, 1.0, 1.5, float("nan"), "a lot"])
def test_contamination_threshold_rejects_a_bad_share(share):
    with pytest.raises(ValueError, match="contamination"):
        contamination_threshold(np.arange(5.0), share)


@pytest.mark.parametrize("k", [-1.0, float("nan"), float("inf"), "three"])
def test_mad_threshold_rejects_a_bad_k(k):
    with pytest.raises(ValueError, match="k must"):
        mad_threshold(np.arange(5.0), k)


def test_binarize_rejects_bad_input():
    maps = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="does not fit"):
        binarize(maps, np.zeros(5))
    with pytest.raises(ValueError, match="does not fit"):
        binarize(maps, np.zeros((7, 2, 3, 4)))  # would broadcast to a bigger array
    with pytest.raises(ValueError, match="NaN"):
        binarize(maps, float("nan"))
    with pytest.raises(ValueError, match="maps contains 1 NaN"):
        binarize(np.array([0.0, np.nan]), 0.5)
    with pytest.raises(ValueError, match="empty"):
        binarize(np.zeros((0, 3)), 0.5)


@given(values=VALUES)
@settings(max_examples=20, deadline=None)
def test_inputs_are_not_modified(values):
    assume(values.size > 1)
    copy = values.copy()
    mad_threshold(values)
    contamination_threshold(values, 0.3)
    binarize(values, 0.0)
    np.testing.assert_array_equal(values, copy)


def test_median_spread_is_the_scaled_mad_along_an_axis_and_keeps_the_dtype():
    from rddpm_signals._robust import MAD_TO_SIGMA, median_mad, median_spread

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(4, 20001)).astype(np.float32)
    center, spread = median_spread(x, axis=1)
    assert center.shape == spread.shape == (4,) and spread.dtype == np.float32
    np.testing.assert_allclose(spread, 3.0, rtol=0.05)  # a Gaussian's scaled MAD is its SD
    np.testing.assert_allclose(center, 2.0, atol=0.1)
    row = x[1]
    assert spread[1] == MAD_TO_SIGMA * np.median(np.abs(row - np.median(row)))
    whole = median_spread(x.T)  # axis None: every value at once
    assert np.shape(whole[0]) == () and whole[0] == np.median(x)
    assert median_mad(np.ones(5)) == (1.0, 1e-12)  # median_mad floors the spread; median_spread does not
    assert median_spread(np.ones(5))[1] == 0.0
