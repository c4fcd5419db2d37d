"""Held-out calibration: the split is by item, spread over the input, and never lets a window straddle it."""

import numpy as np
import pytest

import adapters
from rddpm_signals import AnomalyModel
from rddpm_signals.calibration import calibration_split


def test_split_by_item_spread_and_disjoint():
    record = np.repeat(np.arange(10), 3)  # 10 items, 3 windows each
    offset = np.tile([0, 32, 64], 10)
    fit, cal = calibration_split(record, offset, 64, 0.2)
    assert set(np.unique(record[cal])) == {2, 7}  # two of ten items, spread over the order
    assert not set(record[fit]) & set(record[cal])
    assert len(fit) + len(cal) == len(record)


def test_one_item_holds_out_its_tail_without_overlap():
    offset = np.arange(0, 20 * 16, 16)  # 20 windows of 64, hop 16
    fit, cal = calibration_split(np.zeros(20, dtype=int), offset, 64, 0.25)
    assert list(cal) == list(range(15, 20))
    assert (offset[fit] + 64 <= offset[cal].min()).all() and len(fit) == 12  # the three straddling windows dropped


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_no_split_when_nothing_to_hold_out(share):
    record = np.arange(4) if share else np.arange(10)
    fit, cal = calibration_split(record, np.zeros_like(record), 8, share)
    assert list(fit) == list(cal) == list(range(len(record)))  # 0, or under five samples: in-sample


def test_share_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"calibration must lie in \[0, 1\)"):
        calibration_split(np.arange(10), np.zeros(10, dtype=int), 8, 1.0)


def test_model_thresholds_come_from_held_out_items(tmp_path):
    rng = np.random.default_rng(0)
    items = [adapters.Record(rng.normal(size=(1, 128)).astype(np.float32), sample_rate=100.0) for _ in range(10)]
    model = AnomalyModel(adapters.WaveformAdapter(window=64), "rpca").fit(items)
    assert not model.in_sample_ and model.n_fit_samples_ == 16 and len(model.calibration_scores_) == 4
    in_sample = AnomalyModel(adapters.WaveformAdapter(window=64), "rpca", calibration=0.0).fit(items)
    assert in_sample.in_sample_ and len(in_sample.calibration_scores_) == 20
    model.save(tmp_path / "m.model")
    loaded = AnomalyModel.load(tmp_path / "m.model")
    assert loaded.calibration == 0.2 and loaded.n_fit_samples_ == 16 and not loaded.in_sample_
    np.testing.assert_array_equal(loaded.calibration_scores_, model.calibration_scores_)
    with pytest.raises(ValueError, match="calibration must lie"):
        AnomalyModel(adapters.WaveformAdapter(window=64), "rpca", calibration=-0.1).fit(items)
