"""From files to flagged defects: an adapter, a detector and label-free thresholds in one model.

:class:`AnomalyModel` is what ``rddpm-signals fit`` saves and ``rddpm-signals score`` loads::

    model = AnomalyModel(adapters.WaveformAdapter(), make_detector("rddpm", dims=1)).fit(train_items)
    for rec in model.score_items(items):      # one RecordResult per item: map on its own axes, score, segments
        ...
    model.save("press.model")                 # adapter state + detector + thresholds + calibration scores

Scores and thresholds
    The detector scores each model sample (window, tile, clip) from its map (``score_maps``: by default a high
    quantile of the map, ``score_quantile``); a record's score is the largest of its samples' scores (for a record
    of one window, the detector's own score). ``fit`` holds a ``calibration`` share of the training items out of the
    detector's fit and scores them, and the thresholds come from those values alone — no labels: ``"mad"`` (the
    default) puts the threshold at median + k · 1.4826 · MAD of the calibration scores; ``"quantile"`` at their
    (1 − contamination) quantile (a prior on the share of defective samples). The map threshold is the same value
    (``map_k`` sets it apart, at a MAD multiple of the calibration map values), so a segment is where the map
    exceeds what normal records' scores stay under. Both can be overridden when scoring. A record is *flagged* when
    its score is above the score threshold; its *segments* are the runs (1D) or connected regions (2D) of its map
    above the map threshold.

Long records
    A waveform record longer than ``chunk_windows`` windows is scored chunk by chunk
    (:func:`rddpm_signals.streaming.stream_map`): memory grows with the record's length, not with its number of
    windows, and the stitched map is the one the whole-record path gives.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from . import thresholds as _thr
from ._io import atomic_torch_save
from .base import quantile_scores
from .persistence import adapter_from_state, adapter_state, detector_from_bytes, detector_to_bytes
from .segments import Segment, find_segments

__all__ = ["AnomalyModel", "Thresholds", "RecordResult", "THRESHOLD_METHODS", "MODEL_FORMAT", "DEFAULT_K"]

MODEL_FORMAT = "rddpm-signals-model/1"
THRESHOLD_METHODS = ("mad", "quantile")
DEFAULT_K = _thr.DEFAULT_K
_N_QUANTILES = 1001  # calibration map values are kept as this many evenly spaced quantiles


@dataclass(frozen=True)
class Thresholds:
    """Label-free thresholds: ``score`` for records, ``map`` for map points; how they were chosen."""

    method: str
    score: float
    map: float
    k: float | None = None
    contamination: float | None = None
    map_k: float | None = None

    def describe(self) -> str:
        if self.map_k is None:
            k_text = f"median + {self.k:g}·MAD of the calibration scores" if self.k is not None else ""
        else:
            k_text = f"median + {self.k:g}·MAD of the calibration scores / {self.map_k:g}·MAD of the map values"
        how = {"mad": k_text, "quantile": f"{1 - (self.contamination or 0):.3g} quantile of the calibration scores"}
        return f"score > {self.score:.4g}, map > {self.map:.4g} ({how.get(self.method, self.method)})"


def _mad_threshold(values: np.ndarray, k: float) -> float:
    """median + k·1.4826·MAD; when more than half of the values are equal (the sparse maps of RPCA and SSD are
    mostly exactly 0) the MAD is 0, and the statistic is taken over the values above that common value instead."""
    values = np.asarray(values, dtype=np.float64).ravel()
    median = float(np.median(values))
    if np.median(np.abs(values - median)) == 0.0 and np.any(values > median):
        return _thr.mad_threshold(values[values > median], k)
    return _thr.mad_threshold(values, k)


def choose_thresholds(
    scores: np.ndarray,
    map_values: np.ndarray,
    method: str = "mad",
    k: float = DEFAULT_K,
    contamination: float | None = None,
    map_k: float | None = None,
) -> Thresholds:
    """Thresholds from calibration scores ``(N,)`` and (a sample of) their map values (any shape).

    By default the map threshold is the score threshold itself: a record's score is a high quantile of its map, so
    a segment is where the map exceeds the level that normal records' scores stay under. Pooled map values are no
    guide to that level — most points of any record, defective or not, are near zero, so a MAD multiple of them
    sits inside normal records' peaks (on forging at k = 3 it more than halved segment precision; docs/RESULTS.md
    §9). ``map_k`` sets the map threshold apart instead, at median + ``map_k``·MAD of the map values."""
    if method == "mad":
        score = _mad_threshold(scores, k)
        if map_k is None:
            return Thresholds("mad", score, score, k=float(k))
        return Thresholds("mad", score, _mad_threshold(map_values, map_k), k=float(k), map_k=float(map_k))
    if method == "quantile":
        if contamination is None:
            raise ValueError("the quantile threshold needs a contamination prior: pass --contamination (e.g. 0.05)")
        value = _thr.contamination_threshold(scores, contamination)
        return Thresholds("quantile", value, value, contamination=float(contamination))
    raise ValueError(f"unknown threshold method {method!r}: use one of {THRESHOLD_METHODS}")


@dataclass
class RecordResult:
    """One scored record: its map on its own axes, what the model saw, its score, flag and segments."""

    source: str
    anomaly: xr.DataArray
    signal: xr.DataArray | None
    score: float
    flagged: bool
    segments: list[Segment] = field(default_factory=list)

    @property
    def peak(self) -> float:
        return float(self.anomaly.max())


def _modality(adapter: Any) -> str:
    import adapters

    for name, cls in (
        ("spectrogram", adapters.SpectrogramAdapter),
        ("waveform", adapters.WaveformAdapter),
        ("image", adapters.ImageAdapter),
        ("xarray", adapters.XarrayAdapter),
    ):
        if isinstance(adapter, cls):
            return name
    return "xarray"


def _signal(adapter: Any, item: Any, anomaly: xr.DataArray) -> xr.DataArray | None:
    """What the model saw of ``item``, on ``anomaly``'s axes with a leading ``channel`` dim (None if unknown)."""
    import adapters

    if isinstance(adapter, adapters.SpectrogramAdapter):
        spec = adapter.spectrogram([item])[0]  # (C, F, T) dB
        return xr.DataArray(
            spec.astype(np.float32),
            dims=("channel", *anomaly.dims),
            coords=anomaly.coords,
            attrs={"units": "dB"},
        )
    if isinstance(adapter, adapters.WaveformAdapter):
        rec = adapter.read_item(item)
        data = np.asarray(rec.data, dtype=np.float32)
        data = data[None] if data.ndim == 1 else data
        # built from the map so that its time index is shared, not rebuilt (an hour at 10 kHz is 288 MB)
        signal = anomaly.expand_dims(channel=data.shape[0]).copy(deep=False, data=data)
        signal.attrs, signal.name = {}, "signal"
        return signal.assign_coords(channel=list(rec.channels)) if rec.channels else signal
    if isinstance(adapter, adapters.ImageAdapter):
        pixels, _ = adapter.read_item(item, 0)
        if pixels.ndim == 2:
            pixels = pixels[None]
        if pixels.shape[1:] != anomaly.shape:
            return None
        return xr.DataArray(pixels.astype(np.float32), dims=("channel", "y", "x"), coords=anomaly.coords)
    if isinstance(adapter, adapters.XarrayAdapter):
        return _xarray_signal(adapter, item, anomaly)
    return None


