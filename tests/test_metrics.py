"""Metrics against hand-computed cases, scikit-learn, and a brute-force AUPRO written from its definition."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from rddpm_signals.metrics import aupro, evaluate, f1_max, pixel_auprc, pixel_auroc, sample_auroc

# Two normal and two defective points: the defective ones score 0.35 and 0.8, the normal ones 0.1 and 0.4.
SMALL_MAP = np.array([[0.1, 0.4], [0.35, 0.8]])
SMALL_MASK = np.array([[0, 0], [1, 1]], dtype=bool)


def brute_aupro(maps, masks, fpr_limit, structure=None):
    """AUPRO from its definition: one threshold per distinct score (plus one above them all); at each, the FPR
    over normal points and the mean over connected regions of the share of the region at or above it; the
    curve integrated by trapezoids up to ``fpr_limit`` (interpolated there) and divided by ``fpr_limit``.
    Regions join diagonal neighbours (8-connected in 2D, as in the MVTec-AD evaluation) unless ``structure`` says
    otherwise."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    regions = []
    for sample, mask in enumerate(masks):
        labels, count = ndimage.label(mask, structure=np.ones((3,) * mask.ndim) if structure is None else structure)
        regions += [(sample, labels == r) for r in range(1, count + 1)]
    normal = ~masks
    fprs, pros = [], []
    for t in np.r_[np.inf, np.unique(maps)[::-1]]:
        above = maps >= t
        fprs.append(above[normal].mean())
        pros.append(np.mean([above[sample][region].mean() for sample, region in regions]))
    area, (x0, y0) = 0.0, (fprs[0], pros[0])
    for x1, y1 in zip(fprs[1:], pros[1:], strict=True):
        if x1 > fpr_limit:
            y_limit = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            area += 0.5 * (y0 + y_limit) * (fpr_limit - x0)
            break
        area += 0.5 * (y0 + y1) * (x1 - x0)
        x0, y0 = x1, y1
    return area / fpr_limit


def random_case(seed, shape=(4, 16, 16), levels=None):
    """Maps and masks with a few rectangular defects per sample (the last sample normal); ``levels`` quantises
    the map so that many scores tie, across normal and defective points alike."""
    rng = np.random.default_rng(seed)
    masks = np.zeros(shape, dtype=bool)
    for i in range(shape[0] - 1):  # the last sample stays normal
        for _ in range(rng.integers(1, 4)):
            corner = [rng.integers(0, s - 2) for s in shape[1:]]
            extent = [rng.integers(1, 6) for _ in shape[1:]]
            masks[(i,) + tuple(slice(c, c + e) for c, e in zip(corner, extent, strict=True))] = True
    maps = rng.normal(size=shape) + 1.5 * masks * rng.uniform(0, 1, size=shape)
    if levels is not None:
        maps = np.round(maps * levels) / levels
    return maps, masks


# --- hand-computed cases ------------------------------------------------------------------------------------


def test_pixel_auroc_by_hand():
    # Defective-over-normal pairs: 0.35 > 0.1, 0.35 < 0.4, 0.8 > 0.1, 0.8 > 0.4 → 3 of 4.
    assert pixel_auroc(SMALL_MAP, SMALL_MASK) == pytest.approx(0.75)


def test_pixel_auroc_counts_ties_as_half():
    maps = np.array([[0.5, 0.5, 0.2, 0.9]])
    masks = np.array([[1, 0, 0, 1]])
    # Pairs: 0.5 vs 0.5 tie (1/2), 0.5 > 0.2, 0.9 > 0.5, 0.9 > 0.2 → 3.5 / 4.
    assert pixel_auroc(maps, masks) == pytest.approx(0.875)


def test_pixel_auprc_by_hand():
    # Ranked: 0.8 (defect) P=1 R=1/2; 0.4 (normal) P=1/2 R=1/2; 0.35 (defect) P=2/3 R=1.
    # AP = sum of P times the recall step = 1/2 · 1 + 1/2 · 2/3.
    assert pixel_auprc(SMALL_MAP, SMALL_MASK) == pytest.approx(0.5 + 1 / 3)


def test_f1_max_by_hand():
    # Thresholds 0.8: F1 = 2/3; 0.4: P=1/2 R=1/2 → 1/2; 0.35: P=2/3 R=1 → 0.8; 0.1: P=1/2 R=1 → 2/3.
    assert f1_max(SMALL_MAP, SMALL_MASK) == pytest.approx(0.8)


