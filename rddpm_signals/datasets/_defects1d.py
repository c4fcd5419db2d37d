"""1D defects on one channel of a clean signal, and the base processes the 1D families share.

A defect is drawn as a segment ``[start, start + length)`` of one channel and a *change* (what it adds to the clean
signal). The mask rule depends on the kind: replacement and segment kinds (frequency, pattern, amplitude and variance
change, level shift, dropout) mark their whole segment, where the signal is changed throughout (a change-of-value
rule would leave holes wherever the old and new signal cross); the spike and the trend mark the points where they
move the signal by more than ``MASK_LEVEL`` (5 %) of the channel's nominal amplitude. A draw that changes its segment
by less than three times that level somewhere (a dropout on a flat stretch) is drawn again.

Base processes (all amplitudes are of order 1):

- :class:`MachineCycles` — quasi-periodic machine cycles: per channel a sum of harmonics of one shaft speed that
  wanders slowly (±3 %), with per-sample jitter of gains and harmonic phases;
- :class:`PulseTrain` — ECG-like beats (P wave, QRS complex, T wave) at a jittered beat interval, on a slow baseline
  wander.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage
from scipy.special import expit

__all__ = ["KINDS_1D", "MASK_LEVEL", "NOISE", "MachineCycles", "PulseTrain", "segment_defect", "smooth_noise"]

KINDS_1D = (
    "frequency_change",
    "pattern_change",
    "amplitude_change",
    "variance_change",
    "level_shift",
    "trend",
    "spike",
    "dropout",
)
MASK_LEVEL = 0.05  # share of a channel's nominal amplitude
NOISE = 0.01  # sensor noise, same unit
_VALUE_RULE = ("spike", "trend")


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian noise smoothed along the last axis with ``sigma`` samples, rescaled to unit standard deviation."""
    field = ndimage.gaussian_filter1d(rng.normal(size=shape), sigma, axis=-1, mode="reflect")
    return field / max(float(field.std()), 1e-12)


def _window(length: int, start: float, stop: float, edge: float) -> np.ndarray:
    """A weight ``(length,)``: 1 on ``[start, stop)``, falling to 0 over about ``edge`` samples at both ends."""
    t = np.arange(length, dtype=np.float64)
    edge = max(edge, 1e-3)
    return expit((t - start + 0.5) / (0.25 * edge)) * expit(-(t - stop + 0.5) / (0.25 * edge))


