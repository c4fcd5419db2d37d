"""AnomalyModel (adapter + detector + label-free thresholds), the public method table, and loading without pickles."""

import pickle

import numpy as np
import pytest
import torch

import adapters
from helpers import TINY_1D
from rddpm_signals import (
    RPCA,
    SSD,
    AnomalyModel,
    IsolationForestDetector,
    MatrixProfile,
    RobustDiffusion,
    load_detector,
    make_detector,
)
from rddpm_signals.methods import METHODS, parse_method
from rddpm_signals.model import choose_thresholds

TINY = {k: v for k, v in TINY_1D.items() if k != "dims"}


def records(n: int = 6, length: int = 400, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    return [
        adapters.Record(np.sin(2 * np.pi * t)[None] + 0.05 * rng.normal(size=(1, length)), 100.0, f"r{i}.wav")
        for i in range(n)
    ]


def test_method_table_is_the_one_the_docs_state():
    ddpm = make_detector("ddpm", dims=1)
    assert isinstance(ddpm, RobustDiffusion) and ddpm.loss == "mse" and ddpm.self_clean is False
    assert make_detector("anoddpm", dims=2).noise == "simplex" and make_detector("rddpm", dims=1).self_clean
    assert isinstance(make_detector("rpca", dims=1), RPCA) and isinstance(make_detector("ssd", dims=2), SSD)
    spec = parse_method("rddpm:loss=huber,delta=0.3,self_clean=false")
    assert spec.params() == {"loss": "huber", "delta": 0.3, "self_clean": False}
    with pytest.raises(ValueError, match="no parameter 'colour'"):
        make_detector("rddpm:colour=red", dims=1)
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("nope")
    assert {"rddpm", "ddpm", "anoddpm", "rddpm_paper", "rpca", "ssd"} <= set(METHODS)


@pytest.mark.parametrize("method", ["rddpm", "rpca"])
def test_model_round_trip_gives_identical_results(tmp_path, method):
    params = TINY if method == "rddpm" else None
    model = AnomalyModel(adapters.WaveformAdapter(window=64, hop=32), method, detector_params=params)
    model.fit(records())
    model.save(tmp_path / "m.model")
    loaded = AnomalyModel.load(tmp_path / "m.model")
    assert loaded.thresholds_ == model.thresholds_ and loaded.method_label == method
    np.testing.assert_array_equal(loaded.calibration_scores_, model.calibration_scores_)
    test = records(2, seed=1)
    a, b = list(model.score_items(test)), list(loaded.score_items(test))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.anomaly.values, y.anomaly.values)
        assert x.score == y.score and x.flagged == y.flagged and x.source == y.source
    assert a[0].anomaly.dims == ("time",) and a[0].anomaly["time"].values[-1] == pytest.approx(3.99)


def test_long_record_streamed_equals_whole(tmp_path):
    model = AnomalyModel(adapters.WaveformAdapter(window=64, hop=32), "rddpm", detector_params=TINY).fit(records())
    long = adapters.Record(np.sin(2 * np.pi * np.arange(3000) / 100.0)[None], 100.0, "long.wav")
    streamed = next(model.score_items([long], chunk_windows=7))
    whole = next(model.score_items([long], chunk_windows=10_000))
    np.testing.assert_allclose(streamed.anomaly.values, whole.anomaly.values, atol=1e-6)
    assert streamed.score == pytest.approx(whole.score, abs=1e-6)


def test_the_detector_is_told_when_its_training_windows_overlap():
    """Windows cut with overlap reach RobustDiffusion as ``fit(X, overlapping=True, positions=...)`` (``"auto"`` then
    drops flagged windows whole, spreads flags across the windows sharing a point and trains with MSE); a detector
    whose ``fit`` takes no such argument is fitted as before."""
    overlapping = AnomalyModel(adapters.WaveformAdapter(window=64, hop=16), "rddpm", detector_params=TINY)
    told = overlapping.fit(records()).detector_
    settings = told.clean_settings_
    assert (settings["samples"], settings["across_windows"], told.loss_) == ("flagged", True, "mse")
    separate = AnomalyModel(adapters.WaveformAdapter(window=64), "rddpm", detector_params=TINY).fit(records())
    settings = separate.detector_.clean_settings_
    assert (settings["samples"], settings["across_windows"], separate.detector_.loss_) == (False, False, "lts")
    assert AnomalyModel(adapters.WaveformAdapter(window=64, hop=16), "rpca").fit(records()).detector_.dims_ == 1


def test_failed_fit_leaves_the_model_unfitted():
    model = AnomalyModel(adapters.WaveformAdapter(window=64), "rddpm", detector_params=TINY)
    bad = [adapters.Record(np.full((1, 200), np.nan), 100.0)]
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad)
    assert not hasattr(model, "thresholds_") and not hasattr(model, "adapter_")