def test_sample_auroc_by_hand():
    assert sample_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert sample_auroc([3, 2, 1], [1, 0, 0]) == pytest.approx(1.0)
    assert sample_auroc([3, 2, 1], [0, 1, 1]) == pytest.approx(0.0)


def test_aupro_by_hand_two_regions_weigh_equally():
    # Regions {0, 1} (caught at 0.8) and {7} (the lowest score); normal points 0.1 … 0.5. The PRO curve rises
    # to 0.5 at FPR 0 and stays there until every normal point is flagged, so the normalised area is 0.5.
    maps = np.array([[0.9, 0.8, 0.1, 0.2, 0.3, 0.4, 0.5, 0.05]])
    masks = np.array([[1, 1, 0, 0, 0, 0, 0, 1]])
    assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx(0.5)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.5)


def test_aupro_by_hand_region_found_after_a_false_positive():
    # One 1-point region scoring 0.5, below one of four normal points (0.9): PRO jumps to 1 at FPR 1/4.
    maps = np.array([[0.5, 0.9, 0.1, 0.2, 0.3]])
    masks = np.array([[1, 0, 0, 0, 0]])
    assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx((0.3 - 0.25) / 0.3)
    assert aupro(maps, masks, fpr_limit=1.0) == pytest.approx(0.75)


def test_aupro_by_hand_tied_scores_pass_together():
    # The region's point ties with a normal one: both pass at 0.5, so the curve is the straight segment from
    # (0, 0) to (1/2, 1); up to FPR 0.3 that is the triangle 0.3 · 0.6 / 2, divided by 0.3 → 0.3.
    maps = np.array([[0.5, 0.5, 0.1]])
    masks = np.array([[1, 0, 0]])
    assert aupro(maps, masks, fpr_limit=0.3) == pytest.approx(0.3)
    assert aupro(maps[:, ::-1], masks[:, ::-1], fpr_limit=0.3) == pytest.approx(0.3)


# --- against scikit-learn and the brute-force reference -----------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_metrics_match_scikit_learn_on_pooled_points(seed):
    maps, masks = random_case(seed, levels=4 if seed == 2 else None)
    truth, scores = masks.ravel(), maps.ravel()
    assert pixel_auroc(maps, masks) == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
    assert pixel_auprc(maps, masks) == pytest.approx(average_precision_score(truth, scores), abs=1e-12)
    # F1-max: brute force over every distinct threshold.
    f1 = []
    for t in np.unique(scores):
        flagged = scores >= t
        tp = np.sum(flagged & truth)
        f1.append(2 * tp / (flagged.sum() + truth.sum()))
    assert f1_max(maps, masks) == pytest.approx(max(f1), abs=1e-12)


def test_sample_auroc_matches_scikit_learn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=60)
    scores = rng.normal(size=60) + labels
    assert sample_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@pytest.mark.parametrize("fpr_limit", [0.05, 0.3, 1.0])
@pytest.mark.parametrize("seed,levels", [(0, None), (1, None), (2, 3), (3, 8)])
def test_aupro_matches_brute_force(seed, levels, fpr_limit):
    maps, masks = random_case(seed, levels=levels)
    expected = brute_aupro(maps, masks, fpr_limit)
    assert aupro(maps, masks, fpr_limit=fpr_limit) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_aupro_matches_brute_force_on_1d_maps(seed):
    maps, masks = random_case(seed, shape=(5, 40), levels=5 if seed else None)
    assert aupro(maps, masks) == pytest.approx(brute_aupro(maps, masks, 0.3), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    levels=st.one_of(st.none(), st.integers(1, 6)),
    fpr_limit=st.floats(0.01, 1.0),
)
def test_aupro_matches_brute_force_property(seed, levels, fpr_limit):
    maps, masks = random_case(seed, shape=(3, 9, 9), levels=levels)
    expected = brute_aupro(maps, masks, fpr_limit)
    assert aupro(maps, masks, fpr_limit=fpr_limit) == pytest.approx(expected, abs=1e-9)