class MachineCycles:
    """Quasi-periodic machine cycles ``(n, C, L)``: harmonic ``k`` of the shaft phase with per-channel amplitudes.

    ``phase`` ``(n, L)`` is the shaft phase in cycles; :meth:`render` draws any phase track with one sample's
    harmonic settings, so a frequency change is the same machine at another speed over a segment.

    ``machine_seed`` fixes what makes the machine itself — the harmonics' phase offsets and, with ``jitter=False``,
    its cycle period — so the train and test splits are the same machine (drawn from each split's own stream they
    were two machines, and every test sample was off the training distribution). ``jitter=False`` (one long record of
    one machine): nominal amplitudes and gain, no per-sample phase jitter.
    """

    #: per channel, (harmonic orders, amplitudes): a motor current and a vibration pick-up
    HARMONICS = (((1, 2, 3, 4), (1.0, 0.45, 0.25, 0.12)), ((2, 3, 5), (0.7, 0.5, 0.35)))

    def __init__(
        self,
        rng: np.random.Generator,
        n: int,
        length: int,
        channels: int = 2,
        period: tuple[float, float] = (36.0, 52.0),
        machine_seed: int | None = None,
        jitter: bool = True,
    ):
        if channels not in (1, 2):
            raise ValueError(f"machine cycles have 1 or 2 channels, got {channels}")
        self.channels = channels
        machine = rng if machine_seed is None else np.random.default_rng(machine_seed)
        harmonics = self.HARMONICS[:channels]
        offsets = [machine.uniform(0, 2 * np.pi, size=(1, len(o))) for o, _ in harmonics]
        period_n = rng.uniform(*period, size=(n, 1)) if jitter else np.full((n, 1), machine.uniform(*period))
        speed = 1.0 + 0.03 * smooth_noise(rng, (n, length), sigma=length / 8 if length < 4096 else 400.0)
        self.phase = rng.uniform(0, 1, size=(n, 1)) + np.cumsum(speed / period_n, axis=1)
        spread = (0.08, 0.15, 0.05) if jitter else (0.0, 0.0, 0.0)
        self.amps = [np.asarray(a)[None] * rng.normal(1.0, spread[0], size=(n, len(a))) for _, a in harmonics]
        self.phs = [off + rng.normal(0, spread[1], size=(n, len(off[0]))) for off in offsets]
        self.gain = rng.normal(1.0, spread[2], size=(n, channels))

    def render(self, i: int, phase: np.ndarray) -> np.ndarray:
        """Sample ``i``'s machine along ``phase`` ``(L,)`` (cycles) → ``(C, L)``."""
        out = np.zeros((self.channels, phase.shape[-1]))
        for c in range(self.channels):
            orders = np.asarray(self.HARMONICS[c][0])[:, None]
            waves = self.amps[c][i, :, None] * np.sin(2 * np.pi * orders * phase + self.phs[c][i, :, None])
            out[c] = self.gain[i, c] * waves.sum(0)
        return out

    def clean(self) -> np.ndarray:
        return np.stack([self.render(i, self.phase[i]) for i in range(len(self.phase))])

    def frequency_change(self, rng: np.random.Generator, i: int, start: int, stop: int) -> np.ndarray:
        """The signal ``(C, L)`` of sample ``i`` with the speed raised 1.4–2× (or lowered to 0.5–0.7×) from
        ``start`` on (the phase stays continuous at ``start``)."""
        ratio = rng.uniform(1.4, 2.0) if rng.random() < 0.6 else rng.uniform(0.5, 0.7)
        phase = self.phase[i].copy()
        phase[start:] = phase[start] + ratio * (phase[start:] - phase[start])
        return self.render(i, phase)


# P, Q, R, S, T waves: (offset from the R peak in beat intervals, width in samples, amplitude)
_WAVES = ((-0.22, 4.0, 0.12), (-0.04, 1.2, -0.12), (0.0, 1.5, 1.0), (0.04, 1.5, -0.25), (0.33, 7.0, 0.3))


