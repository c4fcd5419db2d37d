"""AnomalyModel (adapter + detector + label-free thresholds), the public method table, and loading without pickles."""

import pickle

import numpy as np
import pytest
import torch

import adapters
from helpers import TINY_1D
from rddpm_signals import RPCA, SSD, AnomalyModel, RobustDiffusion, load_detector, make_detector
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
    np.testing.assert_array_equal(loaded.train_scores_, model.train_scores_)
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
    for path in (evil, raw):
        with pytest.raises(ValueError):
            AnomalyModel.load(path)
        with pytest.raises(ValueError):
            load_detector(path)
        with pytest.raises(ValueError):
            RobustDiffusion.load(path)
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
    assert model.thresholds_.map_k == 5.0 and "2 / 5·MAD" in model.thresholds_.describe()
    same = choose_thresholds(model.train_scores_, model.train_map_quantiles_, "mad", k=2.0)
    assert model.thresholds_.score == same.score and model.thresholds_.map > same.map
    model.save(tmp_path / "m.model")
    loaded = AnomalyModel.load(tmp_path / "m.model")
    assert loaded.thresholds_ == model.thresholds_ and loaded.map_k == 5.0
    # at score time: a new k keeps the stored map multiple; map_k alone moves only the map threshold
    assert loaded.thresholds_for(k=1.0).map == model.thresholds_.map
    moved = loaded.thresholds_for(map_k=8.0)
    assert moved.score == model.thresholds_.score and moved.map > model.thresholds_.map
