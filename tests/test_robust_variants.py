"""The robust-training variants: per-timestep residual scale, redescending and scheduled losses, trimming by
bucket and by element, and self-cleaning."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import TINY_1D
from rddpm_signals import RobustDiffusion
from rddpm_signals.cleaning import SelfCleaning, flag_points
from rddpm_signals.diffusion import NoiseSchedule
from rddpm_signals.losses import ResidualScale, cauchy, geman_mcclure, make_loss, mse, tukey
from rddpm_signals.scoring import PositionNormalizer

CLEANING = dict(start=0.1, rounds=5, threshold=1.5, max_share=0.1, dilate=2)


def test_residual_scale_tracks_a_robust_scale_per_bucket():
    scale = ResidualScale(t_range=1000, n_buckets=8, momentum=0.0)
    gen = torch.Generator().manual_seed(0)
    t = torch.tensor([0] * 64 + [900] * 64)
    r = torch.randn(128, 1, 256, generator=gen)
    r[:64] *= 0.1  # small-t residuals are ten times smaller
    r[:8, :, :20] = 50.0  # a few defect residuals must not move the estimate
    scale.update(r, t)
    small, large = scale.lookup(torch.tensor([0, 900]), torch.zeros(2, 1))
    assert float(small) == pytest.approx(0.1, rel=0.05)
    assert float(large) == pytest.approx(1.0, rel=0.05)
    restored = ResidualScale(1000, 8)
    restored.load_state_dict(scale.state_dict())
    torch.testing.assert_close(restored.scale, scale.scale)


def test_buckets_are_ordered_and_cover_the_range():
    scale = ResidualScale(t_range=200, n_buckets=16)
    b = scale.bucket(torch.arange(200))
    assert int(b.min()) == 0 and int(b.max()) == 15
    assert torch.all(b[1:] >= b[:-1])


@pytest.mark.parametrize("fn", [tukey, cauchy, geman_mcclure])
def test_redescending_losses_match_mse_for_small_residuals_and_large_c(fn):
    r = torch.linspace(-3, 3, 61, dtype=torch.float64)
    torch.testing.assert_close(fn(r, 1e5), mse(r), rtol=1e-6, atol=1e-8)
    small = torch.linspace(-1e-3, 1e-3, 11, dtype=torch.float64)
    torch.testing.assert_close(fn(small, 1.0), mse(small), rtol=1e-5, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(r=st.floats(-20, 20), c=st.floats(0.1, 5))
def test_tukey_has_no_pull_beyond_c(r, c):
    x = torch.tensor(r, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(tukey(x, c), x)
    if abs(r) >= c:
        assert float(g) == 0.0
    else:
        assert float(g) * r >= 0  # pulls towards zero residual
        if abs(r) > 1e-6:
            assert float(g) != 0.0


def test_scheduled_pseudo_huber_falls_from_about_one_to_c_min():
    sched = NoiseSchedule.create("linear", 1000)
    loss = make_loss("pseudo_huber_scheduled", delta=0.05, alphas_cumprod=sched.alphas_cumprod)
    c = loss.c_t.numpy()
    assert c[0] > 0.9 and c[-1] == pytest.approx(0.05, abs=1e-3)
    assert np.all(np.diff(c) <= 1e-12)


def test_lts_element_drops_the_largest_scaled_residuals():
    loss = make_loss("lts_element", trim=0.1, t_range=100)
    pred = torch.zeros(4, 1, 25, requires_grad=True)
    target = torch.randn(4, 1, 25, generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.no_grad():
        target[1, 0, :10] = 9.0  # 10 of 100 elements are wild
    t = torch.zeros(4, dtype=torch.long)
    out = loss(pred, target, t)
    (g,) = torch.autograd.grad(out.loss, pred)
    assert float(g[1, 0, :10].abs().sum()) == 0.0
    assert int((g != 0).sum()) == 90


def test_lts_bucket_trims_within_noise_levels():
    """Equal raw losses: the sample whose bucket has the *smaller* residual scale is the outlier."""
    loss = make_loss("lts_bucket", trim=0.25, t_range=1000)
    loss.scale.scale[:] = 1.0
    small_t_bucket = int(loss.scale.bucket(torch.tensor([1])))
    loss.scale.scale[small_t_bucket] = 0.1
    loss.scale.seen[:] = True
    per_sample = torch.tensor([0.5, 0.5, 0.5, 0.5])
    kept = loss.keep(per_sample, torch.tensor([900, 900, 1, 900]))
    assert kept.tolist() == [True, True, False, True]


def _lts_test_loss(trim: float = 0.2) -> object:
    loss = make_loss("lts_test", trim=trim, t_range=1000)
    loss.scale.scale[:], loss.scale.seen[:] = 1.0, True
    return loss


def test_lts_test_keeps_every_sample_of_a_batch_without_outliers():
    loss = _lts_test_loss()
    quantiles = torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(64.0) + 0.5) / 64)
    per_sample = torch.exp(0.2 * quantiles[torch.randperm(64, generator=torch.Generator().manual_seed(0))])
    kept = loss.keep(per_sample, torch.full((64,), 500))
    assert bool(kept.all())  # fixed-share LTS would drop 13 of them
    assert int(make_loss("lts", trim=0.2).keep(per_sample, torch.full((64,), 500)).sum()) == 52


def test_lts_test_drops_only_the_outliers_and_at_most_its_share():
    loss = _lts_test_loss(trim=0.2)
    per_sample = torch.exp(0.2 * torch.distributions.Normal(0.0, 1.0).icdf((torch.arange(40.0) + 0.5) / 40))
    per_sample[[3, 17]] = 20.0
    t = torch.full((40,), 500)
    assert torch.nonzero(~loss.keep(per_sample, t)).flatten().tolist() == [3, 17]
    per_sample[:16] = 50.0 + torch.arange(16.0)  # 40 % outliers: only the worst 20 % go
    kept = loss.keep(per_sample, t)
    assert torch.nonzero(~kept).flatten().tolist() == list(range(8, 16))  # the 8 largest of the 16
    with pytest.raises(ValueError, match="delta"):
        make_loss("lts_test", delta=0.0)


def test_flag_points_finds_planted_defects_and_respects_the_cap():
    rng = np.random.default_rng(0)
    maps = rng.gamma(2.0, 0.1, size=(50, 64))
    maps[:, 30:34] *= 3.0  # a position that is always harder: must not be flagged for that
    maps[5, 10:13] += 5.0
    maps[17, 50] += 5.0
    flagged = flag_points(maps, threshold=6.0, max_share=0.05, dilate=0)
    assert flagged[5, 10:13].all() and flagged[17, 50]
    assert flagged.sum() <= 0.05 * maps.size
    assert not flagged[:, 30:34].any()
    capped = flag_points(maps, threshold=0.0, max_share=0.01, dilate=0)
    assert capped.mean() <= 0.0101
    dilated = flag_points(maps, threshold=6.0, max_share=0.05, dilate=1)
    assert dilated[17, 49:52].all()


def test_self_cleaning_schedule():
    cleaner = SelfCleaning(lambda ema: np.zeros((3, 4)), steps=100, **{**CLEANING, "start": 0.4, "rounds": 3})
    assert sorted(cleaner.steps_due) == [40, 60, 80]
    with pytest.raises(ValueError):
        SelfCleaning(lambda ema: None, steps=10, **{**CLEANING, "start": 1.0})


def test_self_cleaning_with_a_prior_excludes_it_from_step_zero_and_keeps_it():
    prior = np.zeros((3, 4), dtype=bool)
    prior[0, 1] = True
    maps = np.ones((3, 4))
    maps[2, 3] = 50.0
    cleaner = SelfCleaning(
        lambda ema: maps, steps=100, start=0.5, rounds=1, threshold=1.5, max_share=0.1, dilate=0, prior=prior
    )
    assert sorted(cleaner.steps_due) == [0, 50]
    assert cleaner.due(0)
    weights = cleaner(None)
    assert weights.shape == (3, 1, 4)
    np.testing.assert_array_equal(weights[:, 0].numpy() == 0, prior)  # nothing scored yet: the prior alone
    assert cleaner.due(50)
    later = cleaner(None)[:, 0].numpy() == 0
    assert later[0, 1] and later[2, 3] and later.sum() == 2  # the prior stays, the new flag joins it


def test_a_refit_excludes_at_least_what_the_first_fit_excluded(tiny_1d_data, tmp_path):
    # the share rule (the images' "auto" recipe), which flags on any data, so the refit has something to hold out
    share = {"clean_rule": "share", "clean_rounds": 5, "clean_dilate": 2, "clean_prior": "none"}
    params = {**TINY_1D, **share, "self_clean": True, "train_steps": 10, "clean_max_share": 0.05}
    once = RobustDiffusion(**params).fit(tiny_1d_data)
    ckpt = tmp_path / "ck.pt"
    refit = RobustDiffusion(**params, clean_refits=1, checkpoint_path=str(ckpt)).fit(tiny_1d_data)
    # the refit's first stage is the single fit (same seed), and its mask is kept through the second stage
    assert np.all(refit.clean_mask_[once.clean_mask_])
    assert refit.clean_mask_.sum() >= once.clean_mask_.sum()
    assert not np.array_equal(refit.anomaly_map(tiny_1d_data), once.anomaly_map(tiny_1d_data))
    assert (tmp_path / "ck.pt.stage0").exists() and ckpt.exists()
    again = RobustDiffusion(**params, clean_refits=1, checkpoint_path=str(ckpt)).fit(tiny_1d_data)  # resumes
    np.testing.assert_array_equal(again.anomaly_map(tiny_1d_data), refit.anomaly_map(tiny_1d_data))
    with pytest.raises(ValueError, match="clean_refits"):
        RobustDiffusion(**params, clean_refits=-1).fit(tiny_1d_data)


def test_position_normalizer_is_robust_and_checks_the_grid():
    rng = np.random.default_rng(1)
    maps = rng.normal(1.0, 0.2, size=(200, 8))
    maps[:20] += 100.0
    norm = PositionNormalizer().fit(maps)
    np.testing.assert_allclose(norm.center_, 1.0, atol=0.1)
    assert np.all(norm.scale_ < 0.5)
    with pytest.raises(ValueError, match="grid"):
        norm.transform(np.zeros((2, 9)))


@pytest.mark.parametrize(
    "loss",
    [
        "huber_adaptive",
        "pseudo_huber_scheduled",
        "lts_bucket",
        "lts_element",
        "lts_test",
        "tukey",
        "cauchy",
        "geman_mcclure",
    ],
)
def test_every_variant_trains(tiny_1d_data, loss):
    det = RobustDiffusion(**{**TINY_1D, "loss": loss}).fit(tiny_1d_data)
    assert np.all(np.isfinite(det.loss_history_)) and det.anomaly_map(tiny_1d_data).shape == (12, 33)


def test_self_clean_detector_records_its_mask_and_resumes(tiny_1d_data, tmp_path):
    params = {
        **TINY_1D,
        "self_clean": True,
        "train_steps": 10,
        "clean_max_share": 0.05,
        "checkpoint_path": str(tmp_path / "ck.pt"),
    }
    det = RobustDiffusion(**params).fit(tiny_1d_data)
    assert det.clean_mask_.shape == (12, 33) and det.clean_mask_.dtype == bool
    assert 0 < det.clean_mask_.mean() <= 0.5  # 5 % flagged, then dilated by 2 points either side
    again = RobustDiffusion(**params).fit(tiny_1d_data)  # resumes from the finished checkpoint
    np.testing.assert_array_equal(again.clean_mask_, det.clean_mask_)
    # no round ran in the resumed fit: its history is the checkpoint's
    np.testing.assert_array_equal(again.clean_history_, det.clean_history_)
