"""Modality adapters: bring waveforms, spectrograms, images and labelled arrays to a detector, and its anomaly maps
back onto the data's own axes (time in s, frequency in Hz, pixels, xarray coordinates).

>>> import adapters
>>> ad = adapters.WaveformAdapter(sample_rate=256, window=64, hop=32).fit(train_records)  # doctest: +SKIP
>>> X, layout = ad.to_tensor(records)                      # float32 (N, C, 64) windows          # doctest: +SKIP
>>> maps = ad.to_signal(detector.anomaly_map(X), layout)   # one DataArray per record, time in s  # doctest: +SKIP

Register an adapter for a new data type with ``adapters.register("name", MyAdapter)``; ``adapters.get("name")``
returns the class. See docs/ADAPTERS.md.
"""

from .base import Adapter, BaseAdapter, Layout, available, get, register, robust_center_scale, unregister
from .image import ImageAdapter, read_image
from .spectrogram import SpectrogramAdapter, mel_frequencies
from .waveform import AudioInput, Record, WaveformAdapter, read_audio
from .xarray_io import XarrayAdapter, read_netcdf, write_netcdf

register("waveform", WaveformAdapter)
register("spectrogram", SpectrogramAdapter)
register("image", ImageAdapter)
register("xarray", XarrayAdapter)

__all__ = [
    "Adapter",
    "AudioInput",
    "BaseAdapter",
    "ImageAdapter",
    "Layout",
    "Record",
    "SpectrogramAdapter",
    "WaveformAdapter",
    "XarrayAdapter",
    "available",
    "get",
    "mel_frequencies",
    "read_audio",
    "read_image",
    "read_netcdf",
    "register",
    "robust_center_scale",
    "unregister",
    "write_netcdf",
]
