"""DenoisingTypicality: a whole-sample score from the network's denoising error (two-sided, robust z per level)."""

import numpy as np
import pytest

from helpers import TINY_1D
from rddpm_signals import RobustDiffusion
from rddpm_signals.typicality import DenoisingTypicality, typicality_score

GRID = np.linspace(0, 1, 32)
LEVELS = (5, 10, 20, 40)


def sines(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 1, (n, 1, 1))
    return (np.sin(2 * np.pi * (2 * GRID[None, None, :] + phase)) + 0.05 * rng.normal(size=(n, 1, 32))).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def fitted() -> tuple[RobustDiffusion, np.ndarray]:
    X = sines(48, 0)
    det = RobustDiffusion(**{**TINY_1D, "train_steps": 200, "self_clean": False}).fit(X)
    return det, X


def test_samples_of_another_kind_score_above_held_out_normal_ones(fitted):
    det, X = fitted
    typ = DenoisingTypicality(timesteps=LEVELS).fit(det, X)
    normal = typ.score(sines(16, 1))
    square = typ.score(np.sign(sines(4, 2)))
    noise = typ.score(2 * np.random.default_rng(3).normal(size=(4, 1, 32)).astype(np.float32))
    assert normal.shape == (16,)
    assert square.min() > normal.max()
    assert noise.min() > normal.max()
    # the training errors are the reference: their |z| are centred near the robust SD, not far beyond it
    assert 0.3 < np.median(typ.score(X)) < 1.5


def test_a_samples_score_does_not_depend_on_its_batch(fitted):
    det, X = fitted
    test = np.concatenate([sines(5, 4), np.sign(sines(2, 5))])
    whole = DenoisingTypicality(timesteps=LEVELS, batch_size=32).fit(det, X).score(test)
    one_by_one = DenoisingTypicality(timesteps=LEVELS, batch_size=1).fit(det, X)
    np.testing.assert_array_equal(one_by_one.score(test), whole)
    np.testing.assert_array_equal(one_by_one.score(test[[6, 2]]), whole[[6, 2]])


def test_errors_are_robust_z_scores_per_level(fitted):
    det, X = fitted
    typ = DenoisingTypicality(timesteps=LEVELS).fit(det, X)
    z = typ.errors(X)
    assert z.shape == (len(X), len(LEVELS))
    np.testing.assert_allclose(np.median(z, axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(typ.score(X), np.abs(z).mean(axis=1))
    np.testing.assert_array_equal(typ.train_scores_, typ.score(X))  # kept from fit: the same, bitwise


def test_the_one_sided_score_is_the_mean_z(fitted):
    det, X = fitted
    test = np.concatenate([sines(4, 6), np.sign(sines(2, 7))])
    two = DenoisingTypicality(timesteps=LEVELS).fit(det, X)
    one = DenoisingTypicality(timesteps=LEVELS, alternative="greater").fit(det, X)
    z = two.errors(test)
    np.testing.assert_allclose(one.score(test), z.mean(axis=1))
    np.testing.assert_allclose(two.score(test), np.abs(z).mean(axis=1))
    np.testing.assert_array_equal(one.train_scores_, one.score(X))
    # a sample denoised more easily than every training sample: atypical two-sided, typical one-sided
    easy = np.array([[-2.0, -3.0, -2.5]])
    assert typicality_score(easy)[0] > 2 and typicality_score(easy, "greater")[0] < -2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"timesteps": ()}, "timesteps is empty"),
        ({"timesteps": (0, 10)}, r"outside \[1, 50\)"),
        ({"timesteps": (10, 50)}, r"outside \[1, 50\)"),
        ({"draws": 0}, "draws must be >= 1"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"alternative": "less"}, "unknown alternative 'less'"),
    ],
)
def test_bad_parameters_are_named(fitted, params, message):
    det, X = fitted
    with pytest.raises(ValueError, match=message):
        DenoisingTypicality(**params).fit(det, X)


def test_unfitted_use_is_refused(fitted):
    det, X = fitted
    with pytest.raises(Exception, match="not fitted|fit"):
        DenoisingTypicality().fit(RobustDiffusion(**TINY_1D), X)
    with pytest.raises(Exception, match="not fitted|fit"):
        DenoisingTypicality(timesteps=LEVELS).score(X)
    typ = DenoisingTypicality(timesteps=(0,))
    with pytest.raises(ValueError):
        typ.fit(det, X)
    assert not hasattr(typ, "center_")  # a refused fit leaves nothing set


def test_images_score_too(tiny_2d_data):
    det = RobustDiffusion(**{**TINY_1D, "dims": 2}).fit(tiny_2d_data)
    scores = DenoisingTypicality(draws=1).fit(det, tiny_2d_data).score(tiny_2d_data[:3])
    assert scores.shape == (3,) and np.isfinite(scores).all()