def _xarray_signal(adapter: Any, item: Any, anomaly: xr.DataArray) -> xr.DataArray | None:
    """The labelled input on the map's dims and coordinates, with a leading ``channel`` dim (None if they differ)."""
    da = adapter._as_dataarray(item)
    if "channel" not in da.dims:
        da = da.expand_dims("channel")
    if set(da.dims) - {"channel"} != set(anomaly.dims):
        return None
    da = da.transpose("channel", *anomaly.dims)
    if da.shape[1:] != anomaly.shape:
        return None
    return xr.DataArray(
        da.values.astype(np.float32),
        dims=da.dims,
        coords={**anomaly.coords, "channel": da["channel"].values if "channel" in da.coords else np.arange(len(da))},
        attrs={"units": da.attrs["units"]} if "units" in da.attrs else {},
        name="signal",
    )


def _score_maps(detector: Any, maps: np.ndarray) -> np.ndarray:
    """The detector's per-sample scores of maps it made; a high quantile for a detector without ``score_maps``."""
    if hasattr(detector, "score_maps"):
        return np.asarray(detector.score_maps(maps), dtype=np.float64)
    return quantile_scores(maps, getattr(detector, "score_quantile", 0.99))


def _one_xarray(adapter: Any, items: Any) -> Any:
    """The xarray adapter takes one labelled array: several files are stacked along ``record``."""
    import adapters

    if not isinstance(adapter, adapters.XarrayAdapter) or not isinstance(items, list | tuple):
        return items
    if len(items) == 1:
        return items[0]
    try:
        return xr.concat(items, dim="record")
    except (ValueError, TypeError) as err:
        raise ValueError(f"the netCDF files do not stack along 'record' ({err}): give them the same dims") from None


