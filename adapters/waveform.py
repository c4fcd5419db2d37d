"""Waveforms — sensor records and audio — into ``(N, C, L)`` windows, and window maps back onto a time axis.

Items (``to_tensor`` / ``fit`` take any of these):

- a numpy array or torch tensor: ``(L,)`` one record, ``(N, L)`` N single-channel records, ``(N, C, L)`` N records
  of C channels (e.g. four press stations as channels);
- a list of records of different lengths, each ``(L,)`` or ``(C, L)``;
- a WAV / FLAC / OGG file path (read with soundfile; its sample rate comes with it);
- ``(array, sample_rate)`` pairs or :class:`Record` objects, for arrays that carry their own rate.

Records sampled at another rate than the adapter's are resampled with torchaudio when ``resample=True``; otherwise
they raise a ValueError that names both rates. With ``window`` set, records are cut into windows of ``window``
samples every ``hop`` samples (the last window is flush with the end of the record), and ``to_signal`` averages
overlapping window maps back into one map per record, on the record's original time axis (seconds, at its original
sample rate).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .base import (
    BaseAdapter,
    Layout,
    check_maps,
    check_values,
    choose_window,
    cut,
    mask_items,
    plan_windows,
    robust_center_scale,
    stitch,
)

__all__ = ["Record", "WaveformAdapter", "AudioInput", "read_audio"]


@dataclass
class Record:
    """One record: ``data`` ``(C, L)`` (or ``(L,)``), its ``sample_rate`` in Hz (``None``: the adapter's),
    where it came from (``source``, kept in the output map's attrs) and its channel names (``channels``, e.g. a
    CSV's column headers; ``None`` when unnamed)."""

    data: Any
    sample_rate: float | None = None
    source: str | None = None
    channels: tuple[str, ...] | None = None


#: soundfile subtypes whose samples float32 holds exactly (read as float32: half the memory of float64, the same
#: values); any other subtype (32-bit PCM, 64-bit float, …) is read as float64
_FLOAT32_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "FLOAT", "ULAW", "ALAW", "VORBIS"})


