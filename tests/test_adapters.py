"""The adapter contract, run over every registered adapter (a custom one registered here included); round trips;
bad input; property tests over random shapes; the docs' CSV adapter."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.base import clone

import adapters
from adapters.base import Layout, cut, overlap_share, plan_windows, stitch
from rddpm_signals import RPCA, RobustDiffusion

HYPOTHESIS = settings(max_examples=25, deadline=None)
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "ADAPTERS.md"


# ------------------------------------------------------------------------------------------------ a custom adapter
class RowAdapter:
    """A from-scratch adapter (no base class) for dict rows ``{"values": (L,), "dt": seconds}`` of one length."""

    def __init__(self, normalise: bool = True):
        self.normalise = normalise

    def _read(self, items: Any) -> tuple[np.ndarray, list[float]]:
        if not items:
            raise ValueError("no rows given (empty input)")
        values = np.stack([np.asarray(row["values"], dtype=float) for row in items])
        if not np.isfinite(values).all():
            raise ValueError("rows contain NaN or infinite values")
        return values, [float(row["dt"]) for row in items]

    def fit(self, items: Any) -> RowAdapter:
        values, _ = self._read(items)
        self.center_ = float(np.median(values))
        q75, q25 = np.percentile(values, [75, 25])
        self.scale_ = float(q75 - q25) / 1.349 or 1.0
        return self

    def to_tensor(self, items: Any) -> tuple[np.ndarray, Layout]:
        if not hasattr(self, "center_"):
            raise ValueError("RowAdapter is not fitted: call fit first")
        values, dts = self._read(items)
        n, length = values.shape
        x = (values - self.center_) / self.scale_ if self.normalise else values
        info = tuple({"dt": d} for d in dts)
        layout = Layout("RowAdapter", np.arange(n), np.zeros((n, 1), int), (length,), ((length,),) * n, info)
        return x[:, None].astype(np.float32), layout

    def masks_to_grid(self, masks: Any, layout: Layout) -> np.ndarray:
        return np.stack([np.asarray(m, dtype=bool) for m in masks])

    def to_signal(self, maps: Any, layout: Layout) -> list[xr.DataArray]:
        maps = np.asarray(maps, dtype=float)
        if maps.shape != (layout.n_samples, *layout.window):
            raise ValueError(f"maps have shape {maps.shape}, expected {(layout.n_samples, *layout.window)}")
        if not np.isfinite(maps).all():
            raise ValueError("maps contain NaN values")
        return [
            xr.DataArray(m, dims=("time",), coords={"time": np.arange(len(m)) * info["dt"]})
            for m, info in zip(maps, layout.items, strict=True)
        ]


# Registered at import, before collection parametrises over adapters.available(); removed after this module.
adapters.register("rows", RowAdapter)


@pytest.fixture(scope="module", autouse=True)
def _unregister_rows():
    yield
    adapters.unregister("rows")


# ------------------------------------------------------------------------------------------------ contract cases
@dataclass
class Case:
    """How to exercise one registered adapter: a fitted-ready instance, items, the grid the output must have."""

    make: Callable[[], Any]
    items: Callable[[np.random.Generator], Any]
    expected_grid: Callable[[Any], list[dict]]
    output_grid: Callable[[Any], list[dict]]
    masks: Callable[[Any, bool], Any]
    with_nan: Callable[[Any], Any]
    empty: Any = ()


def _waveform_items(rng):
    return [(rng.normal(size=(2, n)), 100) for n in (300, 257, 410)]


def _spectrogram_items(rng):
    return [rng.normal(size=n) for n in (4000, 4500, 5000)]


def _image_items(rng):
    return [rng.random((40, 50)), rng.random((33, 47, 3))]


def _xarray_items(rng):
    return xr.DataArray(
        rng.normal(size=(3, 2, 100)),
        dims=("record", "channel", "time"),
        coords={"record": ["r1", "r2", "r3"], "channel": ["a", "b"], "time": 0.5 + np.arange(100) / 10},
        attrs={"units": "t", "press": "P4"},
    )


def _rows_items(rng):
    return [{"values": rng.normal(size=50), "dt": dt} for dt in (0.1, 0.2)]


def _spec_grid(items):
    freqs = adapters.mel_frequencies(16, 0.0, 4000.0)
    return [
        {"frequency": freqs, "time": np.arange(1 + len(x) // 64) * 64 / 8000, "n_samples": len(x), "rate": 8000.0}
        for x in items
    ]


def _with_nan_in_first(items):
    first = np.array(items[0][0] if isinstance(items[0], tuple) else items[0], dtype=float)
    first.flat[3] = np.nan
    rest = list(items[1:])
    return [(first, items[0][1]) if isinstance(items[0], tuple) else first, *rest]


def _xarray_with_nan(da):
    da = da.copy()
    da[0, 0, 5] = np.inf
    return da


def _rows_with_nan(items):
    values = items[0]["values"].copy()
    values[2] = np.nan
    return [{"values": values, "dt": items[0]["dt"]}, *items[1:]]


CASES: dict[str, Case] = {
    "waveform": Case(
        make=lambda: adapters.WaveformAdapter(sample_rate=100, window=64, hop=32),
        items=_waveform_items,
        expected_grid=lambda items: [{"time": np.arange(x.shape[-1]) / r, "rate": float(r)} for x, r in items],
        output_grid=lambda out: [{"time": o["time"].values, "rate": o.attrs["sample_rate"]} for o in out],
        masks=lambda items, v: [np.full(x.shape[-1], v) for x, _ in items],
        with_nan=_with_nan_in_first,
        empty=[],
    ),
    "spectrogram": Case(
        make=lambda: adapters.SpectrogramAdapter(
            sample_rate=8000, n_fft=256, hop_length=64, n_mels=16, window_frames=16, hop_frames=8
        ),
        items=_spectrogram_items,
        expected_grid=_spec_grid,
        output_grid=lambda out: [
            {
                "frequency": o["frequency"].values,
                "time": o["time"].values,
                "n_samples": o.attrs["n_samples"],
                "rate": o.attrs["sample_rate"],
            }
            for o in out
        ],
        masks=lambda items, v: [np.full(len(x), v) for x in items],
        with_nan=_with_nan_in_first,
        empty=[],
    ),
    "image": Case(
        make=lambda: adapters.ImageAdapter(tile=16, stride=8),
        items=_image_items,
        expected_grid=lambda items: [{"y": np.arange(x.shape[0]), "x": np.arange(x.shape[1])} for x in items],
        output_grid=lambda out: [{"y": o["y"].values, "x": o["x"].values} for o in out],
        masks=lambda items, v: [np.full(x.shape[:2], v) for x in items],
        with_nan=_with_nan_in_first,
        empty=[],
    ),
    "xarray": Case(
        make=lambda: adapters.XarrayAdapter(window=32, hop=16),
        items=_xarray_items,
        expected_grid=lambda da: [
            {"record": da["record"].values, "time": da["time"].values, "attrs": da.attrs, "dims": ("record", "time")}
        ],
        output_grid=lambda o: [
            {"record": o["record"].values, "time": o["time"].values, "attrs": o.attrs, "dims": o.dims}
        ],
        masks=lambda da, v: xr.full_like(da.isel(channel=0, drop=True), v, dtype=bool),
        with_nan=_xarray_with_nan,
        empty=xr.DataArray(np.zeros((0, 2, 10)), dims=("record", "channel", "time")),
    ),
    "rows": Case(
        make=RowAdapter,
        items=_rows_items,
        expected_grid=lambda items: [{"time": np.arange(50) * row["dt"]} for row in items],
        output_grid=lambda out: [{"time": o["time"].values} for o in out],
        masks=lambda items, v: [np.full(50, v) for _ in items],
        with_nan=_rows_with_nan,
        empty=[],
    ),
}


def _assert_same_grid(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.keys() == e.keys()
        for key in e:
            if isinstance(e[key], np.ndarray):
                np.testing.assert_array_equal(g[key], e[key], err_msg=key)
            else:
                assert g[key] == e[key], key


def _fitted(name: str) -> tuple[Any, Any, Case]:
    case = CASES[name]
    items = case.items(np.random.default_rng(0))
    return case.make().fit(items), items, case


def test_every_registered_adapter_has_a_contract_case():
    assert {"waveform", "spectrogram", "image", "xarray", "rows"} <= set(adapters.available())
    assert set(adapters.available()) <= set(CASES), "add a Case for each newly registered adapter"


@pytest.mark.parametrize("name", adapters.available())
def test_registry_gives_a_class_that_meets_the_protocol(name):
    cls = adapters.get(name)
    assert isinstance(cls, type)
    assert isinstance(CASES[name].make(), adapters.Adapter)


@pytest.mark.parametrize("name", adapters.available())
def test_to_tensor_contract(name):
    adapter, items, _ = _fitted(name)
    x, layout = adapter.to_tensor(items)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    assert x.ndim in (3, 4) and x.ndim == layout.dims + 2
    assert x.shape[0] == layout.n_samples and x.shape[2:] == layout.window
    assert np.isfinite(x).all()
    x2, _ = adapter.to_tensor(items)
    np.testing.assert_array_equal(x, x2)  # deterministic


@pytest.mark.parametrize("name", adapters.available())
def test_identity_map_round_trip_gives_the_input_grid(name):
    adapter, items, case = _fitted(name)
    x, layout = adapter.to_tensor(items)
    out = adapter.to_signal(x.mean(axis=1), layout)
    got = case.output_grid(out)
    _assert_same_grid(got, case.expected_grid(items))


@pytest.mark.parametrize("name", adapters.available())
def test_masks_follow_the_tensor(name):
    adapter, items, case = _fitted(name)
    x, layout = adapter.to_tensor(items)
    full = adapter.masks_to_grid(case.masks(items, True), layout)
    none = adapter.masks_to_grid(case.masks(items, False), layout)
    assert full.dtype == bool and full.shape == (x.shape[0], *x.shape[2:])
    assert full.all() and not none.any()


@pytest.mark.parametrize("name", adapters.available())
def test_bad_maps_raise(name):
    adapter, items, _ = _fitted(name)
    x, layout = adapter.to_tensor(items)
    maps = x.mean(axis=1)
    with pytest.raises(ValueError, match="shape"):
        adapter.to_signal(maps[:-1], layout)
    maps[0].flat[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        adapter.to_signal(maps, layout)


@pytest.mark.parametrize("name", adapters.available())
def test_nan_and_empty_input_raise(name):
    adapter, items, case = _fitted(name)
    with pytest.raises(ValueError, match="NaN"):
        adapter.to_tensor(case.with_nan(items))
    with pytest.raises(ValueError, match="empty"):
        adapter.to_tensor(case.empty)
    with pytest.raises(ValueError, match="NaN"):
        case.make().fit(case.with_nan(items))


@pytest.mark.parametrize("name", adapters.available())
def test_unfitted_adapter_raises(name):
    case = CASES[name]
    with pytest.raises(ValueError, match="fit"):
        case.make().to_tensor(case.items(np.random.default_rng(0)))


# ------------------------------------------------------------------------------------------------ registry
def test_register_rejects_bad_adapters_and_taken_names():
    with pytest.raises(ValueError, match="lacks"):
        adapters.register("broken", type("Broken", (), {"fit": lambda self, items: self}))
    with pytest.raises(ValueError, match="taken"):
        adapters.register("waveform", RowAdapter)
    with pytest.raises(ValueError, match="class"):
        adapters.register("instance", RowAdapter())
    with pytest.raises(ValueError, match="unknown adapter"):
        adapters.get("no-such-adapter")
    assert "broken" not in adapters.available()


def test_register_as_decorator_and_overwrite():
    try:

        @adapters.register("decorated")
        class Decorated(RowAdapter):
            pass

        assert adapters.get("decorated") is Decorated
        adapters.register("decorated", RowAdapter, overwrite=True)
        assert adapters.get("decorated") is RowAdapter
    finally:
        adapters.unregister("decorated")
    assert "decorated" not in adapters.available()


@pytest.mark.parametrize("name", ["waveform", "spectrogram", "image", "xarray"])
def test_builtin_adapters_are_sklearn_estimators_and_refuse_foreign_layouts(name):
    adapter, items, _ = _fitted(name)
    params = adapter.get_params()
    assert clone(adapter).get_params() == params
    x, layout = adapter.to_tensor(items)
    other = "image" if name != "image" else "waveform"
    foreign = CASES[other].make().fit(CASES[other].items(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="layout comes from"):
        foreign.to_signal(x.mean(axis=1), layout)


# ------------------------------------------------------------------------------------------------ waveform
def test_waveform_values_round_trip_through_overlapping_windows():
    rng = np.random.default_rng(1)
    records = [rng.normal(size=n) for n in (130, 97, 64)]
    adapter = adapters.WaveformAdapter(sample_rate=50, window=32, hop=12, normalise=False).fit(records)
    x, layout = adapter.to_tensor(records)
    out = adapter.to_signal(x[:, 0], layout)
    for o, r in zip(out, records, strict=True):
        np.testing.assert_allclose(o.values, r, rtol=1e-6, atol=1e-6)
        assert o["time"].attrs["units"] == "s"


def test_waveform_batch_array_and_multichannel_stations():
    rng = np.random.default_rng(2)
    strokes = rng.normal(size=(6, 4, 256))  # 6 strokes, 4 press stations as channels
    adapter = adapters.WaveformAdapter(sample_rate=256).fit(strokes)
    x, layout = adapter.to_tensor(strokes)
    assert x.shape == (6, 4, 256) and adapter.center_.shape == (4,)
    out = adapter.to_signal(np.zeros((6, 256)), layout)
    assert len(out) == 6 and out[0]["time"].values[-1] == pytest.approx(255 / 256)
    with pytest.raises(ValueError, match="4"):
        adapter.to_tensor(rng.normal(size=(2, 3, 256)))


def test_waveform_normalisation_is_robust_to_contamination():
    rng = np.random.default_rng(3)
    records = rng.normal(size=(50, 1, 200))
    records[:10] *= 100.0  # 20 % of the records are wild
    adapter = adapters.WaveformAdapter(sample_rate=1).fit(records)
    assert abs(adapter.center_[0]) < 0.2
    assert 0.8 < adapter.scale_[0] < 1.6  # the standard deviation is ~45
    x, _ = adapter.to_tensor(records[10:])
    assert 0.6 < np.percentile(np.abs(x), 50) / 0.6745 < 1.3


def test_waveform_sample_rates_mismatch_and_resampling(tmp_path):
    t = np.arange(400) / 200.0
    slow = np.sin(2 * np.pi * 3 * t)
    fast = np.sin(2 * np.pi * 3 * np.arange(800) / 400.0)
    strict = adapters.WaveformAdapter(sample_rate=200, window=100)
    with pytest.raises(ValueError, match=r"400 Hz.*200 Hz.*resample=True"):
        strict.fit([(slow, 200), (fast, 400)])
    adapter = adapters.WaveformAdapter(sample_rate=200, resample=True, window=100, normalise=False)
    x, layout = adapter.fit_to_tensor([(slow, 200), (fast, 400)])
    assert layout.grids == ((400,), (400,))
    out = adapter.to_signal(x[:, 0], layout)
    assert out[1].sizes["time"] == 800 and out[1].attrs["sample_rate"] == 400.0
    np.testing.assert_array_equal(out[1]["time"].values, np.arange(800) / 400.0)
    assert np.abs(out[1].values[50:-50] - fast[50:-50]).max() < 0.05  # down and up again, a smooth tone survives
    mask = np.zeros(800, bool)
    mask[401] = True  # a one-sample defect survives the downsampling
    grid = adapter.masks_to_grid([np.zeros(400, bool), mask], layout)
    assert grid.sum() >= 1


def test_waveform_audio_files(tmp_path):
    rng = np.random.default_rng(4)
    wav, flac = tmp_path / "a.wav", tmp_path / "b.flac"
    sf.write(wav, 0.1 * rng.normal(size=(3000, 2)), 8000)
    sf.write(flac, 0.1 * rng.normal(size=(2500, 2)), 8000, subtype="PCM_16")
    adapter = adapters.WaveformAdapter(window=1000, hop=500).fit([wav, flac])
    assert adapter.sample_rate_ == 8000 and adapter.n_channels_ == 2
    x, layout = adapter.to_tensor([str(wav), flac])
    out = adapter.to_signal(np.ones((x.shape[0], 1000)), layout)
    assert [o.sizes["time"] for o in out] == [3000, 2500]
    assert out[0].attrs["source"] == str(wav)
    np.testing.assert_allclose(out[0].values, 1.0)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (np.zeros((2, 3, 4, 5)), "must be"),
        ([np.zeros((2, 2, 2))], "shape"),
        ([np.zeros(10), np.zeros(20)], "different lengths"),
        ([np.ones(4000).reshape(2000, 2)], "transpose"),
        ([np.array(["a", "b"])], "numeric"),
        ([np.zeros(0)], "empty"),
        ([np.zeros((1, 100)), np.zeros((2, 100))], "channel counts"),
        ({"a": 1}, "cannot read"),
    ],
)
def test_waveform_bad_input(items, message):
    with pytest.raises(ValueError, match=message):
        adapters.WaveformAdapter(sample_rate=10).fit(items)


def test_waveform_short_record_missing_rate_and_corrupt_file(tmp_path):
    with pytest.raises(ValueError, match="shorter than one window"):
        adapters.WaveformAdapter(sample_rate=10, window=50).fit([np.zeros(100), np.zeros(30)])
    with pytest.raises(ValueError, match="sample_rate"):
        adapters.WaveformAdapter().fit([np.zeros(100)])
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(ValueError, match="could not decode audio"):
        adapters.WaveformAdapter().fit([bad])
    with pytest.raises(ValueError, match="does not exist"):
        adapters.WaveformAdapter().fit([tmp_path / "missing.wav"])


# ------------------------------------------------------------------------------------------------ spectrogram
def test_spectrogram_axes_time_curve_and_normalisation():
    rng = np.random.default_rng(5)
    rate = 8000
    t = np.arange(4096) / rate
    clips = [np.sin(2 * np.pi * 500 * t) + 0.1 * rng.normal(size=t.size) for _ in range(6)]
    adapter = adapters.SpectrogramAdapter(sample_rate=rate, n_fft=256, hop_length=128, n_mels=20)
    x, layout = adapter.fit_to_tensor(clips)
    assert x.shape == (6, 1, 20, 1 + 4096 // 128)
    np.testing.assert_allclose(np.median(x, axis=(0, 3))[0], 0.0, atol=1e-5)  # per-frequency robust centring
    maps = np.zeros(x.shape[:1] + x.shape[2:])
    maps[:, :, 10] = 1.0  # frame 10, centred on 10 * 128 / 8000 = 0.16 s
    curve = adapter.time_curve(maps, layout, reduce="max")[0]
    assert curve.sizes["time"] == 4096 and curve.attrs["sample_rate"] == rate
    assert curve["time"].values[int(np.argmax(curve.values))] == pytest.approx(0.16)
    spec = adapter.to_signal(maps, layout)[0]
    np.testing.assert_allclose(spec["frequency"].values, adapters.mel_frequencies(20, 0.0, 4000.0))
    assert spec["frequency"].attrs["units"] == "Hz"


def test_spectrogram_linear_stft_and_frame_mask_rule():
    rng = np.random.default_rng(6)
    adapter = adapters.SpectrogramAdapter(sample_rate=1000, n_fft=64, hop_length=16, n_mels=None, f_max=250)
    x, layout = adapter.fit_to_tensor([rng.normal(size=512)])
    np.testing.assert_allclose(adapter.frequencies_, np.arange(0, 251, 1000 / 64)[: x.shape[2]])
    mask = np.zeros(512, bool)
    mask[160] = True  # frame centres every 16 samples; the central half of a 64-sample window is ±16 samples
    frames = adapter.masks_to_grid([mask], layout)[0].any(axis=0)
    np.testing.assert_array_equal(np.nonzero(frames)[0], [9, 10, 11])
    spectro_mask = np.zeros(layout.grids[0], bool)
    spectro_mask[3, 7] = True
    assert adapter.masks_to_grid([spectro_mask], layout)[0, 3, 7]


def test_spectrogram_bad_input(tmp_path):
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="fewer than n_fft"):
        adapters.SpectrogramAdapter(sample_rate=8000, n_fft=512).fit([rng.normal(size=300)])
    with pytest.raises(ValueError, match="shorter than one window"):
        adapters.SpectrogramAdapter(sample_rate=8000, n_fft=256, hop_length=64, window_frames=40).fit(
            [rng.normal(size=2000)]
        )
    with pytest.raises(ValueError, match="mel filters"):
        adapters.SpectrogramAdapter(sample_rate=8000, n_fft=64, n_mels=64).fit([rng.normal(size=2000)])
    with pytest.raises(ValueError, match=r"16000 Hz.*8000 Hz"):
        adapters.SpectrogramAdapter(sample_rate=8000, n_fft=256).fit([(rng.normal(size=4000), 16000)])
    with pytest.raises(ValueError, match="f_max"):
        adapters.SpectrogramAdapter(sample_rate=8000, n_fft=256, f_max=6000).fit([rng.normal(size=2000)])
    with pytest.raises(ValueError, match=r"different lengths \(8 … 12 frames\)"):
        adapters.SpectrogramAdapter(sample_rate=8000, n_fft=256).fit([rng.normal(size=2000), rng.normal(size=3000)])


def test_spectrogram_resampled_record_maps_back_to_its_own_samples():
    rng = np.random.default_rng(8)
    adapter = adapters.SpectrogramAdapter(sample_rate=8000, resample=True, n_fft=256, hop_length=64, n_mels=16)
    items = [(rng.normal(size=4000), 8000), (rng.normal(size=8000), 16000)]
    x, layout = adapter.fit_to_tensor(items)
    curves = adapter.time_curve(np.ones(x.shape[:1] + x.shape[2:]), layout)
    assert [c.sizes["time"] for c in curves] == [4000, 8000]
    assert curves[1].attrs["sample_rate"] == 16000.0
    np.testing.assert_array_equal(curves[1]["time"].values, np.arange(8000) / 16000)


# ------------------------------------------------------------------------------------------------ image
def test_image_tiles_round_trip_values_exactly():
    rng = np.random.default_rng(9)
    images = [rng.random((37, 45)), rng.random((20, 33))]
    adapter = adapters.ImageAdapter(tile=(16, 12), stride=(7, 5), normalise=False).fit(images)
    x, layout = adapter.to_tensor(images)
    assert x.shape[1:] == (1, 16, 12)
    for out, img in zip(adapter.to_signal(x[:, 0], layout), images, strict=True):
        np.testing.assert_allclose(out.values, img, rtol=1e-6, atol=1e-6)


def test_image_resize_colour_pil_files_and_masks(tmp_path):
    rng = np.random.default_rng(10)
    rgb = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    path = tmp_path / "part.png"
    Image.fromarray(rgb).save(path)
    grey = Image.fromarray((rng.random((50, 20)) * 255).astype(np.uint8), mode="L")
    adapter = adapters.ImageAdapter(size=(24, 24), color="grey").fit([path, grey])
    x, layout = adapter.to_tensor([path, grey])
    assert x.shape == (2, 1, 24, 24)
    out = adapter.to_signal(np.ones((2, 24, 24)), layout)
    assert out[0].shape == (30, 40) and out[1].shape == (50, 20) and out[0].attrs["source"] == str(path)
    np.testing.assert_allclose(out[0].values, 1.0)
    mask = np.zeros((30, 40), bool)
    mask[5:20, 10:30] = True
    grid = adapter.masks_to_grid([mask, np.zeros((50, 20), bool)], layout)
    assert 0.6 < grid[0].mean() / mask.mean() < 1.4 and not grid[1].any()
    colour = adapters.ImageAdapter(size=16).fit([path, grey])
    assert colour.n_channels_ == 3
    assert colour.to_tensor(grey)[0].shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([np.zeros((3, 4, 5, 6, 7))], "shape"),
        (np.zeros((2, 3, 4, 5, 6)), "must be"),
        ([np.zeros((10, 10)), np.zeros((12, 10))], "different sizes"),
        ([np.zeros((0, 10))], "empty"),
        ([np.full((8, 8), np.inf)], "NaN"),
    ],
)
def test_image_bad_input(items, message):
    with pytest.raises(ValueError, match=message):
        adapters.ImageAdapter().fit(items)


def test_image_small_tile_corrupt_file_and_colour_option(tmp_path):
    with pytest.raises(ValueError, match="smaller than one tile"):
        adapters.ImageAdapter(tile=16).fit([np.zeros((10, 40))])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot an image at all")
    with pytest.raises(ValueError, match="could not decode image"):
        adapters.ImageAdapter().fit([bad])
    with pytest.raises(ValueError, match="color"):
        adapters.ImageAdapter(color="cmyk").fit([np.zeros((8, 8))])


# ------------------------------------------------------------------------------------------------ xarray
def test_xarray_round_trip_keeps_coords_and_attrs_and_netcdf(tmp_path):
    rng = np.random.default_rng(11)
    times = np.datetime64("2024-03-01T06:00") + np.arange(120) * np.timedelta64(10, "ms")
    da = xr.DataArray(
        rng.normal(size=(2, 3, 120)),
        dims=("record", "channel", "time"),
        coords={"record": [7, 9], "channel": ["s1", "s2", "s3"], "time": times, "shift": ("record", ["A", "B"])},
        attrs={"plant": "line 2"},
        name="tonnage",
    )
    path = adapters.write_netcdf(da.to_dataset(), tmp_path / "strokes.nc")
    loaded = adapters.read_netcdf(path, "tonnage")
    xr.testing.assert_identical(loaded, da)
    adapter = adapters.XarrayAdapter(window=40, hop=20).fit(loaded)
    x, layout = adapter.to_tensor(loaded)
    assert x.shape == (2 * 5, 3, 40) and adapter.channels_ == ("s1", "s2", "s3")
    out = adapter.to_signal(x.mean(axis=1), layout)
    expected = da.isel(channel=0, drop=True)
    xr.testing.assert_identical(out.coords.to_dataset(), expected.coords.to_dataset())
    assert out.attrs == da.attrs and out.dims == ("record", "time")
    adapters.write_netcdf(out, tmp_path / "maps.nc")
    xr.testing.assert_allclose(adapters.read_netcdf(tmp_path / "maps.nc", "anomaly"), out)
    assert not list(tmp_path.glob("*.tmp"))


def test_xarray_dataset_images_and_masks():
    rng = np.random.default_rng(12)
    ds = xr.Dataset(
        {name: (("y", "x"), rng.random((20, 30))) for name in ("red", "green")},
        coords={"y": np.arange(20) * 0.5, "x": np.arange(30) * 0.5},
        attrs={"camera": "c1"},
    )
    adapter = adapters.XarrayAdapter(window=(8, 10), hop=(6, 10)).fit(ds)
    x, layout = adapter.to_tensor(ds)
    assert x.shape == (3 * 3, 2, 8, 10)
    out = adapter.to_signal(x.mean(axis=1), layout)
    assert out.dims == ("y", "x") and out.attrs == {"camera": "c1"}
    np.testing.assert_array_equal(out["x"].values, ds["x"].values)
    mask = xr.zeros_like(ds["red"], dtype=bool)
    mask[2:5, 3:7] = True
    assert adapter.masks_to_grid(mask, layout).sum() >= mask.sum()


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (xr.DataArray(np.array([["a", "b"]]), dims=("record", "time")), "numeric"),
        (xr.DataArray(np.zeros((2, 5)), dims=("record", "sample")), "'time'"),
        (xr.DataArray(np.zeros((2, 2, 5)), dims=("record", "sensor", "time")), "sensor"),
        (xr.Dataset(), "no data variables"),
        (np.zeros((2, 5)), "DataArray"),
    ],
)
def test_xarray_bad_input(items, message):
    with pytest.raises(ValueError, match=message):
        adapters.XarrayAdapter().fit(items)


def test_netcdf_bad_files(tmp_path):
    bad = tmp_path / "broken.nc"
    bad.write_bytes(b"CDF\x01 truncated")
    with pytest.raises(ValueError, match="could not read netCDF"):
        adapters.read_netcdf(bad)
    with pytest.raises(ValueError, match="does not exist"):
        adapters.read_netcdf(tmp_path / "missing.nc")


# ------------------------------------------------------------------------------------------------ properties
@HYPOTHESIS
@given(st.data())
def test_windows_cover_and_stitch_back_exactly(data):
    dims = data.draw(st.integers(1, 2))
    grid = tuple(data.draw(st.integers(1, 60)) for _ in range(dims))
    window = tuple(data.draw(st.integers(1, g)) for g in grid)
    hop = tuple(data.draw(st.integers(1, w)) for w in window)
    values = np.random.default_rng(0).normal(size=grid)
    record, offset = plan_windows([grid], window, hop)
    pieces = cut([values], record, offset, window)
    layout = Layout("x", record, offset, window, (grid,))
    np.testing.assert_allclose(stitch(pieces, layout)[0], values)


def test_layouts_say_whether_their_windows_overlap():
    record = np.zeros(1000, dtype=np.float32)
    cut_with = lambda hop: adapters.WaveformAdapter(sample_rate=1, window=128, hop=hop).fit([record])  # noqa: E731
    assert cut_with(32).to_tensor([record])[1].overlapping  # every interior point in four windows
    assert cut_with(64).to_tensor([record])[1].overlapping
    assert not cut_with(128).to_tensor([record])[1].overlapping  # only the flush last window overlaps
    assert not cut_with(None).to_tensor([record])[1].overlapping
    assert not adapters.WaveformAdapter(sample_rate=1).fit([record]).to_tensor([record])[1].overlapping
    # the share itself: windows of 4 every 2 on 10 points cover 0-1 and 8-9 once, 2-7 twice
    rec, off = plan_windows([(10,)], (4,), (2,))
    assert overlap_share([(10,)], rec, off, (4,)) == pytest.approx(6 / 10)
    rec, off = plan_windows([(12, 12)], (4, 4), (4, 2))  # tiles overlapping along one axis only
    assert overlap_share([(12, 12)], rec, off, (4, 4)) == pytest.approx(8 / 12)
    assert Layout("x", rec, off, (4, 4), ((12, 12),)).overlapping


def test_layout_positions_name_each_window_record_and_first_point():
    records = [np.zeros(300, dtype=np.float32), np.zeros(200, dtype=np.float32)]
    x, layout = adapters.WaveformAdapter(sample_rate=1, window=128, hop=32).fit(records).to_tensor(records)
    positions = layout.positions
    assert positions.shape == (len(x), 2) and positions.dtype == np.int64
    assert np.array_equal(positions[:, 0], layout.record) and np.array_equal(positions[:, 1], layout.offset[:, 0])
    rec, off = plan_windows([(12, 12)], (4, 4), (4, 2))
    with pytest.raises(ValueError, match="1D windows"):
        _ = Layout("x", rec, off, (4, 4), ((12, 12),)).positions


def test_layout_fit_keywords_tell_a_detector_only_what_its_fit_takes():
    record = np.zeros(1000, dtype=np.float32)
    _, overlapping = adapters.WaveformAdapter(sample_rate=1, window=128, hop=32).fit([record]).to_tensor([record])
    _, separate = adapters.WaveformAdapter(sample_rate=1, window=128).fit([record]).to_tensor([record])
    told = overlapping.fit_keywords(RobustDiffusion())
    assert set(told) == {"overlapping", "positions"} and told["overlapping"] is True
    assert np.array_equal(told["positions"], overlapping.positions)
    assert set(separate.fit_keywords(RobustDiffusion())) == {"positions"}  # no overlap: only where windows lie
    assert overlapping.fit_keywords(RPCA()) == {}  # a fit without those parameters is told nothing
    rec, off = plan_windows([(12, 12)], (4, 4), (4, 2))
    assert Layout("x", rec, off, (4, 4), ((12, 12),)).fit_keywords(RobustDiffusion()) == {"overlapping": True}


@HYPOTHESIS
@given(
    lengths=st.lists(st.integers(20, 300), min_size=1, max_size=4),
    channels=st.integers(1, 3),
    window=st.integers(1, 20),
    hop_share=st.floats(0.05, 1.0),
)
def test_waveform_round_trip_over_random_lengths(lengths, channels, window, hop_share):
    rng = np.random.default_rng(len(lengths))
    records = [rng.normal(size=(channels, n)) for n in lengths]
    hop = max(1, int(window * hop_share))
    adapter = adapters.WaveformAdapter(sample_rate=10, window=window, hop=hop, normalise=False).fit(records)
    x, layout = adapter.to_tensor(records)
    assert x.shape[1:] == (channels, window)
    out = adapter.to_signal(x[:, 0], layout)
    for o, r in zip(out, records, strict=True):
        np.testing.assert_allclose(o.values, r[0], rtol=1e-6, atol=1e-6)
        assert o.sizes["time"] == r.shape[1]


@HYPOTHESIS
@given(
    sizes=st.lists(st.tuples(st.integers(8, 40), st.integers(8, 40)), min_size=1, max_size=3),
    tile=st.integers(4, 8),
    resize=st.one_of(st.none(), st.tuples(st.integers(8, 24), st.integers(8, 24))),
)
def test_image_round_trip_over_random_sizes(sizes, tile, resize):
    rng = np.random.default_rng(0)
    images = [rng.random(s) for s in sizes]
    adapter = adapters.ImageAdapter(size=resize, tile=tile, stride=max(1, tile - 2), normalise=False).fit(images)
    x, layout = adapter.to_tensor(images)
    out = adapter.to_signal(x[:, 0], layout)
    assert [o.shape for o in out] == [tuple(s) for s in sizes]
    if resize is None:
        for o, img in zip(out, images, strict=True):
            np.testing.assert_allclose(o.values, img, rtol=1e-6, atol=1e-6)


@HYPOTHESIS
@given(lengths=st.lists(st.integers(64, 600), min_size=1, max_size=3), hop=st.sampled_from([16, 32]))
def test_spectrogram_frames_and_curves_over_random_lengths(lengths, hop):
    rng = np.random.default_rng(0)
    clips = [rng.normal(size=n) for n in lengths]
    adapter = adapters.SpectrogramAdapter(sample_rate=1000, n_fft=64, hop_length=hop, n_mels=8, window_frames=2)
    x, layout = adapter.fit_to_tensor(clips)
    maps = np.ones(x.shape[:1] + x.shape[2:])
    assert [o.sizes["time"] for o in adapter.to_signal(maps, layout)] == [1 + n // hop for n in lengths]
    assert [c.sizes["time"] for c in adapter.time_curve(maps, layout)] == lengths


@HYPOTHESIS
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(4, 80)),
    window_share=st.floats(0.05, 1.0),
    hop_share=st.floats(0.05, 1.0),
    drop_record=st.booleans(),
)
def test_xarray_round_trip_over_random_shapes(shape, window_share, hop_share, drop_record):
    import torch

    rng = np.random.default_rng(0)
    da = xr.DataArray(
        rng.normal(size=shape),
        dims=("record", "channel", "time"),
        coords={"time": rng.random(shape[2]).cumsum(), "record": np.arange(shape[0]) * 10},
        attrs={"source": "hypothesis"},
    )
    if drop_record:
        da = da.isel(record=0)
    window = max(1, int(shape[2] * window_share))
    adapter = adapters.XarrayAdapter(window=window, hop=max(1, int(window * hop_share)), normalise=False).fit(da)
    x, layout = adapter.to_tensor(da)
    out = adapter.to_signal(torch.from_numpy(x[:, 0]), layout)  # torch maps are accepted too
    expected = da.isel(channel=0, drop=True)
    xr.testing.assert_allclose(out, expected.rename("anomaly"), rtol=1e-6, atol=1e-6)
    assert out.attrs == da.attrs


@HYPOTHESIS
@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(5, 50)), where=st.integers(0, 10**6))
def test_a_single_nan_anywhere_is_named(shape, where):
    values = np.random.default_rng(0).normal(size=shape)
    values.flat[where % values.size] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        adapters.WaveformAdapter(sample_rate=1).fit(values)
    da = xr.DataArray(values, dims=("record", "channel", "time"))
    with pytest.raises(ValueError, match="NaN"):
        adapters.XarrayAdapter().fit(da)


# ------------------------------------------------------------------------------------------------ docs example
def _docs_snippet(doc: Path) -> str:
    text = doc.read_text()
    section = text[text.index("## Example: a vibration CSV export") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("doc", [DOCS, ROOT / "README.md"], ids=["ADAPTERS.md", "README.md"])
def test_docs_csv_adapter_is_short_and_works(doc, tmp_path):
    code = _docs_snippet(doc)
    assert len(code.strip().splitlines()) < 30
    namespace: dict = {}
    try:
        exec(compile(code, str(doc), "exec"), namespace)  # noqa: S102 - our own documentation
        assert "vibration_csv" in adapters.available()
        rng = np.random.default_rng(13)
        files = []
        for i, n in enumerate((900, 1200)):
            t = np.arange(n) / 2000.0
            table = np.column_stack([t, *(np.sin(2 * np.pi * 50 * t) + 0.1 * rng.normal(size=(3, n)))])
            path = tmp_path / f"accel_{i}.csv"
            np.savetxt(path, table, delimiter=",", header="time_s,ax,ay,az", comments="")
            files.append(path)
        adapter = adapters.get("vibration_csv")(window=256, hop=128).fit(files)
        assert adapter.sample_rate_ == 2000 and adapter.n_channels_ == 3
        x, layout = adapter.to_tensor(files)
        out = adapter.to_signal(x.mean(axis=1) ** 2, layout)
        assert [o.sizes["time"] for o in out] == [900, 1200]
        assert out[1].attrs["source"] == str(files[1])
    finally:
        adapters.unregister("vibration_csv")
