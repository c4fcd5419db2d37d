"""The machine_sound dataset: shapes, axes, determinism, contamination, masks, test split, mapping back to time."""

from __future__ import annotations

import numpy as np
import pytest

from rddpm_signals import datasets
from rddpm_signals.datasets.machine_sound import DEFECTS, make_machine_sound

SMALL = dict(n_train=20, n_test=12)


@pytest.fixture(scope="module")
def default():
    return datasets.load("machine_sound", contamination=0.2, seed=0)


@pytest.fixture(scope="module")
def small():
    return make_machine_sound(contamination=0.3, seed=1, **SMALL)


def test_default_shapes_and_axes(default):
    ds = default
    assert ds.dims == 2 and ds.name == "machine_sound"
    assert ds.train_x.shape == (200, 1, 32, 63) and ds.train_x.dtype == np.float32
    assert ds.test_x.shape == (100, 1, 32, 63)
    assert ds.train_mask.shape == (200, 32, 63) and ds.train_mask.dtype == bool
    assert ds.test_mask.shape == (100, 32, 63) and ds.test_label.shape == (100,)
    assert ds.train_label.sum() == 40 and ds.test_label.sum() == 50
    assert np.isfinite(ds.train_x).all() and np.isfinite(ds.test_x).all()
    meta = ds.meta
    assert meta["sample_rate"] == 16000.0
    freqs = meta["mel_frequencies"]
    assert freqs.shape == (32,) and np.all(np.diff(freqs) > 0) and 0 < freqs[0] < freqs[-1] < 8000
    np.testing.assert_allclose(meta["frame_times"], np.arange(63) * 256 / 16000)
    np.testing.assert_array_equal(meta["test_time_mask"], ds.test_mask.any(axis=1))
    np.testing.assert_array_equal(meta["train_time_mask"], ds.train_mask.any(axis=1))
    assert meta["test_audio"].shape == (100, 16000)


def test_normalisation_is_robust_per_mel_band(default):
    # fitted on contaminated clips, each band's median sits at 0 and its spread near 1
    x = default.train_x[:, 0]
    medians = np.median(x, axis=(0, 2))
    np.testing.assert_allclose(medians, 0.0, atol=1e-4)
    iqr = np.subtract(*np.percentile(x, [75, 25], axis=(0, 2)))
    assert np.all((iqr > 0.9) & (iqr < 1.6))


def test_masks_mark_defective_clips_only(small):
    for mask, defects in ((small.train_mask, small.meta["train_defect"]), (small.test_mask, small.meta["test_defect"])):
        marked = mask.reshape(len(mask), -1).any(axis=1)
        np.testing.assert_array_equal(marked, np.array([d != "" for d in defects]))
    np.testing.assert_array_equal(small.test_label, small.test_mask.reshape(12, -1).any(axis=1))
    assert small.test_label.sum() == 6


@pytest.mark.parametrize("contamination", [0.0, 0.1, 0.35])
def test_contamination_share(contamination):
    ds = make_machine_sound(contamination=contamination, seed=2, **SMALL)
    assert ds.train_label.sum() == round(SMALL["n_train"] * contamination)
    assert sum(d != "" for d in ds.meta["train_defect"]) == ds.train_label.sum()


def test_deterministic_for_a_seed_and_different_across_seeds(small):
    again = make_machine_sound(contamination=0.3, seed=1, **SMALL)
    np.testing.assert_array_equal(again.train_x, small.train_x)
    np.testing.assert_array_equal(again.test_mask, small.test_mask)
    other = make_machine_sound(contamination=0.3, seed=2, **SMALL)
    assert not np.array_equal(other.train_x, small.train_x)


def test_test_split_does_not_depend_on_contamination(small):
    clean = make_machine_sound(contamination=0.0, seed=1, **SMALL)
    np.testing.assert_array_equal(clean.meta["test_audio"], small.meta["test_audio"])
    np.testing.assert_array_equal(clean.test_mask, small.test_mask)
    np.testing.assert_array_equal(clean.test_label, small.test_label)
    assert clean.train_label.sum() == 0 and small.train_label.sum() == 6


def test_each_defect_lands_in_its_band():
    freqs = None
    centroid = {}
    for kind in DEFECTS:
        ds = make_machine_sound(contamination=0.5, seed=3, n_train=4, n_test=8, defects=(kind,))
        freqs = ds.meta["mel_frequencies"]
        mask = ds.test_mask[ds.test_label == 1]
        assert mask.any(axis=(1, 2)).all()
        centroid[kind] = float((mask.sum(axis=(0, 2)) * freqs).sum() / mask.sum())
    assert centroid["bearing_fault"] > 3000  # resonance ringing at 3.5-6 kHz
    assert 800 < centroid["rubbing"] < 4500  # band-limited noise bursts
    assert centroid["frequency_shift"] < 700  # a hum harmonic (2nd to 5th of 100 Hz) moves


def test_maps_go_back_to_frequency_and_time_with_the_adapter(small):
    adapter, layout = small.meta["adapter"], small.meta["test_layout"]
    maps = small.test_mask.astype(float)
    spectra = adapter.to_signal(maps, layout)
    np.testing.assert_allclose(spectra[0]["frequency"].values, small.meta["mel_frequencies"])
    np.testing.assert_allclose(spectra[0]["time"].values, small.meta["frame_times"])
    curves = adapter.time_curve(maps, layout, reduce="max")
    assert curves[0].sizes["time"] == 16000 and curves[0].attrs["sample_rate"] == 16000.0
    i = int(np.argmax(small.test_label))
    marked_times = curves[i]["time"].values[curves[i].values > 0.5]
    frames = small.meta["frame_times"][small.meta["test_time_mask"][i]]
    assert marked_times.min() >= frames.min() - 0.016 and marked_times.max() <= frames.max() + 0.016


def test_bad_options_raise():
    with pytest.raises(ValueError, match="contamination"):
        make_machine_sound(contamination=1.2, **SMALL)
    with pytest.raises(ValueError, match="defects"):
        make_machine_sound(defects=("squeal",), **SMALL)
    with pytest.raises(ValueError, match="n_fft"):
        make_machine_sound(duration=0.01, **SMALL)
