"""End to end on tiny generated sets: adapter → RobustDiffusion → anomaly maps on the data's own axes.

The detectors are CPU-tiny (a few training steps), so these runs check the plumbing — shapes, axes, masks on the same
grid as the maps — not the detection quality, which the benchmarks measure.
"""

from __future__ import annotations

import numpy as np
import pytest

import adapters
from helpers import TINY_1D, TINY_2D
from rddpm_signals import RobustDiffusion, metrics

pytestmark = pytest.mark.slow


def _finite_nonnegative(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).all() and (values >= 0).all())


def test_waveform_adapter_with_1d_diffusion():
    rng = np.random.default_rng(0)
    rate = 100.0
    records, masks = [], []
    for i, n in enumerate((150, 190, 230, 260, 175, 205, 240, 160)):
        t = np.arange(n) / rate
        rec = np.stack([np.sin(2 * np.pi * 1.5 * t), np.cos(2 * np.pi * 1.5 * t)]) + 0.05 * rng.normal(size=(2, n))
        mask = np.zeros(n, bool)
        if i % 3 == 0:  # a spike on the second channel
            mask[n // 2 : n // 2 + 4] = True
            rec[1, mask] += 3.0
        records.append(rec)
        masks.append(mask)
    adapter = adapters.WaveformAdapter(sample_rate=rate, window=64, hop=32).fit(records)
    x, layout = adapter.to_tensor(records)
    grid_masks = adapter.masks_to_grid(masks, layout)
    detector = RobustDiffusion(**TINY_1D).fit(x)
    maps = detector.anomaly_map(x)
    assert maps.shape == grid_masks.shape == (x.shape[0], 64)
    assert 0.0 <= metrics.pixel_auroc(maps, grid_masks) <= 1.0

    out = adapter.to_signal(maps, layout)
    assert len(out) == len(records)
    for o, rec in zip(out, records, strict=True):
        assert o.dims == ("time",) and o.sizes["time"] == rec.shape[1]
        np.testing.assert_array_equal(o["time"].values, np.arange(rec.shape[1]) / rate)
        assert o.attrs["sample_rate"] == rate and _finite_nonnegative(o.values)


def test_spectrogram_adapter_with_2d_diffusion():
    rng = np.random.default_rng(1)
    rate = 8000
    t = np.arange(4000) / rate
    clips, masks = [], []
    for i in range(8):
        clip = 0.5 * np.sin(2 * np.pi * 300 * (1 + 0.01 * rng.normal()) * t) + 0.02 * rng.normal(size=t.size)
        mask = np.zeros(t.size, bool)
        if i % 4 == 0:  # a burst of 2 kHz ringing
            mask[1500:1900] = True
            clip[mask] += 0.3 * np.sin(2 * np.pi * 2000 * t[mask])
        clips.append(clip)
        masks.append(mask)
    adapter = adapters.SpectrogramAdapter(sample_rate=rate, n_fft=256, hop_length=128, n_mels=16)
    x, layout = adapter.fit_to_tensor(clips)
    assert x.shape == (8, 1, 16, 1 + 4000 // 128)
    grid_masks = adapter.masks_to_grid(masks, layout)
    assert grid_masks[0].any() and not grid_masks[1].any()
    detector = RobustDiffusion(**TINY_2D).fit(x)
    maps = detector.anomaly_map(x)
    assert maps.shape == grid_masks.shape

    spectra = adapter.to_signal(maps, layout)
    assert spectra[0].dims == ("frequency", "time") and spectra[0].shape == (16, x.shape[-1])
    np.testing.assert_allclose(spectra[0]["frequency"].values, adapter.frequencies_)
    curves = adapter.time_curve(maps, layout)
    for curve in curves:
        assert curve.sizes["time"] == 4000 and curve.attrs["sample_rate"] == rate
        assert _finite_nonnegative(curve.values)


def test_image_adapter_with_2d_diffusion():
    rng = np.random.default_rng(2)
    images, masks = [], []
    for i in range(6):
        size = (36, 40) if i % 2 else (44, 30)
        img = 0.5 + 0.05 * rng.normal(size=size)
        mask = np.zeros(size, bool)
        if i in (1, 4):  # a dark scratch
            mask[10:13, 5:25] = True
            img[mask] -= 0.4
        images.append(img)
        masks.append(mask)
    adapter = adapters.ImageAdapter(tile=16, stride=12).fit(images)
    x, layout = adapter.to_tensor(images)
    grid_masks = adapter.masks_to_grid(masks, layout)
    detector = RobustDiffusion(**TINY_2D).fit(x)
    maps = detector.anomaly_map(x)
    assert maps.shape == grid_masks.shape == (x.shape[0], 16, 16)

    out = adapter.to_signal(maps, layout)
    assert [o.shape for o in out] == [img.shape for img in images]
    assert all(_finite_nonnegative(o.values) for o in out)
    # the stitched maps and the original masks share the image grid, so metrics run on the originals directly
    assert 0.0 <= metrics.pixel_auroc(out[1].values[None], masks[1][None]) <= 1.0