def test_thresholds_are_label_free_statistics():
    rng = np.random.default_rng(0)
    scores, values = rng.normal(size=1000), rng.exponential(size=5000)
    mad = choose_thresholds(scores, values, "mad", k=3.0)
    assert mad.score == pytest.approx(np.median(scores) + 3 * 1.4826 * np.median(np.abs(scores - np.median(scores))))
    q = choose_thresholds(scores, values, "quantile", contamination=0.1)
    assert (scores > q.score).mean() == pytest.approx(0.1, abs=0.002)
    # sparse maps (most values exactly 0, as RPCA's) still give a threshold above the common value
    sparse = np.where(rng.random(5000) < 0.8, 0.0, rng.exponential(size=5000))
    assert choose_thresholds(scores, sparse, "mad").map > 0
    with pytest.raises(ValueError, match="contamination"):
        choose_thresholds(scores, values, "quantile")


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_malicious_pickles_are_refused_and_run_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "rddpm-signals-model/1", "x": _Boom()}, evil)
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Boom()))
    loaders = (AnomalyModel.load, load_detector, RobustDiffusion.load, RPCA.load, SSD.load)
    loaders += (MatrixProfile.load, IsolationForestDetector.load)
    for path in (evil, raw):
        for load in loaders:
            with pytest.raises(ValueError):
                load(path)
    assert not (tmp_path / "PWNED").exists()


def test_load_detector_reads_every_detector(tmp_path):
    X = np.random.default_rng(0).normal(size=(8, 1, 32)).astype(np.float32)
    for det in (RobustDiffusion(**TINY).fit(X), RPCA().fit(X), SSD().fit(X)):
        det.save(tmp_path / "d")
        again = load_detector(tmp_path / "d")
        assert type(again) is type(det)
        np.testing.assert_allclose(again.anomaly_map(X), det.anomaly_map(X))


def test_record_and_map_multiples_apart(tmp_path):
    model = AnomalyModel(adapters.WaveformAdapter(window=64), "rpca", k=2.0, map_k=5.0).fit(records())
    assert model.thresholds_.map_k == 5.0 and "5·MAD of the map values" in model.thresholds_.describe()
    tied = choose_thresholds(model.calibration_scores_, model.calibration_map_quantiles_, "mad", k=2.0)
    assert model.thresholds_.score == tied.score and model.thresholds_.map != tied.map
    model.save(tmp_path / "m.model")
    loaded = AnomalyModel.load(tmp_path / "m.model")
    assert loaded.thresholds_ == model.thresholds_ and loaded.map_k == 5.0
    # at score time: a new k keeps the stored map multiple; map_k alone moves only the map threshold
    assert loaded.thresholds_for(k=1.0).map == model.thresholds_.map
    moved = loaded.thresholds_for(map_k=8.0)
    assert moved.score == model.thresholds_.score and moved.map > model.thresholds_.map


def test_map_threshold_is_the_score_threshold_by_default():
    """Without map_k one value gates records and segments: a record's score is a high quantile of its map, so the
    map threshold is the level normal records' scores stay under (pooled map values would put it inside their
    peaks)."""
    rng = np.random.default_rng(0)
    scores = rng.gamma(4.0, 0.03, size=200)
    map_values = np.concatenate([np.zeros(900), rng.gamma(2.0, 0.01, size=100)])
    for thr in (
        choose_thresholds(scores, map_values, "mad", k=2.0),
        choose_thresholds(scores, map_values, "quantile", contamination=0.1),
    ):
        assert thr.map == thr.score and thr.map_k is None
    mad = choose_thresholds(scores, map_values, "mad", k=2.0)
    med = np.median(scores)
    assert mad.score == pytest.approx(med + 2.0 * 1.4826 * np.median(np.abs(scores - med)))
    assert "median + 2·MAD of the calibration scores" in mad.describe()
    apart = choose_thresholds(scores, map_values, "mad", k=2.0, map_k=2.0)
    assert apart.score == mad.score and apart.map < mad.map  # pooled map values: far lower


def test_long_spectrogram_record_is_streamed_to_the_whole_record_map():
    """A windowed spectrogram record longer than ``chunk_windows`` windows is scored chunk by chunk (the frames of
    one chunk at a time) and gives the map and score of the whole-record path."""
    rng = np.random.default_rng(0)
    adapter = adapters.SpectrogramAdapter(
        sample_rate=4000.0, n_fft=128, hop_length=64, n_mels=16, window_frames=16, hop_frames=8
    )
    train = [adapters.Record(rng.normal(size=(1, 4000)).astype(np.float32), 4000.0) for _ in range(6)]
    model = AnomalyModel(adapter, "rpca").fit(train)
    long = adapters.Record(rng.normal(size=(1, 20000)).astype(np.float32), 4000.0, source="long")
    assert model._n_windows(long) > 4
    streamed = next(model.score_items([long], chunk_windows=2, keep_signal=False))
    whole = next(model.score_items([long], chunk_windows=10_000, keep_signal=False))
    assert streamed.anomaly.dims == whole.anomaly.dims == ("frequency", "time")
    np.testing.assert_allclose(streamed.anomaly.values, whole.anomaly.values, rtol=1e-5, atol=1e-6)
    assert streamed.score == pytest.approx(whole.score, rel=1e-6)