def _item_source(item: Any, index: int) -> str:
    if isinstance(item, str | os.PathLike):
        return str(item)
    source = getattr(item, "source", None) or getattr(item, "attrs", {}).get("source")
    return str(source) if source else f"item {index}"


class AnomalyModel:
    """An adapter, a detector and label-free thresholds that go from raw items to flagged records.

    Parameters
    ----------
    adapter: an adapter (``adapters.WaveformAdapter(...)``, …); a copy is fitted by :meth:`fit`.
    detector: a detector (a copy is fitted), or a method name of :mod:`rddpm_signals.methods` (``"rddpm"``,
        ``"ddpm"``, ``"rpca"``, ``"rddpm:train_steps=500"``, …), built with ``dims`` taken from the adapter's tensor
        and ``detector_params`` on top.
    threshold: ``"mad"`` (median + k·MAD of training values) or ``"quantile"`` (contamination prior).
    k: the MAD multiple; map_k: the map threshold's own MAD multiple of the calibration map values (default: none,
        the map threshold is the score threshold); contamination: the prior share of defective samples for
        ``"quantile"``.
    method: a label for the detector's configuration (kept in the model file and the results); defaults to
        ``detector`` when that is a method name.

    calibration: the share of the training items held out of the detector's fit; the thresholds come from their
        scores (:mod:`rddpm_signals.calibration`; 0 = from the training samples themselves, in-sample).

    Fitted attributes: ``adapter_``, ``detector_``, ``thresholds_`` (:class:`Thresholds`),
    ``calibration_scores_`` ``(M,)`` (one per held-out model sample), ``calibration_map_quantiles_`` ``(1001,)``,
    ``n_fit_samples_`` (model samples the detector was fitted on), ``in_sample_`` (True when nothing could be held
    out), ``modality_``.
    """

    def __init__(
        self,
        adapter: Any,
        detector: Any = "rddpm",
        threshold: str = "mad",
        k: float = DEFAULT_K,
        contamination: float | None = None,
        method: str = "",
        detector_params: dict | None = None,
        map_k: float | None = None,
        calibration: float = 0.2,
    ):
        self.adapter = adapter
        self.detector = detector
        self.threshold = threshold
        self.k = k
        self.contamination = contamination
        self.method = method
        self.detector_params = detector_params
        self.map_k = map_k
        self.calibration = calibration

    # ------------------------------------------------------------------------------------------------- fitting
    def _new_detector(self, dims: int) -> Any:
        from .methods import make_detector

        if isinstance(self.detector, str):
            return make_detector(self.detector, dims=dims, **(self.detector_params or {}))
        detector = copy.deepcopy(self.detector)
        if self.detector_params:
            detector.set_params(**self.detector_params)
        return detector

    def fit(self, items: Any) -> AnomalyModel:
        """Fit a copy of the adapter on ``items`` (unlabelled, possibly contaminated) and a copy of the detector on
        all but a ``calibration`` share of them, then choose the thresholds from the held-out items' scores
        (:mod:`rddpm_signals.calibration`). On any error the model is left as it was."""
        from .calibration import calibration_split

        if self.threshold not in THRESHOLD_METHODS:
            raise ValueError(f"unknown threshold method {self.threshold!r}: use one of {THRESHOLD_METHODS}")
        adapter = copy.deepcopy(self.adapter)
        items = _one_xarray(adapter, items)
        X, layout = adapter.fit(items).to_tensor(items)
        offset = np.asarray(layout.offset).reshape(len(X), -1)[:, 0]
        fit_idx, cal_idx = calibration_split(
            np.asarray(layout.record), offset, int(np.ravel(layout.window)[0]), float(self.calibration)
        )
        detector = self._new_detector(X.ndim - 2)
        fit_layout = replace(
            layout, record=np.asarray(layout.record)[fit_idx], offset=np.asarray(layout.offset)[fit_idx]
        )
        # windows cut with overlap: a detector that can use the fact is told (RobustDiffusion's "auto" recipe)
        detector.fit(X[fit_idx] if len(fit_idx) < len(X) else X, **fit_layout.fit_keywords(detector))
        maps = np.asarray(detector.anomaly_map(X[cal_idx] if len(cal_idx) < len(X) else X), dtype=np.float64)
        scores = _score_maps(detector, maps)
        quantiles = np.quantile(maps, np.linspace(0.0, 1.0, _N_QUANTILES))
        thresholds = choose_thresholds(scores, quantiles, self.threshold, self.k, self.contamination, self.map_k)
        self.adapter_, self.detector_ = adapter, detector
        self.calibration_scores_, self.calibration_map_quantiles_ = scores, quantiles
        self.n_fit_samples_ = len(fit_idx)
        self.in_sample_ = len(fit_idx) == len(cal_idx) == len(X)
        self.thresholds_ = thresholds
        self.modality_ = _modality(adapter)
        return self

    @property
    def method_label(self) -> str:
        """``method``, else the method name the detector was given as, else the detector's class name."""
        if self.method:
            return self.method
        if isinstance(self.detector, str):
            return self.detector
        return type(self.detector).__name__

    def thresholds_for(
        self,
        method: str | None = None,
        k: float | None = None,
        contamination: float | None = None,
        score: float | None = None,
        map: float | None = None,  # noqa: A002 - the threshold's own name
        map_k: float | None = None,
    ) -> Thresholds:
        """The stored thresholds, or new ones from the stored training distribution (``method``, ``k``,
        ``map_k``, ``contamination``); ``score`` / ``map`` set a value by hand (``method="manual"`` for what was
        set)."""
        self._check_fitted()
        out = self.thresholds_
        if any(v is not None for v in (method, k, contamination, map_k)):
            out = choose_thresholds(
                self.calibration_scores_,
                self.calibration_map_quantiles_,
                method or self.thresholds_.method,
                self.k if k is None else k,
                self.contamination if contamination is None else contamination,
                # a new k moves both thresholds unless the map's multiple is given (or was stored apart)
                map_k if map_k is not None else self.map_k,
            )
        if score is not None or map is not None:
            out = replace(
                out,
                method="manual",
                score=out.score if score is None else float(score),
                map=out.map if map is None else float(map),
            )
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise ValueError("this AnomalyModel is not fitted: call fit(items) or load a saved model")

    # ------------------------------------------------------------------------------------------------- scoring
    def _window_map_fn(self, window_scores: list[np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def map_fn(X: np.ndarray) -> np.ndarray:
            maps = np.asarray(self.detector_.anomaly_map(X), dtype=np.float64)
            window_scores.append(_score_maps(self.detector_, maps))
            return maps

        return map_fn

    def _n_windows(self, record: Any) -> int | None:
        """How many model windows an :class:`adapters.Record` cuts into with a windowed waveform or spectrogram
        adapter (None otherwise: the record is one sample)."""
        import adapters
        from adapters.base import window_starts

        adapter = self.adapter_
        spectrogram = isinstance(adapter, adapters.SpectrogramAdapter)
        window = adapter.window_frames if spectrogram else getattr(adapter, "window", None)
        if not isinstance(adapter, adapters.AudioInput) or window is None or not hasattr(record, "data"):
            return None
        hop = (adapter.hop_frames if spectrogram else adapter.hop) or window
        length = np.shape(record.data)[-1]
        if record.sample_rate is not None:
            length = int(round(length * adapter.sample_rate_ / float(record.sample_rate)))
        if spectrogram:
            length = 1 + length // adapter.hop_length  # STFT frames (centred)
        if length < window:
            return 1
        return len(window_starts(length, window, hop))

    def score_items(
        self,
        items: Iterable[Any],
        thresholds: Thresholds | None = None,
        chunk_windows: int = 256,
        keep_signal: bool = True,
        segments_in: str = "flagged",
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[RecordResult]:
        """Score ``items`` one by one (long waveform records chunk by chunk) → one :class:`RecordResult` each.

        ``segments_in``: ``"flagged"`` (segments only in flagged records — the default; a map point above the
        threshold in a record that is not flagged is reported in the map, not as a defect) or ``"all"``.
        ``progress(i)`` is called after each item.
        """
        from .streaming import stream_map

        self._check_fitted()
        if segments_in not in ("flagged", "all"):
            raise ValueError(f"segments_in must be 'flagged' or 'all', got {segments_in!r}")
        import adapters

        thr = thresholds or self.thresholds_
        adapter = self.adapter_
        for i, item in enumerate(items):
            if isinstance(adapter, adapters.AudioInput):
                item = adapter.read_item(item)  # read a file once, for the map and the signal alike
            window_scores: list[np.ndarray] = []
            map_fn = self._window_map_fn(window_scores)
            n = self._n_windows(item)
            if n is not None and n > chunk_windows:
                anomaly = stream_map(adapter, map_fn, item, chunk_windows=chunk_windows, dtype=np.float32)
            else:
                X, layout = adapter.to_tensor(item if isinstance(item, xr.DataArray | xr.Dataset) else [item])
                out = adapter.to_signal(map_fn(X), layout)
                # one item: the xarray adapter gives its map itself, the others a list of one map
                anomaly = out if isinstance(out, xr.DataArray) else out[0]
            anomaly = anomaly.astype(np.float32, copy=False)
            anomaly.name = "anomaly"
            score = float(np.max(np.concatenate(window_scores)))
            flagged = score > thr.score
            segments = find_segments(anomaly, thr.map) if flagged or segments_in == "all" else []
            signal = _signal(adapter, item, anomaly) if keep_signal else None
            yield RecordResult(_item_source(item, i), anomaly, signal, score, bool(flagged), segments)
            if progress is not None:
                progress(i)

    # ------------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """One file with the adapter (parameters + fitted state), the detector, the thresholds and the training
        score distribution; written atomically, read back with ``torch.load(weights_only=True)``."""
        self._check_fitted()
        state = {
            "format": MODEL_FORMAT,
            "adapter": adapter_state(self.adapter_),
            "detector": torch.frombuffer(bytearray(detector_to_bytes(self.detector_)), dtype=torch.uint8),
            "detector_class": type(self.detector_).__name__,
            "method": self.method_label,
            "threshold": {
                "method": self.threshold,
                "k": self.k,
                "contamination": self.contamination,
                "map_k": self.map_k,
            },
            "thresholds": vars(self.thresholds_).copy(),
            "calibration": {"share": self.calibration, "n_fit": self.n_fit_samples_, "in_sample": self.in_sample_},
            "calibration_scores": torch.from_numpy(np.asarray(self.calibration_scores_, dtype=np.float64)),
            "calibration_map_quantiles": torch.from_numpy(
                np.asarray(self.calibration_map_quantiles_, dtype=np.float64)
            ),
            "modality": self.modality_,
            "version": _version(),
        }
        atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> AnomalyModel:
        """Read a model written by :meth:`save`; nothing is unpickled. ``device`` overrides the detector's."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no model file at {str(path)!r}: pass the file written by 'rddpm-signals fit'")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure to read means the same thing to the user
            raise ValueError(
                f"{str(path)!r} is not an rddpm-signals model file ({type(err).__name__}): pass the file written "
                "by 'rddpm-signals fit'"
            ) from None
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            found = state.get("format") if isinstance(state, dict) else None
            hint = " (it looks like a bare detector saved by Python's det.save)" if found is None else ""
            raise ValueError(
                f"{str(path)!r} is not an rddpm-signals model file of format {MODEL_FORMAT}{hint}: pass the file "
                "written by 'rddpm-signals fit', or re-fit"
            )
        blob = bytes(state["detector"].numpy().tobytes())
        detector = detector_from_bytes(blob, device=device)
        options = state["threshold"]
        adapter = adapter_from_state(state["adapter"])
        model = cls(
            adapter,
            detector,
            threshold=options["method"],
            k=options["k"],
            map_k=options.get("map_k"),
            contamination=options["contamination"],
            method=state["method"],
        )
        model.adapter_, model.detector_ = adapter, detector
        model.thresholds_ = Thresholds(**state["thresholds"])
        # files written before held-out calibration keep their in-sample training scores
        legacy = "calibration_scores" not in state
        prefix = "train" if legacy else "calibration"
        model.calibration_scores_ = state[f"{prefix}_scores"].numpy()
        model.calibration_map_quantiles_ = state[f"{prefix}_map_quantiles"].numpy()
        calibration = state.get("calibration", {"share": 0.0, "n_fit": None, "in_sample": True})
        model.calibration = calibration["share"]
        model.n_fit_samples_, model.in_sample_ = calibration["n_fit"], calibration["in_sample"]
        model.modality_ = state["modality"]
        return model


def _version() -> str:
    from . import __version__

    return __version__


def results_dataset(
    results: Sequence[RecordResult], thresholds: Thresholds, attrs: dict
) -> tuple[xr.Dataset, list[xr.Dataset]]:
    """The result file's root table and per-record groups (see :mod:`rddpm_signals.results`)."""
    seg_rows = [(i, s) for i, r in enumerate(results) for s in r.segments]
    table = xr.Dataset(
        {
            "source": ("record", np.array([r.source for r in results], dtype=object).astype(str)),
            "score": ("record", np.array([r.score for r in results], dtype=np.float64)),
            "flagged": ("record", np.array([r.flagged for r in results], dtype=bool)),
            "peak": ("record", np.array([r.peak for r in results], dtype=np.float64)),
            "n_segments": ("record", np.array([len(r.segments) for r in results], dtype=np.int64)),
            "segment_record": ("segment", np.array([i for i, _ in seg_rows], dtype=np.int64)),
            "segment_start": ("segment", np.array([s.start for _, s in seg_rows], dtype=np.float64)),
            "segment_end": ("segment", np.array([s.end for _, s in seg_rows], dtype=np.float64)),
            "segment_low": ("segment", np.array([s.low for _, s in seg_rows], dtype=np.float64)),
            "segment_high": ("segment", np.array([s.high for _, s in seg_rows], dtype=np.float64)),
            "segment_peak": ("segment", np.array([s.peak for _, s in seg_rows], dtype=np.float64)),
        },
        attrs={
            "score_threshold": float(thresholds.score),
            "map_threshold": float(thresholds.map),
            "threshold_method": thresholds.method,
            **attrs,
        },
    )
    groups = []
    for r in results:
        variables = {"anomaly": r.anomaly.astype(np.float32, copy=False)}
        if r.signal is not None:
            variables["signal"] = r.signal
        groups.append(
            xr.Dataset(variables, attrs={"source": r.source, "score": float(r.score), "flagged": int(r.flagged)})
        )
    return table, groups