def read_audio(path: str | os.PathLike) -> Record:
    """Read an audio file with soundfile → :class:`Record` ``(C, L)`` at the file's sample rate: float32 when the
    file's samples are exactly float32 values (8–24-bit PCM, 32-bit float, µ-law / A-law, Vorbis; see
    :data:`_FLOAT32_SUBTYPES`), else float64. Adapters compute in float64 either way."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"audio file {str(path)!r} does not exist: check the path")
    try:
        with sf.SoundFile(str(path)) as f:
            dtype = "float32" if f.subtype in _FLOAT32_SUBTYPES else "float64"
            data, rate = f.read(dtype=dtype, always_2d=True), f.samplerate
    except (RuntimeError, sf.LibsndfileError, ValueError, TypeError) as err:
        raise ValueError(
            f"could not decode audio file {str(path)!r} ({err}): pass a WAV/FLAC/OGG file that soundfile can read"
        ) from None
    return Record(data.T, sample_rate=float(rate), source=str(path))


def _checked(values: Any, what: str, keep_float32: bool) -> np.ndarray:
    """:func:`check_values` (float64), or a finite, non-empty float32 array as it is when ``keep_float32``."""
    if keep_float32 and isinstance(values, np.ndarray) and values.dtype == np.float32 and values.size:
        if np.isfinite(values).all():
            return values
    return check_values(values, what)


def _is_rate(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


class AudioInput(BaseAdapter):
    """Reading records and conforming their sample rate — shared by the waveform and spectrogram adapters.

    Subclasses have ``sample_rate`` and ``resample`` parameters. Override :meth:`read_item` to accept a new kind
    of record (a CSV export, a database row): it returns a :class:`Record`.
    """

    sample_rate: float | None
    resample: bool

    def read_item(self, item: Any) -> Record:
        """One item → :class:`Record`: a file path, a :class:`Record`, an ``(array, rate)`` pair or an array.

        Paths: audio files (WAV / FLAC / OGG), CSV files (a header, a time column, one column per channel) and
        NPY / NPZ arrays (an NPY file takes the adapter's ``sample_rate``), read by
        :func:`rddpm_signals.files.read_record`."""
        if isinstance(item, Record):
            return item
        if isinstance(item, str | os.PathLike):
            if Path(item).suffix.lower() in (".csv", ".npy", ".npz"):
                from rddpm_signals.files import read_record

                return read_record(item, sample_rate=self.sample_rate)
            return read_audio(item)
        if isinstance(item, tuple) and len(item) == 2 and _is_rate(item[1]):
            return Record(item[0], sample_rate=float(item[1]))
        return Record(item)

    def _split_items(self, items: Any) -> list[Any]:
        if hasattr(items, "detach"):
            items = items.detach().cpu().numpy()
        if isinstance(items, np.ndarray):
            if items.ndim == 1:
                return [items]
            if items.ndim in (2, 3):
                return list(items)
            raise ValueError(f"a waveform array must be (L,), (N, L) or (N, C, L), got shape {items.shape}: reshape it")
        if isinstance(items, str | os.PathLike | Record):
            return [items]
        if isinstance(items, tuple) and len(items) == 2 and _is_rate(items[1]):
            return [items]
        if isinstance(items, list | tuple):
            return list(items)
        raise ValueError(
            f"cannot read waveforms from a {type(items).__name__}: pass an array, a list of records or file paths"
        )

    def _records(self, items: Any, keep_float32: bool = False) -> list[Record]:
        """Read, check and return every record of ``items`` with ``data`` float64 ``(C, L)`` (``keep_float32``:
        float32 data stays float32, without a copy — for callers that cast each piece to float64 themselves)."""
        parts = self._split_items(items)
        if not parts:
            raise ValueError("no records given (empty input): pass at least one record")
        records = []
        for i, part in enumerate(parts):
            if hasattr(part, "detach"):
                part = part.detach().cpu().numpy()
            rec = self.read_item(part)
            data = _checked(rec.data, f"record {i}", keep_float32)
            if data.ndim == 1:
                data = data[None]
            if data.ndim != 2:
                raise ValueError(f"record {i} has shape {data.shape}: pass (L,) or (channels, L) per record")
            if data.shape[0] > data.shape[1]:
                raise ValueError(
                    f"record {i} has shape {data.shape}, more channels than samples: pass (channels, samples) — "
                    "transpose it"
                )
            if rec.sample_rate is not None and not (_is_rate(rec.sample_rate) and 0 < rec.sample_rate < np.inf):
                raise ValueError(f"record {i} has sample rate {rec.sample_rate}: pass a positive rate in Hz")
            records.append(Record(data, rec.sample_rate, rec.source))
        channels = {r.data.shape[0] for r in records}
        if len(channels) > 1:
            raise ValueError(f"records have different channel counts {sorted(channels)}: pass one channel layout")
        if hasattr(self, "n_channels_") and records[0].data.shape[0] != self.n_channels_:
            raise ValueError(
                f"records have {records[0].data.shape[0]} channels but the adapter was fitted on "
                f"{self.n_channels_}: pass records with the fitted channel layout"
            )
        return records

    def _fit_rate(self, records: list[Record]) -> float:
        """The model's sample rate: the ``sample_rate`` parameter, else the first record's own rate."""
        if self.sample_rate is not None:
            if not _is_rate(self.sample_rate) or not self.sample_rate > 0 or not np.isfinite(self.sample_rate):
                raise ValueError(f"sample_rate must be a positive number of Hz, got {self.sample_rate!r}")
            return float(self.sample_rate)
        rates = [r.sample_rate for r in records if r.sample_rate is not None]
        if not rates:
            raise ValueError(
                "none of the records carries a sample rate: pass sample_rate=... (Hz) to the adapter, or "
                "(array, rate) pairs"
            )
        return float(rates[0])

    def _conform(self, records: list[Record]) -> tuple[list[np.ndarray], list[float]]:
        """Each record at the model rate ``sample_rate_`` → arrays ``(C, L')``, and each record's own rate."""
        target = self.sample_rate_
        out, rates = [], []
        for i, rec in enumerate(records):
            rate = target if rec.sample_rate is None else float(rec.sample_rate)
            if abs(rate - target) <= 1e-9 * target:
                out.append(rec.data)
            elif not self.resample:
                raise ValueError(
                    f"record {i} is sampled at {rate:g} Hz but the adapter works at {target:g} Hz: pass "
                    "resample=True or resample the record first"
                )
            else:
                out.append(_resample(rec.data, rate, target, i))
            rates.append(rate)
        return out, rates


def _resample(data: np.ndarray, rate: float, target: float, index: int) -> np.ndarray:
    import torch
    import torchaudio

    if rate != round(rate) or target != round(target):
        raise ValueError(
            f"record {index}: resampling {rate:g} Hz → {target:g} Hz needs whole-number rates: round the rates"
        )
    data = np.asarray(data, dtype=np.float64)  # a float32 record is resampled in float64, as a float64 one is
    return (
        torchaudio.functional.resample(torch.from_numpy(data), int(round(rate)), int(round(target)))
        .numpy()
        .astype(np.float64)
    )


def _time_axis(length: int, rate: float) -> np.ndarray:
    return np.arange(length) / rate


def _to_own_times(values: np.ndarray, model_rate: float, length: int, rate: float) -> np.ndarray:
    """A map ``(..., L')`` on the model's time grid → ``(..., length)`` on the record's own samples (linear)."""
    if values.shape[-1] == length and abs(rate - model_rate) <= 1e-9 * model_rate:
        return values
    src, dst = _time_axis(values.shape[-1], model_rate), _time_axis(length, rate)
    flat = values.reshape(-1, values.shape[-1])
    return np.stack([np.interp(dst, src, row) for row in flat]).reshape(values.shape[:-1] + (length,))


def _mask_to_model_times(mask: np.ndarray, rate: float, model_rate: float, model_length: int) -> np.ndarray:
    """A time mask on the record's own samples → the model's samples; nearest neighbour both ways, so a
    one-sample defect survives downsampling and a short one stays contiguous when upsampling."""
    if mask.shape[-1] == model_length and abs(rate - model_rate) <= 1e-9 * model_rate:
        return mask
    out = np.zeros(model_length, dtype=bool)
    hits = np.nonzero(mask)[0]
    out[np.clip(np.round(hits / rate * model_rate).astype(int), 0, model_length - 1)] = True
    nearest = np.clip(np.round(np.arange(model_length) / model_rate * rate).astype(int), 0, mask.shape[-1] - 1)
    return out | mask[nearest]


class WaveformAdapter(AudioInput):
    """Records of any length → ``(N, C, window)`` float32 windows; window maps → one map per record in seconds.

    Parameters
    ----------
    sample_rate: the model's rate in Hz (``None``: the first record's own rate; plain arrays then need it).
    resample: resample records at another rate with torchaudio (else such a record is a ValueError).
    window: samples per model window (``None``: one window per record — all records must then share a length).
    hop: samples between window starts (``None``: ``window``, no overlap).
    normalise: subtract each channel's median and divide by its IQR / 1.349, learned in ``fit``.

    Fitted attributes: ``sample_rate_``, ``n_channels_``, ``center_`` / ``scale_`` ``(C,)``.
    ``to_signal`` returns a list with one ``xarray.DataArray`` per record, dims ``("time",)``, ``time`` in
    seconds at the record's own sample rate (attrs ``sample_rate``, ``source``).
    """

    name = "waveform"

    def __init__(
        self,
        sample_rate: float | None = None,
        resample: bool = False,
        window: int | None = None,
        hop: int | None = None,
        normalise: bool = True,
    ):
        self.sample_rate = sample_rate
        self.resample = resample
        self.window = window
        self.hop = hop
        self.normalise = normalise

    def _window_hop(self, lengths: list[int]) -> tuple[int, int]:
        return choose_window(lengths, self.window, self.hop, "samples", "window")

    def fit(self, items: Any) -> WaveformAdapter:
        """Learn the model rate, the channel count and each channel's median / IQR from ``items``."""
        for attr in ("n_channels_", "sample_rate_"):
            self.__dict__.pop(attr, None)
        records = self._records(items)
        self.sample_rate_ = self._fit_rate(records)
        data, _ = self._conform(records)
        self._window_hop([d.shape[-1] for d in data])
        self.center_, self.scale_ = robust_center_scale(np.concatenate(data, axis=1))
        self.n_channels_ = int(data[0].shape[0])
        return self

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        """``items`` → ``(X, layout)``: ``X`` float32 ``(N, C, window)``, one row per window."""
        self._check_fitted()
        records = self._records(items)
        data, rates = self._conform(records)
        lengths = [d.shape[-1] for d in data]
        window, hop = self._window_hop(lengths)
        record, offset = plan_windows([(n,) for n in lengths], (window,), (hop,))
        x = self._normalise(cut(data, record, offset, (window,)))
        info = tuple(
            {"length": int(r.data.shape[-1]), "sample_rate": rate, "source": r.source}
            for r, rate in zip(records, rates, strict=True)
        )
        layout = Layout(
            type(self).__name__,
            record,
            offset,
            (window,),
            tuple((n,) for n in lengths),
            info,
            {"sample_rate": self.sample_rate_},
        )
        return x.astype(np.float32), layout

    def masks_to_grid(self, masks: Any, layout: Layout) -> np.ndarray:
        """Per-record masks ``(L,)`` or ``(C, L)`` on the records' own samples → bool ``(N, window)``."""
        self._check_layout(layout)

        def read(mask: np.ndarray, i: int) -> np.ndarray:
            own = layout.items[i]["length"]
            if mask.ndim == 2:
                mask = mask.any(axis=0)
            if mask.shape != (own,):
                raise ValueError(f"mask {i} has shape {mask.shape} but record {i} has {own} samples")
            rate = layout.items[i]["sample_rate"]
            return _mask_to_model_times(mask, rate, layout.extra["sample_rate"], layout.grids[i][0])

        grid = mask_items(masks, layout.n_items, 1, read)
        return cut(grid, layout.record, layout.offset, layout.window).astype(bool)

    def to_signal(self, maps: Any, layout: Layout) -> list[xr.DataArray]:
        """Window maps ``(N, window)`` → one ``DataArray`` per record on its own time axis (overlaps averaged)."""
        self._check_layout(layout)
        stitched = stitch(check_maps(maps, layout), layout)
        out = []
        for m, info in zip(stitched, layout.items, strict=True):
            length, rate = info["length"], info["sample_rate"]
            values = _to_own_times(m, layout.extra["sample_rate"], length, rate)
            attrs = {"sample_rate": rate}
            if info.get("source"):
                attrs["source"] = info["source"]
            time = xr.Variable("time", _time_axis(length, rate), attrs={"units": "s"})
            out.append(xr.DataArray(values, dims=("time",), coords={"time": time}, attrs=attrs, name="anomaly"))
        return out
