"""Audio and vibration records → log-power spectrograms ``(N, C, F, T)``; maps back on (frequency in Hz, time in s).

The spectrogram is torchaudio's STFT power (``n_fft``, ``hop_length``, Hann window, centred frames) or its HTK mel
projection (``n_mels`` filters between ``f_min`` and ``f_max``), in dB: ``10·log10(max(power, 10^(floor_db/10)))``.
The floor is absolute (not relative to each clip's maximum), so a loud defect does not move the floor of its own clip.
``fit`` learns a robust per-frequency normalisation (median and IQR / 1.349 of each channel × frequency bin over all
training frames), so a bin that is always loud (the hum) and a quiet one (the hiss) weigh alike.

Frame ``k`` of a record is centred on ``k · hop_length / sample_rate`` seconds; a record of ``L`` samples has
``1 + L // hop_length`` frames. With ``window_frames`` set, long records are cut into windows of that many frames
every ``hop_frames`` frames, and ``to_signal`` averages overlapping window maps back into one map per record.
:meth:`SpectrogramAdapter.time_curve` turns the maps into one anomaly curve per record on the waveform's own samples.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr

from .base import (
    Layout,
    check_maps,
    choose_window,
    cut,
    mask_items,
    plan_windows,
    positive_int,
    robust_center_scale,
    stitch,
)
from .waveform import AudioInput

__all__ = ["SpectrogramAdapter", "mel_frequencies"]

REDUCTIONS = ("mean", "max")


def mel_frequencies(n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Centre frequencies (Hz) ``(n_mels,)`` of HTK mel filters between ``f_min`` and ``f_max`` (torchaudio's)."""
    mel = np.linspace(2595.0 * np.log10(1.0 + f_min / 700.0), 2595.0 * np.log10(1.0 + f_max / 700.0), n_mels + 2)
    return 700.0 * (10.0 ** (mel[1:-1] / 2595.0) - 1.0)