class PulseTrain:
    """ECG-like beats ``(n, 1, L)`` at a beat interval of 55–80 samples (±4 % per beat), amplitudes jittered per
    sample (±10 %) and per beat (±3 %), on a slow baseline wander."""

    def __init__(self, rng: np.random.Generator, n: int, length: int, interval: tuple[float, float] = (55.0, 80.0)):
        self.length = length
        self.beats: list[np.ndarray] = []  # per sample, (centre, interval, amplitude) rows
        for _ in range(n):
            rr = rng.uniform(*interval)
            gain = rng.normal(1.0, 0.1)
            centre, rows = -rng.uniform(0, rr), []
            while centre < length + rr:
                step = rr * rng.normal(1.0, 0.04)
                rows.append((centre, step, gain * rng.normal(1.0, 0.03)))
                centre += step
            self.beats.append(np.asarray(rows))
        t = np.arange(length)
        period = rng.uniform(300.0, 700.0, size=(n, 1))
        self.wander = 0.08 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, size=(n, 1)))

    @staticmethod
    def beat(t: np.ndarray, centre: float, interval: float, amp: float, waves=_WAVES) -> np.ndarray:
        out = np.zeros_like(t, dtype=np.float64)
        for offset, width, a in waves:
            out += amp * a * np.exp(-0.5 * ((t - centre - offset * interval) / width) ** 2)
        return out

    def clean(self) -> np.ndarray:
        t = np.arange(self.length, dtype=np.float64)
        x = self.wander.copy()
        for i, rows in enumerate(self.beats):
            for centre, rr, amp in rows:  # each beat only where it is not negligible (40 widths of its waves)
                lo, hi = max(0, int(centre - 0.5 * rr) - 40), min(self.length, int(centre + 0.5 * rr) + 40)
                if hi > lo:
                    x[i, lo:hi] += self.beat(t[lo:hi], centre, rr, amp)
        return x[:, None]

    def centres(self, i: int) -> np.ndarray:
        return self.beats[i][:, 0]

    def spans(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beat centres of sample ``i`` and the spans ``[lo, hi)`` that :meth:`pattern_change` marks."""
        centre, rr = self.beats[i][:, 0], self.beats[i][:, 1]
        return centre, np.floor(centre - 0.3 * rr).astype(int), np.ceil(centre + 0.5 * rr).astype(int)

    def pattern_change(self, rng: np.random.Generator, i: int, centre_near: float) -> tuple[np.ndarray, int, int]:
        """One beat of sample ``i`` (the one nearest ``centre_near``) with another morphology — a wide
        ventricular beat without P wave, or an inverted T wave. Returns the change ``(L,)`` and the beat's span."""
        rows = self.beats[i]
        centre, rr, amp = rows[np.argmin(np.abs(rows[:, 0] - centre_near))]
        t = np.arange(self.length, dtype=np.float64)
        if rng.random() < 0.6:  # premature ventricular beat: no P, wide tall QRS, discordant T
            sign = rng.choice([-1.0, 1.0])
            waves = ((0.0, rng.uniform(3.5, 5.5), sign * rng.uniform(1.0, 1.5)), (0.3, 8.0, -sign * 0.35))
        else:  # inverted, broader T wave
            waves = (*_WAVES[:4], (0.33, rng.uniform(7.0, 10.0), -rng.uniform(0.2, 0.35)))
        change = self.beat(t, centre, rr, amp, waves) - self.beat(t, centre, rr, amp)
        return change, int(np.floor(centre - 0.3 * rr)), int(np.ceil(centre + 0.5 * rr))


def segment_defect(
    rng: np.random.Generator,
    clean: np.ndarray,
    kind: str,
    start: int,
    length: int,
    replacement: Callable[[int, int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The change ``(L,)`` that a ``kind`` defect on ``[start, start + length)`` makes to one clean channel
    ``clean`` ``(L,)`` of nominal amplitude 1, and its mask ``(L,)``. ``replacement(start, stop)`` gives the
    changed signal ``(L,)`` for ``frequency_change`` (the caller's base process knows how)."""
    n = clean.shape[-1]
    stop = min(n, start + length)
    w = _window(n, start, stop, edge=1.5)
    centre = 0.5 * (start + stop)
    t = np.arange(n, dtype=np.float64)
    if kind == "frequency_change":
        if replacement is None:
            raise ValueError("a frequency change needs the base process: pass replacement")
        change = w * (replacement(start, stop) - clean)
    elif kind == "amplitude_change":
        gain = rng.uniform(1.5, 2.0) if rng.random() < 0.5 else rng.uniform(0.2, 0.5)
        change = w * (gain - 1.0) * (clean - np.median(clean))
    elif kind == "variance_change":
        change = w * rng.normal(0.0, rng.uniform(0.12, 0.25), size=n)
    elif kind == "level_shift":
        change = _window(n, start, stop, edge=0.6) * rng.choice([-1.0, 1.0]) * rng.uniform(0.3, 0.6)
    elif kind == "trend":
        ramp = np.clip((t - start) / max(stop - start, 1), 0.0, 1.0) * (t < stop)
        change = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 0.8) * ramp
    elif kind == "spike":
        change = (
            rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.6) * np.exp(-0.5 * ((t - centre) / rng.uniform(0.8, 2.0)) ** 2)
        )
    elif kind == "dropout":
        stuck = clean[start] if rng.random() < 0.5 else rng.uniform(-0.1, 0.1)  # frozen value or a dead sensor
        change = w * (stuck - clean)
    elif kind == "pattern_change":
        raise ValueError("pattern_change is drawn by the base process (PulseTrain.pattern_change)")
    else:
        raise ValueError(f"unknown 1D defect {kind!r}: use one of {KINDS_1D}")
    mask = np.abs(change) > MASK_LEVEL if kind in _VALUE_RULE else w >= 0.5
    return change, mask


def visible(change: np.ndarray, mask: np.ndarray) -> bool:
    """A defect counts when it moves the signal by three mask levels somewhere inside its mask."""
    return bool(mask.any() and np.abs(change[mask]).max() > 3 * MASK_LEVEL)
