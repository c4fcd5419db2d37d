"""A map is a pure function of (model, sample) on the CPU: bitwise the same for any batching, order or company."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import TINY_1D, TINY_2D
from rddpm_signals import RobustDiffusion
from rddpm_signals.scoring import NET_ROWS, fixed_rows

N = 11  # more than NET_ROWS, not a multiple of it: padded and unpadded blocks both occur


def _fitted(config: dict, shape: tuple[int, ...]) -> tuple[RobustDiffusion, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(N, *shape)).astype(np.float32)
    X[2, :, ..., 5:9] += 4.0  # one defect, so maps are not all alike
    default_draws = {k: v for k, v in config.items() if k != "n_reconstructions"}  # the default's several draws
    det = RobustDiffusion(**{**default_draws, "train_steps": 3}).fit(X)
    assert det.n_reconstructions > 1
    return det, X, det.anomaly_map(X)


@pytest.fixture(scope="module")
def fitted_1d():
    return _fitted(TINY_1D, (2, 32))


@pytest.fixture(scope="module")
def fitted_2d():
    return _fitted(TINY_2D, (1, 16, 16))


batchings = st.tuples(
    st.lists(st.integers(0, N - 1), min_size=1, max_size=N, unique=True),  # a subset, in a random order
    st.integers(1, 2 * N),  # scoring_batch_size
)


def _assert_each_map_unchanged(det, X, reference, subset, batch_size):
    det.set_params(scoring_batch_size=batch_size)
    try:
        maps = det.anomaly_map(X[subset])
    finally:
        det.set_params(scoring_batch_size=64)
    for row, i in enumerate(subset):
        assert np.array_equal(maps[row], reference[i]), f"sample {i} changed (subset {subset}, batch {batch_size})"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batching=batchings)
def test_1d_map_is_bitwise_the_same_in_any_batching(fitted_1d, batching):
    _assert_each_map_unchanged(*fitted_1d, *batching)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batching=batchings)
def test_2d_map_is_bitwise_the_same_in_any_batching(fitted_2d, batching):
    _assert_each_map_unchanged(*fitted_2d, *batching)


def test_a_sample_scored_alone_or_twice_in_one_batch(fitted_1d):
    det, X, reference = fitted_1d
    assert np.array_equal(det.anomaly_map(X[4:5])[0], reference[4])
    twice = det.anomaly_map(X[[4, 4, 7]])
    assert np.array_equal(twice[0], reference[4]) and np.array_equal(twice[1], reference[4])
    assert np.array_equal(det.anomaly_score(X[[7]]), det.anomaly_score(X)[[7]])


def test_fixed_rows_calls_the_network_with_a_fixed_row_count_and_keeps_order():
    seen = []

    def eps_model(x, t):
        seen.append(x.shape[0])
        return x * 2 + t.view(-1, 1, 1)

    x = torch.arange(2 * NET_ROWS + 3, dtype=torch.float32).view(-1, 1, 1)
    t = torch.arange(x.shape[0])
    out = fixed_rows(eps_model)(x, t)
    assert set(seen) == {NET_ROWS} and len(seen) == 3
    assert torch.equal(out, x * 2 + t.view(-1, 1, 1))
