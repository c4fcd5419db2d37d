"""The rddpm-signals command line: fit → score → plot, data specs, and one-line errors."""

import numpy as np
import pytest

from rddpm_signals.cli import main, read_samples

TINY = ["--channels", "8", "--train-steps", "3", "--batch-size", "4", "--t0", "3", "--quiet", "--device", "cpu"]


def test_fit_score_plot_round_trip(tmp_path, tiny_1d_data, capsys):
    data = tmp_path / "x.npy"
    np.save(data, tiny_1d_data)
    model, maps = tmp_path / "m.pt", tmp_path / "maps.npz"
    assert main(["fit", str(data), "--out", str(model), *TINY, "--loss", "huber", "--delta", "0.5"]) == 0
    assert main(["score", str(model), str(data), "--out", str(maps)]) == 0
    with np.load(maps) as z:
        assert z["maps"].shape == (12, 33) and z["scores"].shape == (12,)
    assert main(["plot", str(maps), str(data), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "saved to" in out and "highest scores" in out


def test_fit_passes_only_given_options(tmp_path, tiny_1d_data):
    from rddpm_signals import RobustDiffusion

    np.save(tmp_path / "x.npy", tiny_1d_data)
    main(["fit", str(tmp_path / "x.npy"), "--out", str(tmp_path / "m.pt"), *TINY])
    det = RobustDiffusion.load(tmp_path / "m.pt")
    assert det.loss == RobustDiffusion().loss and det.channels == 8 and det.dims == 1


def test_dataset_specs():
    X, dims = read_samples("dataset:forging:test", contamination=0.1, seed=0)
    assert dims == 1 and X.ndim == 3
    with pytest.raises(ValueError, match="split"):
        read_samples("dataset:forging:validation")


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "missing.npy"), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no data file" in err
    bad = tmp_path / "bad.npy"
    np.save(bad, np.full((3, 1, 8), np.nan))
    assert main(["fit", str(bad), "--out", str(tmp_path / "m.pt"), *TINY]) == 2
    assert "NaN" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_demo_writes_its_table(tmp_path):
    from rddpm_signals.demo import run_demo

    rows = (("mse", {"loss": "mse"}), ("huber δ=0.1", {"loss": "huber", "delta": 0.1}))
    results = run_demo(rows=rows, verbose=False, out=tmp_path, train_steps=2, channels=8, t0=3)
    assert [r["detector"] for r in results] == ["mse", "huber δ=0.1"]
    table = (tmp_path / "demo.md").read_text()
    assert table.count("\n") == 4 and "| huber δ=0.1 | 20% |" in table
    assert (tmp_path / "demo.csv").read_text().startswith("detector,contamination")