def test_aupro_joins_diagonal_neighbours_into_one_region_as_mvtec_does():
    # Mask: three points in an L (caught at 0.9) and a fourth touching the L only at a corner (scored lowest).
    # 8-connected: one region, 3 of its 4 points caught at FPR 0 → AUPRO 0.75; 4-connected: two regions → 0.5.
    maps = np.linspace(0.0, 0.5, 16).reshape(1, 4, 4)
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 0, 1] = masks[0, 1, 1] = masks[0, 2, 2] = True
    maps[0, 0, 0] = maps[0, 0, 1] = maps[0, 1, 1] = 0.9
    maps[0, 2, 2] = -1.0
    assert brute_aupro(maps, masks, 0.3, structure=np.ones((3, 3))) == pytest.approx(0.75)
    assert aupro(maps, masks) == pytest.approx(0.75)


# --- behaviour ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fpr_limit", [0.1, 0.3, 1.0])
def test_aupro_of_a_perfect_map_is_one_and_of_an_inverted_map_is_zero(fpr_limit):
    _, masks = random_case(4)
    assert aupro(masks.astype(float), masks, fpr_limit=fpr_limit) == pytest.approx(1.0)
    if fpr_limit < 1:
        assert aupro(-masks.astype(float), masks, fpr_limit=fpr_limit) == pytest.approx(0.0)


@pytest.mark.parametrize("fpr_limit", [0.1, 0.3, 1.0])
def test_aupro_of_a_random_map_is_half_the_limit(fpr_limit):
    # A map independent of the masks flags the same share p of every region as of the normal points, so the
    # PRO curve is the diagonal: the area up to L is L²/2, normalised by L → L/2.
    # Many small regions (about 900) keep the statistical error of one map near 0.005.
    seeds = np.random.default_rng(100).uniform(size=(16, 48, 48)) < 0.01
    masks = ndimage.binary_dilation(seeds, structure=np.ones((1, 3, 3), dtype=bool))
    for seed in (1, 2):
        noise = np.random.default_rng(seed).uniform(size=masks.shape)
        assert aupro(noise, masks, fpr_limit) == pytest.approx(fpr_limit / 2, abs=0.01 + 0.02 * fpr_limit)


def test_metrics_are_invariant_to_monotone_transforms_of_the_map():
    maps, masks = random_case(6, levels=4)
    for transform in (lambda m: 3 * m + 1, np.exp, lambda m: m**3):
        other = transform(maps)
        for metric in (pixel_auroc, pixel_auprc, f1_max, aupro):
            assert metric(other, masks) == pytest.approx(metric(maps, masks), abs=1e-12)
    scores, labels = maps.reshape(4, -1).max(axis=1), [1, 1, 1, 0]
    assert sample_auroc(np.exp(scores), labels) == pytest.approx(sample_auroc(scores, labels))


def test_aupro_grows_with_the_integration_limit_for_a_good_map():
    maps, masks = random_case(7)
    values = [aupro(maps, masks, fpr_limit=limit) for limit in (0.01, 0.1, 0.3, 1.0)]
    assert values == sorted(values)
    assert 0 < values[0] < values[-1] <= 1


def test_evaluate_gathers_every_metric():
    maps, masks = random_case(8)
    scores, labels = maps.reshape(4, -1).max(axis=1), [1, 1, 1, 0]
    out = evaluate(maps, masks, scores, labels)
    assert set(out) == {"pixel_auroc", "pixel_auprc", "aupro", "f1_max", "sample_auroc"}
    assert out["aupro"] == pytest.approx(aupro(maps, masks))
    assert "sample_auroc" not in evaluate(maps, masks)


# --- bad input ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [pixel_auroc, pixel_auprc, f1_max, aupro])
def test_pixel_metrics_reject_bad_input(metric):
    maps, masks = random_case(9)
    with pytest.raises(ValueError, match="same shape"):
        metric(maps[:, :-1], masks)
    with pytest.raises(ValueError, match="both anomalous and normal"):
        metric(maps, np.zeros_like(masks))
    with pytest.raises(ValueError, match="both anomalous and normal"):
        metric(maps, np.ones_like(masks))
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metric(bad, masks)


@pytest.mark.parametrize("fpr_limit", [0.0, -0.1, 1.5])
def test_aupro_rejects_a_bad_limit(fpr_limit):
    maps, masks = random_case(10)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(maps, masks, fpr_limit=fpr_limit)


def test_sample_auroc_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        sample_auroc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="both normal"):
        sample_auroc([0.1, 0.2, 0.3], [1, 1, 1])