class SpectrogramAdapter(AudioInput):
    """Records (arrays, ``(array, rate)`` pairs or audio files, as for :class:`~adapters.WaveformAdapter`) →
    float32 log-power spectrograms ``(N, C, F, window_frames)``; maps → ``(frequency, time)`` DataArrays.

    Parameters
    ----------
    sample_rate, resample: as for :class:`~adapters.WaveformAdapter`.
    n_fft, hop_length, win_length: the STFT (``win_length`` ``None``: ``n_fft``).
    n_mels: mel filters (``None``: the linear STFT bins between ``f_min`` and ``f_max``).
    f_min, f_max: the frequency range in Hz (``f_max`` ``None``: half the sample rate).
    floor_db: absolute dB floor of the power.
    window_frames, hop_frames: frames per model window and between window starts (``None``: one window per
        record, all records must then give the same number of frames; ``hop_frames`` ``None``: no overlap).
    normalise: robust per-(channel, frequency) normalisation learned in ``fit``.

    Fitted attributes: ``sample_rate_``, ``n_channels_``, ``frequencies_`` ``(F,)`` in Hz,
    ``center_`` / ``scale_`` ``(C, F)`` in dB.
    """

    name = "spectrogram"

    def __init__(
        self,
        sample_rate: float | None = None,
        resample: bool = False,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int | None = None,
        n_mels: int | None = 64,
        f_min: float = 0.0,
        f_max: float | None = None,
        floor_db: float = -100.0,
        window_frames: int | None = None,
        hop_frames: int | None = None,
        normalise: bool = True,
    ):
        self.sample_rate = sample_rate
        self.resample = resample
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.floor_db = floor_db
        self.window_frames = window_frames
        self.hop_frames = hop_frames
        self.normalise = normalise

    # --------------------------------------------------------------------------------------------- transform
    def _win_length(self) -> int:
        n_fft = positive_int(self.n_fft, "n_fft")
        win = n_fft if self.win_length is None else positive_int(self.win_length, "win_length")
        if win > n_fft:
            raise ValueError(f"win_length={win} exceeds n_fft={n_fft}: lower win_length or raise n_fft")
        return win

    def _band(self, rate: float) -> tuple[float, float]:
        f_max = rate / 2.0 if self.f_max is None else float(self.f_max)
        if not 0.0 <= float(self.f_min) < f_max <= rate / 2.0 + 1e-9:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate / 2 = {rate / 2:g} Hz, got f_min={self.f_min}, "
                f"f_max={self.f_max}: adjust the frequency range"
            )
        return float(self.f_min), f_max

    def _frequencies(self, rate: float) -> tuple[np.ndarray, np.ndarray | None]:
        """The frequency axis (Hz) and, for a linear STFT, the rows of it that lie in [f_min, f_max]."""
        f_min, f_max = self._band(rate)
        if self.n_mels is None:
            bins = np.fft.rfftfreq(positive_int(self.n_fft, "n_fft"), 1.0 / rate)
            keep = np.nonzero((bins >= f_min) & (bins <= f_max))[0]
            return bins[keep], keep
        return mel_frequencies(positive_int(self.n_mels, "n_mels"), f_min, f_max), None

    def _transform(self, rate: float):
        import torchaudio

        kwargs = {
            "n_fft": positive_int(self.n_fft, "n_fft"),
            "win_length": self._win_length(),
            "hop_length": positive_int(self.hop_length, "hop_length"),
            "center": True,
            "power": 2.0,
        }
        if self.n_mels is None:
            return torchaudio.transforms.Spectrogram(**kwargs)
        f_min, f_max = self._band(rate)
        with warnings.catch_warnings():  # torchaudio warns about empty filters; the ValueError below says more
            warnings.filterwarnings("ignore", message="At least one mel filterbank has all zero values")
            transform = torchaudio.transforms.MelSpectrogram(
                sample_rate=int(round(rate)), f_min=f_min, f_max=f_max, n_mels=self.n_mels, mel_scale="htk", **kwargs
            )
        empty = int((transform.mel_scale.fb.sum(dim=0) == 0).sum())
        if empty:
            raise ValueError(
                f"{empty} of the n_mels={self.n_mels} mel filters catch no STFT bin: lower n_mels or raise n_fft"
            )
        return transform

    def _power_db(self, data: list[np.ndarray], rate: float) -> list[np.ndarray]:
        """Records ``(C, L)`` at ``rate`` → dB spectrograms ``(C, F, 1 + L // hop_length)`` (float64)."""
        import torch

        n_fft = positive_int(self.n_fft, "n_fft")
        for i, d in enumerate(data):
            if d.shape[-1] < n_fft:
                raise ValueError(
                    f"record {i} has {d.shape[-1]} samples, fewer than n_fft={n_fft}: lower n_fft or drop records "
                    f"shorter than {n_fft} samples"
                )
        transform = self._transform(rate)
        _, keep = self._frequencies(rate)
        floor = 10.0 ** (float(self.floor_db) / 10.0)
        out: list[np.ndarray | None] = [None] * len(data)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, d in enumerate(data):
            groups.setdefault(d.shape, []).append(i)
        with torch.no_grad():
            for indices in groups.values():  # records of one shape go through the transform together
                batch = torch.from_numpy(np.stack([data[i] for i in indices]).astype(np.float32))
                power = transform(batch).double().clamp_min(floor)
                db = (10.0 * torch.log10(power)).numpy()
                if keep is not None:
                    db = db[:, :, keep]
                for j, i in enumerate(indices):
                    out[i] = db[j]
        return out  # type: ignore[return-value]

    def _window_hop(self, frames: list[int]) -> tuple[int, int]:
        return choose_window(frames, self.window_frames, self.hop_frames, "frames", "window_frames")

    # --------------------------------------------------------------------------------------------- API
    def _prepare(self, items: Any, fitting: bool = False) -> tuple[list, list[float], list[np.ndarray]]:
        """Records, their own rates and their dB spectrograms ``(C, F, T)`` at the model rate (``fitting``: learn
        the model rate from the records first)."""
        if fitting:
            for attr in ("n_channels_", "sample_rate_"):
                self.__dict__.pop(attr, None)
        records = self._records(items)
        if fitting:
            self.sample_rate_ = self._fit_rate(records)
        data, rates = self._conform(records)
        return records, rates, self._power_db(data, self.sample_rate_)

    def _fit_db(self, db: list[np.ndarray]) -> None:
        self._window_hop([d.shape[-1] for d in db])
        stacked = np.concatenate(db, axis=-1)  # (C, F, all frames)
        channels, bins = stacked.shape[:2]
        center, scale = robust_center_scale(stacked.reshape(channels * bins, -1))
        self.center_, self.scale_ = center.reshape(channels, bins), scale.reshape(channels, bins)
        self.frequencies_ = self._frequencies(self.sample_rate_)[0]
        self.n_channels_ = int(channels)

    def fit(self, items: Any) -> SpectrogramAdapter:
        """Learn the model rate, the frequency axis and each (channel, frequency) bin's median / IQR."""
        self._fit_db(self._prepare(items, fitting=True)[2])
        return self

    def fit_to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        """``fit(items)`` then ``to_tensor(items)``, computing the spectrograms once."""
        prepared = self._prepare(items, fitting=True)
        self._fit_db(prepared[2])
        return self._tensor(*prepared)

    def spectrogram(self, items: Any) -> list[np.ndarray]:
        """The dB spectrograms ``(C, F, T)`` of ``items``, before normalisation and windowing (fitted adapter)."""
        self._check_fitted()
        data, _ = self._conform(self._records(items))
        return self._power_db(data, self.sample_rate_)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre time (s) of each of ``n_frames`` frames ``(n_frames,)``."""
        self._check_fitted()
        return np.arange(n_frames) * self.hop_length / self.sample_rate_

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        """``items`` → ``(X, layout)``: ``X`` float32 ``(N, C, F, window_frames)``, one row per window."""
        self._check_fitted()
        return self._tensor(*self._prepare(items))

    def _tensor(self, records: list, rates: list[float], db: list[np.ndarray]) -> tuple[np.ndarray, Layout]:
        frames = [d.shape[-1] for d in db]
        window, hop = self._window_hop(frames)
        bins = len(self.frequencies_)
        grids = tuple((bins, t) for t in frames)
        record, offset = plan_windows(grids, (bins, window), (bins, hop))
        x = self._normalise(cut(db, record, offset, (bins, window)))
        info = tuple(
            {"length": int(r.data.shape[-1]), "sample_rate": rate, "frames": t, "source": r.source}
            for r, rate, t in zip(records, rates, frames, strict=True)
        )
        extra = {
            "sample_rate": self.sample_rate_,
            "frequencies": self.frequencies_.copy(),
            "hop_length": int(self.hop_length),
            "win_length": self._win_length(),
            "scale": "linear" if self.n_mels is None else "mel",
        }
        return x.astype(np.float32), Layout(type(self).__name__, record, offset, (bins, window), grids, info, extra)

    def _frame_mask(self, mask: np.ndarray, info: dict, layout: Layout) -> np.ndarray:
        """A time mask on the record's own samples → ``(frames,)``: a frame is marked when a masked sample lies in
        the central half of its analysis window (where the Hann window exceeds one half)."""
        rate, model_rate = info["sample_rate"], layout.extra["sample_rate"]
        centres = np.arange(info["frames"]) * layout.extra["hop_length"] / model_rate
        quarter = layout.extra["win_length"] / model_rate / 4.0
        counts = np.concatenate([[0], np.cumsum(mask)])
        lo = np.clip(np.ceil((centres - quarter) * rate - 1e-9).astype(int), 0, len(mask))
        hi = np.clip(np.floor((centres + quarter) * rate + 1e-9).astype(int) + 1, 0, len(mask))
        return counts[np.maximum(hi, lo)] - counts[lo] > 0

    def masks_to_grid(self, masks: Any, layout: Layout) -> np.ndarray:
        """Masks → bool ``(N, F, window_frames)``. Per record either a spectrogram mask ``(F, frames)`` (used as
        is) or a time mask ``(L,)`` / ``(C, L)`` on the record's own samples (see :meth:`_frame_mask`), which then
        marks every frequency of the marked frames."""
        self._check_layout(layout)

        def read(mask: np.ndarray, i: int) -> np.ndarray:
            info, grid = layout.items[i], layout.grids[i]
            if mask.shape == grid:
                return mask
            if mask.ndim == 2 and mask.shape[-1] == info["length"]:
                mask = mask.any(axis=0)
            if mask.shape != (info["length"],):
                raise ValueError(
                    f"mask {i} has shape {mask.shape}: pass a spectrogram mask {grid} or a time mask of the "
                    f"record's {info['length']} samples"
                )
            return np.broadcast_to(self._frame_mask(mask, info, layout), grid)

        grid_masks = mask_items(masks, layout.n_items, 1, read)
        return cut(grid_masks, layout.record, layout.offset, layout.window).astype(bool)

    def to_signal(self, maps: Any, layout: Layout) -> list[xr.DataArray]:
        """Window maps ``(N, F, window_frames)`` → one ``DataArray`` ``(frequency, time)`` per record: frequency in
        Hz, time (frame centres) in s; attrs give the record's ``sample_rate`` and ``n_samples``."""
        self._check_layout(layout)
        stitched = stitch(check_maps(maps, layout), layout)
        freq = xr.Variable("frequency", layout.extra["frequencies"], attrs={"units": "Hz"})
        out = []
        for m, info in zip(stitched, layout.items, strict=True):
            times = np.arange(info["frames"]) * layout.extra["hop_length"] / layout.extra["sample_rate"]
            attrs = {"sample_rate": info["sample_rate"], "n_samples": info["length"], "scale": layout.extra["scale"]}
            if info.get("source"):
                attrs["source"] = info["source"]
            coords = {"frequency": freq, "time": xr.Variable("time", times, attrs={"units": "s"})}
            out.append(xr.DataArray(m, dims=("frequency", "time"), coords=coords, attrs=attrs, name="anomaly"))
        return out

    def time_curve(self, maps: Any, layout: Layout, reduce: str = "mean") -> list[xr.DataArray]:
        """One anomaly curve per record on the waveform's own samples ``(L,)`` (time in s at its own rate): the
        map reduced over frequency (``"mean"`` or ``"max"``), interpolated linearly between frame centres."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
        out = []
        for spec in self.to_signal(maps, layout):
            frame_curve = getattr(spec, reduce)("frequency").values
            length, rate = spec.attrs["n_samples"], spec.attrs["sample_rate"]
            time = np.arange(length) / rate
            values = np.interp(time, spec["time"].values, frame_curve)
            attrs = {k: v for k, v in spec.attrs.items() if k != "n_samples"}
            coords = {"time": xr.Variable("time", time, attrs={"units": "s"})}
            out.append(xr.DataArray(values, dims=("time",), coords=coords, attrs=attrs, name="anomaly"))
        return out
