"""Synthetic machine sound (a motor-driven compressor), as log-mel spectrograms (2D, 1 channel).

Each sample is a 1 s clip at 16 kHz of a machine running normally:

- a magnetostrictive hum: a 100 Hz fundamental (twice a 50 Hz mains) with ten decaying harmonics, slightly
  amplitude-modulated at the shaft rate (≈ 24.5 Hz); per clip the fundamental varies by ±0.4 % and each harmonic's
  level by ±10 %;
- valve clicks: a periodic train (≈ 12 per second, per-impulse timing jitter) of short damped resonances near
  2.2 kHz;
- broadband noise: pink noise (airflow, fan) plus a white sensor floor.

Defects, one per defective clip:

- ``bearing_fault``: a train of short resonant impulses (3.5–6 kHz ringing) repeating at a fault frequency of
  3–5 × the shaft rate, amplitude-modulated by the shaft, over part or all of the clip;
- ``rubbing``: one to three bursts (40–150 ms) of band-limited noise somewhere between 0.8 and 4.5 kHz;
- ``frequency_shift``: one harmonic (2nd to 5th) moves by 8–20 % for 0.25–0.6 s.

The clips go through :class:`adapters.SpectrogramAdapter` (fitted on the contaminated training clips): 32 HTK mel
bands up to 8 kHz, ``n_fft=1024``, hop 256 samples → 63 frames of 16 ms. Mask rule: a (mel band, frame) cell is
marked when the spectrogram of the defect alone (the defective clip minus its clean version) is within 3 dB of the
clean clip's spectrogram or above it, i.e. where the defect carries at least half the energy of the normal sound.
``meta["train_time_mask"]`` / ``meta["test_time_mask"]`` ``(N, frames)`` mark the frames where any band is marked.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve
from sklearn.base import clone

from .base import AnomalyDataset, check_contamination, check_defects, split_streams

__all__ = ["make_machine_sound", "DEFECTS", "MASK_MARGIN_DB"]

DEFECTS = ("bearing_fault", "rubbing", "frequency_shift")
MASK_MARGIN_DB = 3.0
_HUM_F0 = 100.0  # Hz
_SHAFT = 24.5  # Hz
_N_HARMONICS = 10
_LEVEL = 0.1  # amplitude of the hum's fundamental (full scale ±1)


def _resonance(rate: float, freq: float, decay: float, length: int) -> np.ndarray:
    """A damped sine (one impulse response) of ``length`` samples, peak 1."""
    tk = np.arange(length) / rate
    return np.exp(-tk / decay) * np.sin(2.0 * np.pi * freq * tk)


def _band_noise(rng: np.random.Generator, length: int, rate: float, low: float, high: float) -> np.ndarray:
    """White noise band-limited to ``[low, high]`` Hz (FFT mask), unit standard deviation."""
    spec = np.fft.rfft(rng.normal(size=length))
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    spec[(freqs < low) | (freqs > high)] = 0.0
    noise = np.fft.irfft(spec, n=length)
    return noise / noise.std()


def _clean_clips(rng: np.random.Generator, n: int, length: int, rate: float) -> tuple[np.ndarray, dict]:
    """``n`` normal clips ``(n, length)`` and the hum parameters a frequency-shift defect needs."""
    t = np.arange(length) / rate
    gain = rng.lognormal(0.0, 0.05, size=(n, 1))
    f0 = _HUM_F0 * (1.0 + rng.normal(0.0, 0.004, size=(n, 1)))
    am = 1.0 + 0.05 * np.sin(2.0 * np.pi * _SHAFT * t[None] + rng.uniform(0, 2 * np.pi, size=(n, 1)))
    amps = _LEVEL * np.arange(1, _N_HARMONICS + 1) ** -0.8 * rng.normal(1.0, 0.1, size=(n, _N_HARMONICS))
    phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, _N_HARMONICS))
    # harmonic k is Im(amp_k · e^{iφ_k} · z^k) with z = e^{i 2π f0 t}: one complex product per harmonic, no sines
    z = np.exp(2j * np.pi * f0 * t[None])
    zk = np.ones_like(z)
    hum = np.zeros((n, length))
    for k in range(_N_HARMONICS):
        zk *= z
        hum += (amps[:, k : k + 1] * np.exp(1j * phases[:, k : k + 1]) * zk).imag
    x = am * hum

    # valve clicks: a jittered periodic impulse train convolved with each clip's resonance
    click_rate = 12.0 * (1.0 + rng.normal(0.0, 0.03, size=n))
    clicks = np.zeros((n, length))
    for i in range(n):
        times = np.arange(rng.uniform(0.0, 1.0 / click_rate[i]), length / rate, 1.0 / click_rate[i])
        times = times + rng.normal(0.0, 0.001, size=times.shape)
        idx = np.clip(np.round(times * rate).astype(int), 0, length - 1)
        clicks[i, idx] = rng.normal(1.0, 0.1, size=idx.shape)
    kernels = np.stack(
        [_resonance(rate, f, 0.002, int(0.012 * rate)) for f in 2200.0 * (1.0 + rng.normal(0.0, 0.03, size=n))]
    )
    x += 0.3 * _LEVEL * fftconvolve(clicks, kernels, axes=1)[:, :length]

    # pink noise above 20 Hz plus a white sensor floor
    spec = np.fft.rfft(rng.normal(size=(n, length)), axis=1)
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    spec *= 1.0 / np.sqrt(np.maximum(freqs, 20.0) / 20.0)
    pink = np.fft.irfft(spec, n=length, axis=1)
    x += 0.08 * _LEVEL * pink / pink.std(axis=1, keepdims=True) + 0.002 * _LEVEL * rng.normal(size=(n, length))
    return gain * x, {"t": t, "f0": f0[:, 0], "am": am, "amps": amps * gain, "phases": phases}


def _segment(rng: np.random.Generator, length: int, rate: float, low: float, high: float) -> np.ndarray:
    """A 0–1 envelope ``(length,)`` over a random segment of ``low``–``high`` seconds, 10 ms raised-cosine ramps."""
    duration = min(rng.uniform(low, high), length / rate)
    start = rng.uniform(0.0, length / rate - duration)
    t = np.arange(length) / rate
    ramp = 0.01
    rise = np.clip((t - start) / ramp, 0.0, 1.0)
    fall = np.clip((start + duration - t) / ramp, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))


def _defect(rng: np.random.Generator, kind: str, i: int, hum: dict, length: int, rate: float) -> np.ndarray:
    """The waveform ``(length,)`` that ``kind`` adds to clean clip ``i``."""
    t = hum["t"]
    if kind == "bearing_fault":
        fault = _SHAFT * rng.uniform(3.0, 5.0)
        envelope = _segment(rng, length, rate, 0.3, 1.0)
        train = np.zeros(length)
        times = np.arange(rng.uniform(0.0, 1.0 / fault), length / rate, 1.0 / fault)
        idx = np.round(times * rate).astype(int)
        idx = idx[idx < length]
        shaft_phase = rng.uniform(0.0, 2.0 * np.pi)
        train[idx] = 1.0 + 0.5 * np.cos(2.0 * np.pi * _SHAFT * idx / rate + shaft_phase)
        ring = _resonance(rate, rng.uniform(3500.0, 6000.0), rng.uniform(0.0004, 0.0008), int(0.004 * rate))
        return rng.uniform(0.08, 0.2) * _LEVEL * envelope * np.convolve(train, ring)[:length]
    if kind == "rubbing":
        out = np.zeros(length)
        for _ in range(rng.integers(1, 4)):
            centre = rng.uniform(1000.0, 4000.0)
            width = rng.uniform(300.0, 1000.0)
            burst = _segment(rng, length, rate, 0.04, 0.15)
            noise = _band_noise(rng, length, rate, max(800.0, centre - width / 2), min(4500.0, centre + width / 2))
            out += rng.uniform(0.05, 0.12) * _LEVEL * burst * noise
        return out
    if kind == "frequency_shift":
        k = int(rng.integers(2, 6))
        shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.2)
        envelope = _segment(rng, length, rate, 0.25, 0.6)
        amp, phase, f = hum["amps"][i, k - 1], hum["phases"][i, k - 1], k * hum["f0"][i]
        original = amp * hum["am"][i] * np.sin(2.0 * np.pi * f * t + phase)
        start = t[np.argmax(envelope > 0)]
        # the shifted tone starts in phase with the original one, so the switch makes no click of its own
        moved = (
            amp * hum["am"][i] * np.sin(2.0 * np.pi * f * start + phase + 2.0 * np.pi * f * (1 + shift) * (t - start))
        )
        return envelope * (moved - original)
    raise ValueError(f"unknown machine_sound defect {kind!r}: use one of {DEFECTS}")


def _mask(mel, clean: np.ndarray, change: np.ndarray) -> np.ndarray:
    """The mask rule on the mel grid: bool ``(n, n_mels, frames)`` for clips ``clean`` and defects ``change``."""
    clean_db = np.stack(mel.spectrogram(clean))[:, 0]
    change_db = np.stack(mel.spectrogram(change))[:, 0]
    return (change_db >= clean_db - MASK_MARGIN_DB) & (change_db > mel.floor_db)


def _make_split(
    rng: np.random.Generator, mel, n: int, n_defective: int, length: int, rate: float, defects: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Clean clips ``(n, length)``, defect-only waveforms ``(n, length)``, masks ``(n, n_mels, frames)`` and each
    clip's defect name. A defect too faint to mark any cell is drawn again (up to 8 times), so the defective share
    is exact."""
    clean, hum = _clean_clips(rng, n, length, rate)
    change = np.zeros_like(clean)
    kinds = [""] * n
    frames = 1 + length // mel.hop_length
    mask = np.zeros((n, len(mel.frequencies_), frames), dtype=bool)
    todo = np.sort(rng.permutation(n)[:n_defective])
    for _ in range(8):
        if not len(todo):
            break
        for i in todo:
            kinds[i] = defects[rng.integers(len(defects))]
            change[i] = _defect(rng, kinds[i], int(i), hum, length, rate)
        mask[todo] = _mask(mel, clean[todo], change[todo])
        todo = todo[~mask[todo].any(axis=(1, 2))]
    return clean, change, mask, kinds


def make_machine_sound(
    contamination: float = 0.2,
    seed: int = 0,
    n_train: int = 200,
    n_test: int = 100,
    test_anomaly_share: float = 0.5,
    defects: tuple[str, ...] = DEFECTS,
    sample_rate: int = 16000,
    duration: float = 1.0,
    n_mels: int = 32,
    n_fft: int = 1024,
    hop_length: int = 256,
) -> AnomalyDataset:
    """Machine-sound log-mel spectrograms: ``train_x`` ``(n_train, 1, n_mels, frames)`` (a ``contamination``
    share defective), ``test_x`` ``(n_test, 1, n_mels, frames)`` (``test_anomaly_share`` defective), normalised by
    a :class:`adapters.SpectrogramAdapter` fitted on the training clips; masks bool ``(N, n_mels, frames)``."""
    from adapters import SpectrogramAdapter

    contamination = check_contamination(contamination)
    defects = check_defects(defects, DEFECTS, "machine_sound")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    length = int(round(sample_rate * duration))
    if length < n_fft:
        raise ValueError(f"a clip of {duration} s at {sample_rate} Hz is shorter than n_fft={n_fft}: lengthen it")
    adapter = SpectrogramAdapter(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, f_max=sample_rate / 2
    )
    # the mask rule works on raw dB, which needs only the transform: fit a copy on a silent clip for it
    mel = clone(adapter).fit(np.zeros((1, length)))
    (train_clean, train_change, train_mask, train_kinds), (test_clean, test_change, test_mask, test_kinds) = (
        _make_split(rng, mel, n, n_defective, length, sample_rate, defects)
        for rng, n, n_defective in split_streams(seed, 31, n_train, contamination, n_test, test_anomaly_share)
    )
    train_audio = (train_clean + train_change).astype(np.float32)
    test_audio = (test_clean + test_change).astype(np.float32)
    train_x, train_layout = adapter.fit_to_tensor(train_audio)
    test_x, test_layout = adapter.to_tensor(test_audio)
    return AnomalyDataset.from_masks(
        name="machine_sound",
        dims=2,
        train_x=train_x,
        train_mask=train_mask,
        test_x=test_x,
        test_mask=test_mask,
        meta={
            "sample_rate": float(sample_rate),
            "mel_frequencies": adapter.frequencies_.copy(),
            "frame_times": adapter.frame_times(train_x.shape[-1]),
            "train_time_mask": train_mask.any(axis=1),
            "test_time_mask": test_mask.any(axis=1),
            "train_defect": tuple(train_kinds),
            "test_defect": tuple(test_kinds),
            "test_audio": test_audio,
            "adapter": adapter,
            "train_layout": train_layout,
            "test_layout": test_layout,
            "mask_rule": f"defect-only log-mel >= clean log-mel - {MASK_MARGIN_DB:g} dB",
            "units": "dB, normalised per mel band (median / IQR of the training clips)",
            "defects": tuple(defects),
            "contamination": contamination,
            "seed": seed,
        },
    )
