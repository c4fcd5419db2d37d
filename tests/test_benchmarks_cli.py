"""The CLI benchmarks: metric maths on hand-made cases and a tiny smoke run of each script (RPCA, toy sizes)."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
import sys
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


flagging = _load("flagging")
streaming = _load("streaming")
generalise = _load("generalise")
generalise_table = _load("generalise_table")
trim_profile = _load("trim_profile")
structure_choice = _load("structure_choice")
larger_test = _load("larger_test")
denoise_score = _load("denoise_score")
variant_gain = _load("variant_gain")
per_fit_rule = _load("per_fit_rule")
model_seed = _load("model_seed")
oracle_cleaning = _load("oracle_cleaning")
discord_prior = _load("discord_prior")
prior_cost = _load("prior_cost")
round_maps = _load("round_maps")
window_edges = _load("window_edges")
prior_evidence = _load("prior_evidence")
event_neighbours = _load("event_neighbours")


def test_interval_metrics_hand_made():
    truth = {"a.csv": [(1.0, 2.0), (5.0, 6.0)], "b.csv": [(0.0, 0.5)], "c.csv": []}
    reported = {
        "a.csv": [(1.5, 1.7), (1.9, 3.0), (2.0, 4.0)],  # two hit (1, 2); [2, 4) only touches the end: a miss
        "c.csv": [(0.0, 0.5)],  # same times as b's defect but another file: a miss
    }
    m = flagging.interval_metrics(reported, truth)
    assert (m["n_segments"], m["n_true"], m["n_wrong_in_defective"]) == (4, 3, 1)
    assert m["seg_precision"] == pytest.approx(2 / 4)
    assert m["seg_recall"] == pytest.approx(1 / 3)
    empty = flagging.interval_metrics({}, truth)
    assert math.isnan(empty["seg_precision"]) and empty["seg_recall"] == 0.0


def test_box_metrics_use_mask_pixels_not_boxes():
    mask = np.zeros((8, 8), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # one component (8-connected diagonal)
    mask[0:3, 7] = True  # a second component
    mask[5, 2] = mask[7, 4] = True  # two more, not connected; the box (x 2..5, y 5..8) spans both
    masks = {"t0.png": mask, "t1.png": np.zeros((8, 8), dtype=bool)}
    reported = {
        "t0.png": [
            (1.0, 2.0, 1.0, 2.0),  # covers (1, 1): hits component 1
            (3.0, 4.0, 5.0, 8.0),  # inside the bounding box of components 3 and 4 but on no marked pixel: a miss
            (6.0, 8.0, 2.0, 3.0),  # covers (2, 7): hits component 2
        ],
        "t1.png": [(0.0, 8.0, 0.0, 8.0)],  # a clean tile: a miss
    }
    m = flagging.box_metrics(reported, masks)
    assert (m["n_segments"], m["n_true"], m["n_wrong_in_defective"]) == (4, 4, 1)
    assert m["seg_precision"] == pytest.approx(2 / 4)
    assert m["seg_recall"] == pytest.approx(2 / 4)
    assert m["defect_recall"] == pytest.approx(1.0)


def test_record_metrics():
    flagged = {"a": True, "b": True, "c": False, "d": False}
    m = flagging.record_metrics(flagged, {"a", "c"})
    assert m["record_precision"] == pytest.approx(0.5) and m["record_recall"] == pytest.approx(0.5)
    assert (m["n_records"], m["n_defective"], m["n_flagged"]) == (4, 2, 2)


def test_read_segments_and_truth(tmp_path):
    (tmp_path / "_truth.csv").write_text("file,start_s,end_s\nstroke_0001.csv,0.25,0.5\n")
    (tmp_path / "s.csv").write_text(
        "file,record,start,end,unit,low,high,second_unit,peak,record_score,record_flagged\n"
        "/x/stroke_0001.csv,1,0.3,0.4,s,,,,2.0,3.0,true\n"
        "/x/tile.png,0,1,3,px,2,4,px,2.0,3.0,true\n"
    )
    assert flagging.read_truth_intervals(tmp_path / "_truth.csv") == {"stroke_0001.csv": [(0.25, 0.5)]}
    segs = flagging.read_segments(tmp_path / "s.csv")
    assert segs == {"stroke_0001.csv": [(0.3, 0.4)], "tile.png": [(1.0, 3.0, 2.0, 4.0)]}


def test_flagging_smoke(tmp_path, capsys):
    out = tmp_path / "fl"
    argv = ["--method", "rpca", "--n-train", "10", "--n-test", "4", "--out", str(out)]
    argv += ["--k-grid", "5", "--split-k", "3,3"]
    assert flagging.main(argv) == 0
    with open(out / "flagging.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["threshold"], r["segments_in"]) for r in rows] == [
        ("stored default", "flagged"),
        ("stored default", "all"),
        ("k=5 (chosen with labels)", "flagged"),
        ("k=5 (chosen with labels)", "all"),
        ("score k=3, map k=3 (chosen with labels)", "flagged"),
        ("score k=3, map k=3 (chosen with labels)", "all"),
    ]
    assert all(r["n_records"] == "4" and r["n_defective"] == "2" for r in rows)
    # segments in every record are a superset of those in flagged records only
    assert int(rows[1]["n_segments"]) >= int(rows[0]["n_segments"])
    # k = 3 for both thresholds, given as values, is the stored default (fitted with k = 3)
    metrics = ("n_flagged", "n_segments", "seg_precision", "seg_recall", "record_precision", "record_recall")
    assert [r[m] for r in rows[:2] for m in metrics] == [r[m] for r in rows[4:] for m in metrics]
    assert "| forging | rpca |" in (out / "flagging.md").read_text()
    assert "seg_precision" in capsys.readouterr().out


def test_rolling_pngs_share_one_scale(tmp_path):
    from PIL import Image

    sizes = {"n_train": 3, "n_test": 2}
    flagging.write_rolling_pngs(tmp_path / "tr", tmp_path / "te", seed=0, contamination=0.2, sizes=sizes)
    imgs = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "tr").glob("*.png"))]
    imgs += [np.asarray(Image.open(p)) for p in sorted((tmp_path / "te").glob("*.png"))]
    assert all(i.dtype == np.uint16 and i.shape == (32, 32) for i in imgs)
    stacked = np.stack(imgs)
    assert stacked.min() == 0 and stacked.max() == 65535  # one min / max over all images, not per image
    assert sum(int(i.min() == 0) for i in imgs) == 1
    with np.load(tmp_path / "te" / "_truth_masks.npz") as z:
        assert sorted(z.files) == ["tile_0000.png", "tile_0001.png"]


def test_streaming_smoke(tmp_path):
    out = tmp_path / "st"
    argv = ["--hours", "0.001", "--rate", "2000", "--window", "256", "--method", "rpca", "--n-train", "2"]
    argv += ["--train-seconds", "2", "--bursts", "2", "--no-signal", "--no-baseline", "--out", str(out)]
    assert streaming.main(argv) == 0
    doc = json.loads((out / "streaming.json").read_text())
    (run,) = doc["runs"]
    assert run["exit_code"] == 0 and run["samples"] == 7200 and run["no_signal"] is True
    assert run["peak_rss_mb"] > 50 and run["wall_s"] > 0
    assert run["bursts_planted"] == 2 and 0 <= run["bursts_found"] <= 2
    assert (out / "work" / "rpca_long.nc").is_file()


def test_long_wav_is_written_block_by_block(tmp_path, monkeypatch):
    import soundfile as sf

    monkeypatch.setattr(streaming, "_BLOCK_S", 0.3)  # several blocks: the hum must be continuous across them
    bursts = streaming.write_long_wav(tmp_path / "x.wav", 1.0, 1000, n_bursts=0)
    x, rate = sf.read(tmp_path / "x.wav", dtype="float32")
    assert bursts == [] and rate == 1000 and x.shape == (1000,)
    rng = np.random.default_rng(0)
    clean = streaming.hum(0, 1000, 1000, rng)
    assert np.max(np.abs(x - clean)) < 0.5  # same deterministic hum; differs only by the noise


def test_generalise_runs_a_baseline_and_scores_a_long_record_per_point(tmp_path):
    """A baseline fit takes the base variant, and on a long record the base row is the harness cell's metrics
    (windows stitched back and scored per point), not the window maps'."""
    from rddpm_signals.harness.cells import Cell, run_cell

    argv = ["--datasets", "long_record", "--contamination", "0.2", "--preset", "smoke", "--fits", "rpca"]
    assert generalise.main([*argv, "--variants", "base", "--out", str(tmp_path / "fits")]) == 0
    (path,) = (tmp_path / "fits").glob("*.json")
    row = json.loads(path.read_text())["variants"]["base"]
    cell = run_cell(Cell("long_record", "rpca", 0.2, 0, "smoke"), tmp_path / "cells")
    assert row["pixel_auroc"] == round(cell["pixel_auroc"], 4)
    assert row["pixel_auprc"] == round(cell["pixel_auprc"], 4)
    assert row["sample_auroc"] == round(cell["sample_auroc"], 4)


def test_generalise_data_options_make_another_fit_on_other_data(tmp_path):
    """``--data length=128`` fits the same cell on longer samples: another key, the options recorded, and the test
    set scored is the one of that length (the row equals RPCA fitted on data loaded with the option)."""
    from rddpm_signals.harness.cells import Cell, build_detector, load_cell_data

    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rpca"]
    assert generalise.main([*argv, "--out", str(tmp_path)]) == 0
    assert generalise.main([*argv, "--data", "length=128", "--out", str(tmp_path)]) == 0
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert len(records) == 2
    (short,) = [r for r in records if "data_options" in r]
    assert short["data_options"] == {"length": 128}
    resolved = Cell("forging", "rpca", 0.2, 0, "smoke").resolved()
    resolved["data_options"]["length"] = 128
    data = load_cell_data(resolved)
    assert data.train_x.shape[-1] == 128
    det = build_detector(resolved, data.dims).fit(data.train_x)
    expected = generalise.score_variant(det, data, "base", None, None)
    untimed = lambda row: {k: v for k, v in row.items() if k != "score_s"}  # noqa: E731 - a timing, not a result
    assert untimed(short["variants"]["base"]) == untimed(expected)
    with pytest.raises(ValueError, match="bad data option 'length'"):
        generalise.main([*argv, "--data", "length", "--out", str(tmp_path)])
    # the tables key fits by set, level, method and seed: pooling the two lengths is refused, not averaged
    with pytest.raises(ValueError, match="keep fits of other data options in other folders"):
        generalise_table.read_fits(tmp_path, "base")
    with pytest.raises(ValueError, match="keep fits of other data options in other folders"):
        per_fit_rule.paired_fits([tmp_path], "rpca", "base", "base")
    (tmp_path / "long").mkdir()
    path = next(p for p in tmp_path.glob("*.json") if "data_options" in json.loads(p.read_text()))
    path.rename(tmp_path / "long" / path.name)
    assert list(generalise_table.read_fits(tmp_path, "base")) == [("forging", 0.2, "rpca")]
    # nor may a comparison pair a method on one length with another method on the other
    record = json.loads((tmp_path / "long" / path.name).read_text())
    (tmp_path / "long" / path.name).write_text(json.dumps({**record, "method": "ssd"}))
    with pytest.raises(ValueError, match="keep fits of other data options in other folders"):
        per_fit_rule.paired_fits([tmp_path, tmp_path / "long"], "rpca", "base", "base", "ssd")


def test_generalise_exclusion_reports_recall_per_defect_kind():
    """Hand-made: 4 samples of 4 points; two defect kinds; the mask holds out 2 of 3 spike points, 0 of 2 trend
    points and 1 normal point."""
    from types import SimpleNamespace

    truth = np.zeros((4, 4), dtype=bool)
    truth[1, :3] = True  # spike: 3 points
    truth[2, 2:] = True  # trend: 2 points
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, :2] = True
    mask[0, 0] = True
    data = SimpleNamespace(train_mask=truth, meta={"train_defect": ("", "spike", "trend", "")})
    record = generalise.exclusion(SimpleNamespace(clean_mask_=mask), data)
    assert record["defect_recall"] == pytest.approx(2 / 5)
    assert record["normal_excluded"] == pytest.approx(1 / 8)
    assert record["defect_recall_by_kind"] == {"spike": pytest.approx(2 / 3), "trend": 0.0}
    assert "defect_recall_by_kind" not in generalise.exclusion(
        SimpleNamespace(clean_mask_=mask), SimpleNamespace(train_mask=truth, meta={})
    )


def test_generalise_refuses_scoring_variants_for_a_baseline_before_fitting(tmp_path):
    argv = ["--datasets", "forging", "--contamination", "0", "--preset", "smoke", "--fits", "rpca"]
    with pytest.raises(ValueError, match="only the 'base' variant"):
        generalise.main([*argv, "--variants", "base;map_structure=bulk", "--out", str(tmp_path)])
    assert not list(tmp_path.glob("*.json"))


def test_generalise_table_means_seeds_and_measures_gaps_to_the_best_clean_fit(tmp_path, capsys):
    def fit(name, contamination, method, seed, auroc, auprc):
        record = {"dataset": "toy", "contamination": contamination, "method": method, "seed": seed}
        record["variants"] = {"base": {"pixel_auroc": auroc, "pixel_auprc": auprc, "sample_auroc": 0.5}}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))

    fit("a", 0.0, "ddpm", 0, 0.90, 0.50)
    fit("b", 0.0, "ddpm", 1, 0.94, 0.60)  # ddpm clean: mean 0.92 / 0.55, the best clean fit
    fit("c", 0.0, "rddpm", 0, 0.91, 0.70)  # higher AUPRC but lower AUROC: not the reference
    fit("d", 0.2, "rddpm", 0, 0.88, 0.45)
    fit("e", 0.0, "lucky", 1, 0.99, 0.90)  # one seed only: not eligible as the reference
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--out", str(tmp_path / "t.md")]) == 0
    rows = {tuple(c.strip() for c in line.split("|")[2:4]): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "0.920 ± 0.020 | +0.000 | 0.550 ± 0.050 | +0.000" in rows[("0", "ddpm")]
    assert "| 0,1 |" in rows[("0", "ddpm")] and "ddpm 0.920 / 0.550 (seeds 0,1)" in rows[("0.2", "rddpm")]
    # gaps are paired by seed: rddpm has seed 0 only, so it is compared with ddpm's seed 0 (0.90 / 0.50)
    assert "| 0.880 | -0.020 | 0.450 | -0.050 |" in rows[("0.2", "rddpm")]
    assert "| 0.990 | +0.050 | 0.900 | +0.300 |" in rows[("0", "lucky")]
    assert (tmp_path / "t.md").read_text().count("\n") == 6
    assert generalise_table.main(["--fits-dir", str(tmp_path / "none")]) == 2
    # --variant-of: one method's rows from another scoring; the others keep --variant's
    record = json.loads((tmp_path / "d.json").read_text())
    record["variants"]["v"] = {"pixel_auroc": 0.93, "pixel_auprc": 0.40, "sample_auroc": 0.5}
    (tmp_path / "d.json").write_text(json.dumps(record))
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--variant-of", "rddpm@v"]) == 0
    rows = {tuple(c.strip() for c in line.split("|")[2:4]): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "| 0.930 | +0.030 | 0.400 | -0.100 |" in rows[("0.2", "rddpm")] and ("0", "rddpm") not in rows
    assert "0.920 ± 0.020" in rows[("0", "ddpm")]
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--variant-of", "rddpm"]) == 2
    # --seeds: only those seeds' fits; with seed 1 alone "lucky" ties ddpm on seeds and wins the reference
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--seeds", "1"]) == 0
    rows = {tuple(c.strip() for c in line.split("|")[2:4]): line for line in capsys.readouterr().out.splitlines()[2:]}
    assert set(rows) == {("0", "ddpm"), ("0", "lucky")} and "| 0.940 | -0.050 |" in rows[("0", "ddpm")]
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--seeds", "one"]) == 2
    # names that match no cached fit are an error, not an empty table: a typo, or names separated by ','
    capsys.readouterr()
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--datasets", "toy,other"]) == 2
    assert "no cached fit of 'toy,other'" in capsys.readouterr().err
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--methods", "ddpm;rdpm"]) == 2
    assert "no cached fit of 'rdpm'" in capsys.readouterr().err
    assert generalise_table.main(["--fits-dir", str(tmp_path), "--datasets", "toy", "--methods", "ddpm;rddpm"]) == 0


def test_every_reader_of_cached_fits_refuses_two_fits_of_one_cell_in_a_folder(tmp_path):
    """generalise_table, per_fit_rule and oracle_cleaning read through one scored_fits: a second fit of one cell in
    one folder (another preset, a refit under a newer key) is refused, not silently picked; across folders the
    first folder given is read."""

    def fit(folder, name, method, auroc):
        record = {"dataset": "toy", "contamination": 0.2, "method": method, "seed": 0}
        record["variants"] = {"base": {"pixel_auroc": auroc, "pixel_auprc": 0.5, "sample_auroc": 0.5}}
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{name}.json").write_text(json.dumps(record))

    fit("a", "k1", "rddpm", 0.90)
    fit("a", "k2", "ddpm", 0.80)
    fit("b", "k3", "rddpm", 0.70)
    a, b = tmp_path / "a", tmp_path / "b"
    assert generalise_table.scored_fits([a, b], "base", "rddpm") == {("toy", 0.2, "rddpm", 0): ANY}
    assert generalise_table.scored_fits([b, a], "base")[("toy", 0.2, "rddpm", 0)]["pixel_auroc"] == 0.70
    (pair,) = per_fit_rule.paired_fits([a, b], "ddpm", "base", "base", "rddpm")
    assert (pair["base"]["pixel_auroc"], pair["variant"]["pixel_auroc"]) == (0.80, 0.90)
    fit("a", "k4", "rddpm", 0.60)
    refused = "k1.json and k4.json in .* are two fits of .*'rddpm', 0.: keep one preset per fits folder"
    with pytest.raises(ValueError, match=refused):
        generalise_table.read_fits(a, "base")
    with pytest.raises(ValueError, match=refused):
        per_fit_rule.paired_fits([b, a], "ddpm", "base", "base", "rddpm")
    with pytest.raises(ValueError, match=refused):
        oracle_cleaning.comparison({("toy", 0.2): [{"seed": 0, "pixel_auroc": 1, "pixel_auprc": 1}]}, a, ["rddpm"], [0])
    assert generalise_table.scored_fits([a], "base", "ddpm") == {("toy", 0.2, "ddpm", 0): ANY}  # one method: no clash


def test_a_variant_is_found_by_the_scoring_it_means_not_only_by_its_name():
    """Four draws became the default: "n_reconstructions=4" is the "base" of a later fit and a named variant of an
    earlier one; a baseline has only its own scoring; a diffusion fit lacking the scoring is not shown."""
    score = {"pixel_auroc": 0.9, "pixel_auprc": 0.5, "sample_auroc": 0.7}
    old = {"method": "rddpm", "base_params": {"n_reconstructions": 1, "map_structure": "none"}}
    old["variants"] = {"base": {**score, "pixel_auroc": 0.8}, "n_reconstructions=4,map_structure=auto": score}
    new = {"method": "rddpm", "base_params": {"n_reconstructions": 4, "map_structure": "none"}}
    new["variants"] = {"base": score, "map_structure=auto": {**score, "pixel_auroc": 0.95}}
    rpca = {"method": "rpca", "variants": {"base": score}}
    assert generalise_table.scored_as(old, "n_reconstructions=4,map_structure=auto") is score
    assert generalise_table.scored_as(new, "n_reconstructions=4") is score
    assert generalise_table.scored_as(new, "n_reconstructions=4,map_structure=auto")["pixel_auroc"] == 0.95
    assert generalise_table.scored_as(old, "n_reconstructions=4") is None  # never scored that way
    assert generalise_table.scored_as(old, "base")["pixel_auroc"] == 0.8
    assert generalise_table.scored_as(rpca, "n_reconstructions=4") is score
    assert generalise_table.scored_as({"method": "ddpm", "variants": {"base": score}}, "n_reconstructions=4") is None
    assert generalise_table.scored_as({"method": "nope", "variants": {"base": score}}, "x=1") is None


def test_per_fit_rule_judges_every_fit_and_sample_sets_by_their_sample_auroc(tmp_path, capsys):
    def fit(folder, dataset, seed, base, variant):
        record = {"dataset": dataset, "contamination": 0.2, "method": "rddpm", "seed": seed}
        record["base_params"] = {"n_reconstructions": 4, "map_structure": "none"}
        metrics = [dict(zip(("pixel_auroc", "pixel_auprc", "sample_auroc"), m, strict=True)) for m in (base, variant)]
        record["variants"] = {"base": metrics[0], "map_structure=auto": {**metrics[1], "map_structure_": "bulk"}}
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"{dataset}{seed}.json").write_text(json.dumps(record))

    fit("a", "tex", 0, (0.50, 0.05, 0.5), (0.90, 0.30, 0.8))
    fit("a", "sig", 0, (0.90, 0.50, 0.9), (0.897, 0.495, 0.9))  # within both tolerances
    fit("b", "whole", 0, (0.52, 0.52, 0.60), (0.50, 0.50, 0.70))  # pixel figures fall, sample AUROC rises
    args = ["--fits-dir", str(tmp_path / "a"), str(tmp_path / "b"), "--base", "n_reconstructions=4"]
    args += ["--variant", "n_reconstructions=4,map_structure=auto", "--sample-sets", "whole"]
    assert per_fit_rule.main([*args, "--out", str(tmp_path / "r.md")]) == 0
    out = capsys.readouterr().out
    assert "fits: 3; choices: bulk 3" in out and "failures: none" in out and out.rstrip().endswith("PASS")
    assert "whole 0.2 s0 (pixel_auroc -0.0200, pixel_auprc -0.0200)" in out  # what the pixel rule alone would say
    assert (tmp_path / "r.md").read_text() == out
    fit("a", "sig", 1, (0.90, 0.50, 0.9), (0.90, 0.48, 0.9))  # AUPRC −0.02: fails (a)
    assert per_fit_rule.main(args) == 0
    out = capsys.readouterr().out
    assert "failures: sig 0.2 s1 (pixel_auroc +0.0000, pixel_auprc -0.0200)" in out and out.rstrip().endswith("FAIL")
    assert per_fit_rule.main([*args[:1], str(tmp_path / "none"), *args[3:]]) == 2


def test_per_fit_rule_compares_two_methods_cell_by_cell(tmp_path, capsys):
    def fit(method, dataset, seed, metrics):
        record = {"dataset": dataset, "contamination": 0.2, "method": method, "seed": seed}
        record["variants"] = {"base": dict(zip(("pixel_auroc", "pixel_auprc", "sample_auroc"), metrics, strict=True))}
        (tmp_path / f"{method}-{dataset}{seed}.json").write_text(json.dumps(record))

    fit("rddpm", "sig", 0, (0.90, 0.50, 0.9))
    fit("rddpm:clean_rule=test", "sig", 0, (0.92, 0.55, 0.9))
    fit("rddpm", "sig", 1, (0.90, 0.50, 0.9))
    fit("rddpm:clean_rule=test", "sig", 1, (0.89, 0.50, 0.9))  # −0.01 AUROC: fails
    fit("rddpm", "sig", 2, (0.90, 0.50, 0.9))  # no partner: not a row
    args = ["--fits-dir", str(tmp_path), "--method", "rddpm", "--variant-method", "rddpm:clean_rule=test"]
    assert per_fit_rule.main(args) == 0
    out = capsys.readouterr().out
    assert "fits: 2;" in out and "0.900 → 0.920 (+0.020)" in out
    assert "failures: sig 0.2 s1 (pixel_auroc -0.0100, pixel_auprc +0.0000)" in out and out.rstrip().endswith("FAIL")
    assert per_fit_rule.main(["--fits-dir", str(tmp_path)]) == 2  # neither --variant nor --variant-method


def test_per_fit_rule_mean_over_seeds_judges_each_group_by_its_mean_and_standard_error(tmp_path, capsys):
    def fit(method, dataset, seed, auroc, auprc, contamination=0.3):
        record = {"dataset": dataset, "contamination": contamination, "method": method, "seed": seed}
        record["variants"] = {"base": {"pixel_auroc": auroc, "pixel_auprc": auprc, "sample_auroc": 0.5}}
        (tmp_path / f"{method}-{dataset}{seed}-{contamination}.json").write_text(json.dumps(record))

    w = "rddpm:clean_rule=test"
    for seed, d in zip((14, 15, 16), (-0.03, +0.01, +0.014), strict=True):  # one fit −0.03: fails one by one
        fit("rddpm", "sig", seed, 0.90, 0.50)
        fit(w, "sig", seed, 0.90 + d, 0.50)
    fit("rddpm", "sig", 14, 0.90, 0.50, contamination=0.0)
    fit(w, "sig", 14, 0.91, 0.50, contamination=0.0)  # a group of one seed: SE 0
    args = ["--fits-dir", str(tmp_path), "--method", "rddpm", "--variant-method", w]
    assert per_fit_rule.main(args) == 0
    assert capsys.readouterr().out.rstrip().endswith("FAIL")
    assert per_fit_rule.main([*args, "--mean-over-seeds", "--out", str(tmp_path / "m.md")]) == 0
    out = capsys.readouterr().out
    # sig 0.3: d = −0.002, SE = SD(−0.03, 0.01, 0.014) / √3 = 0.0140 → passes; mean over groups (−0.002 + 0.01) / 2
    assert "| sig | 0.3 | 14,15,16 | 0.900 → 0.898 | -0.0020 ± 0.0140 |" in out and "| sig | 0 | 14 |" in out
    assert "groups: 2 (4 paired fits); mean Δ pixel AUROC over the groups: +0.0040" in out
    assert "failures (Δ + SE below −tolerance): none" in out and out.rstrip().endswith("PASS")
    assert (tmp_path / "m.md").read_text() == out
    fit(w, "sig", 14, 0.91, 0.45, contamination=0.0)  # one seed, AUPRC −0.05, no SE to hide behind
    for seed in (14, 15, 16):
        fit(w, "sig", seed, 0.88, 0.50)  # d = −0.02 on every seed: SE 0, fails
    assert per_fit_rule.main([*args, "--mean-over-seeds"]) == 0
    out = capsys.readouterr().out
    assert "failures (Δ + SE below −tolerance): sig 0 (pixel_auroc +0.0100 ± 0.0000, pixel_auprc -0.0500" in out
    assert "sig 0.3 (pixel_auroc -0.0200 ± 0.0000" in out and out.rstrip().endswith("FAIL")


def test_larger_test_rescores_a_saved_fit_on_more_test_samples(tmp_path, capsys):
    fits, models, out = tmp_path / "fits", tmp_path / "models", tmp_path / "out"
    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rddpm;rpca"]
    assert generalise.main([*argv, "--variants", "base", "--out", str(fits), "--save-models", str(models)]) == 0
    argv = ["--models", str(models), "--fits", str(fits), "--datasets", "forging", "--n-test", "24", "--iforest"]
    argv += ["--variants", "base;map_structure=auto", "--variant", "map_structure=auto", "--out", str(out)]
    capsys.readouterr()
    assert larger_test.main(argv) == 0
    text = capsys.readouterr().out
    assert "map_structure=auto − base, sample AUROC on 24 test samples, 1 fits:" in text
    rows = list(csv.DictReader((out / "larger_test.csv").open()))
    assert [r["scoring"] for r in rows] == ["base", "map_structure=auto", "iforest"]  # one diffusion fit (not rpca)
    assert all(0.0 <= float(r["sample_auroc"]) <= 1.0 for r in rows)
    assert larger_test.main([*argv, "--base", "nope"]) == 2
    assert larger_test.main([*argv[:4], "--datasets", "rolling"]) == 2
    # the whole-sample scores of the same saved fit (DenoisingTypicality beside the map score and IsolationForest)
    argv = ["--models", str(models), "--fits", str(fits), "--datasets", "forging", "--n-test", "24"]
    assert denoise_score.main([*argv, "--ts", "5,20", "--draws", "1", "--combined", "--out", str(out)]) == 0
    (row,) = json.loads((out / "denoise_score.json").read_text())
    assert set(row) >= {"map_score", "denoise", "denoise_abs", "t=5", "t=20", "iforest", "max_z", "mean_z"}
    assert all(0.0 <= row[k] <= 1.0 for k in row if k not in ("dataset", "seed"))


def test_trim_profile_counts_what_each_loss_drops():
    # map_structure=none: the map choice after training (the slow part of a 4-step fit) records nothing here
    lts = "rddpm:self_clean=false,map_structure=none"
    drawn, trimmed, share = trim_profile.trim_profile("forging", lts, 0.0, 0, "quick", 4)
    assert drawn.sum() == pytest.approx(1.0) and trimmed.sum() == pytest.approx(1.0)
    assert share == pytest.approx(3 / 16)  # LTS keeps ceil(0.8 · 16) = 13 of each batch of 16
    _, none, zero = trim_profile.trim_profile("forging", "ddpm", 0.0, 0, "quick", 4)
    assert zero == 0.0 and none.sum() == 0.0


def test_structure_choice_reruns_the_detectors_own_choice_on_saved_models(tmp_path, capsys):
    """generalise --save-models keeps each diffusion fit; structure_choice runs map_structure="auto" on it and sets
    the choice beside the cached test AUROCs of both maps."""
    fits, models, out = tmp_path / "fits", tmp_path / "models", tmp_path / "out"
    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rddpm"]
    argv += ["--variants", "map_structure=none;map_structure=bulk", "--out", str(fits), "--save-models", str(models)]
    assert generalise.main(argv) == 0
    (model,) = models.glob("*.pt")
    record = json.loads((fits / f"{model.stem}.json").read_text())["variants"]
    assert structure_choice.main(["--models", str(models), "--fits", str(fits), "--out", str(out)]) == 0
    (row,) = csv.DictReader((out / "choice.csv").open())
    assert row["choice"] in ("none", "bulk") and row["dataset"] == "forging"
    chosen = record["map_structure=bulk" if row["choice"] == "bulk" else "map_structure=none"]["pixel_auroc"]
    assert float(row["test_chosen"]) == chosen
    none, bulk = float(row["injected_none"]), float(row["injected_bulk"])
    assert row["choice"] == ("bulk" if none < 0.6 and bulk > none + 0.05 else "none")
    assert "| forging |" in capsys.readouterr().out


def test_structure_choice_finds_the_cell_of_a_fit_made_under_older_scoring_defaults():
    """A fit cached as "rddpm" before n_reconstructions (1 → 4) and map_structure (none → auto) changed has a key
    that today's "rddpm" no longer resolves to; its recorded base_params spell the method it was."""
    from rddpm_signals.harness.cells import Cell

    old = Cell("forging", "rddpm:n_reconstructions=1,map_structure=none", 0.2, 0, "smoke")
    record = {"dataset": "forging", "method": "rddpm", "contamination": 0.2, "seed": 0}
    record["base_params"] = {"n_reconstructions": 1, "map_structure": "none"}
    assert Cell("forging", "rddpm", 0.2, 0, "smoke").key() != old.key()
    assert structure_choice._cell_of(record, old.key()).resolved() == old.resolved()
    newer = Cell("forging", "rddpm:map_structure=none", 0.2, 0, "smoke")  # four draws already the default
    record["base_params"]["n_reconstructions"] = 4
    assert structure_choice._cell_of(record, newer.key()).resolved() == newer.resolved()
    with pytest.raises(ValueError, match="no preset reproduces"):
        structure_choice._cell_of(record, "0" * 16)


def test_generalise_reuse_models_scores_new_variants_of_a_saved_fit_without_refitting(tmp_path, monkeypatch):
    """--reuse-models loads the saved fit to score a new variant instead of refitting it."""
    from rddpm_signals import RobustDiffusion

    fits, models = tmp_path / "fits", tmp_path / "models"
    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rddpm", "--out"]
    argv += [str(fits), "--save-models", str(models)]
    assert generalise.main([*argv, "--variants", "base"]) == 0
    (path,) = fits.glob("*.json")
    first = json.loads(path.read_text())
    assert first["base_params"]["n_reconstructions"] == RobustDiffusion().n_reconstructions  # what "base" meant

    def refuse(*args, **kwargs):
        raise AssertionError("refitted")

    monkeypatch.setattr(RobustDiffusion, "fit", refuse)
    # the default's own setting spelt out: a new variant, scored on the loaded model exactly as base on the fitted one
    same = f"n_reconstructions={RobustDiffusion().n_reconstructions}"
    assert generalise.main([*argv, "--reuse-models", "--variants", f"base;{same}"]) == 0
    second = json.loads(path.read_text())
    assert second["fit_s"] == first["fit_s"] and set(second["variants"]) == {"base", same}
    for metric in ("pixel_auroc", "pixel_auprc", "sample_auroc"):
        assert second["variants"][same][metric] == first["variants"]["base"][metric]
    with pytest.raises(AssertionError, match="refitted"):  # without the flag a new variant refits
        generalise.main([*argv, "--variants", "base;n_reconstructions=3"])  # not the default


def test_model_seed_reseeds_only_the_network_and_pairs_two_methods(tmp_path, capsys, monkeypatch):
    """Model seed = data seed is the harness fit itself; another model seed moves the metrics; with two methods the
    paired difference is printed; a second run refits nothing; a baseline is refused."""
    from rddpm_signals import RobustDiffusion

    argv = ["--dataset", "forging", "--contamination", "0.2", "--preset", "smoke", "--seed", "0"]
    fits = "rddpm;rddpm:clean_rule=test"
    assert model_seed.main([*argv, "--model-seeds", "0,1", "--fits", fits, "--out", str(tmp_path / "ms")]) == 0
    paths = sorted((tmp_path / "ms").glob("*.json"))
    records = [json.loads(p.read_text()) for p in paths]
    assert len(records) == 4 and {r.get("model_seed", r["seed"]) for r in records} == {0, 1}
    by = {(r["method"], r.get("model_seed", r["seed"])): r["variants"]["base"] for r in records}
    generalise.main(
        ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rddpm"]
        + ["--out", str(tmp_path / "g")]
    )
    (path,) = (tmp_path / "g").glob("*.json")
    assert path.name in {p.name for p in paths}  # model seed 0 on data seed 0 is the harness cell, key and all
    cell = json.loads(path.read_text())["variants"]["base"]
    assert [by[("rddpm", 0)][m] for m in ("pixel_auroc", "pixel_auprc")] == [cell["pixel_auroc"], cell["pixel_auprc"]]
    assert by[("rddpm", 0)]["pixel_auroc"] != by[("rddpm", 1)]["pixel_auroc"]
    text = (tmp_path / "ms" / "forging_0.2_s0.md").read_text()
    assert "rddpm:clean_rule=test − rddpm, paired by model seed" in text and "mean ± SD" in text
    capsys.readouterr()

    def refuse(*args, **kwargs):
        raise AssertionError("refitted")

    monkeypatch.setattr(RobustDiffusion, "fit", refuse)
    assert model_seed.main([*argv, "--model-seeds", "0,1", "--fits", fits, "--out", str(tmp_path / "ms")]) == 0
    assert capsys.readouterr().out == text
    with pytest.raises(SystemExit):
        model_seed.main([*argv, "--fits", "rpca", "--out", str(tmp_path / "ms")])


def test_variant_gain_applies_the_preregistered_rule(tmp_path, capsys):
    def fit(name, dataset, seed, base, variant):
        scored = {
            "base": {"pixel_auroc": base[0], "pixel_auprc": base[1], "sample_auroc": 0.5},
            "v": {"pixel_auroc": variant[0], "pixel_auprc": variant[1], "sample_auroc": 0.5},
        }
        record = {"dataset": dataset, "method": "rddpm", "contamination": 0.2, "seed": seed, "variants": scored}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))

    fit("a0", "a", 0, (0.90, 0.50), (0.92, 0.60))
    fit("a1", "a", 1, (0.80, 0.40), (0.80, 0.40))  # mean of seeds: 0.85 → 0.86, 0.45 → 0.50
    fit("low", "low", 0, (0.40, 0.05), (0.30, 0.06))  # below chance, and the variant loses 0.10 there
    fit("c0", "c", 0, (0.90, 0.50), (0.896, 0.495))  # within both tolerances
    args = ["--fits-dir", str(tmp_path), "--variants", "v", "--shaping", "a;low", "--confirm", "c"]
    assert variant_gain.main(args) == 0
    out = capsys.readouterr().out
    assert "| a | shaping | 0,1 | 0.850 → 0.860 (+0.010) | 0.450 → 0.500 (+0.050) |" in out
    assert "verdict: **fails** (low: AUROC -0.100)" in out
    assert variant_gain.main([*args, "--skip-below-chance", "--out", str(tmp_path / "g.md")]) == 0
    assert "verdict: **passes** (low: base AUROC 0.400 < 0.5, not used)" in capsys.readouterr().out
    assert variant_gain.main([*args[:-1], "c;missing"]) == 0
    assert "missing: no fit scored both" in capsys.readouterr().out
    assert variant_gain.main(["--fits-dir", str(tmp_path / "none"), "--variants", "v", "--shaping", "a"]) == 2
    # --base: against another scoring of the same fits (here v → base, the reverse comparison)
    assert variant_gain.main(["--fits-dir", str(tmp_path), "--base", "v", "--variants", "base", "--shaping", "a"]) == 0
    assert "| a | shaping | 0,1 | 0.860 → 0.850 (-0.010) | 0.500 → 0.450 (-0.050) |" in capsys.readouterr().out


def test_smoothing_choice_sets_label_free_picks_against_the_test_best(tmp_path, capsys):
    smoothing_choice = _load("smoothing_choice")
    variants = "n_reconstructions=2;n_reconstructions=2,map_smoothing=1;n_reconstructions=2,map_smoothing=3"
    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rddpm"]
    fits, models = tmp_path / "fits", tmp_path / "models"
    assert generalise.main([*argv, "--variants", variants, "--out", str(fits), "--save-models", str(models)]) == 0
    capsys.readouterr()
    out = tmp_path / "choice"
    args = ["--models", str(models), "--fits", str(fits), "--draws", "2", "--out", str(out)]
    assert smoothing_choice.main(args) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["dataset"] == "forging" and {row["best"], row["inj"], row["tail"]} <= {1.0, 2.0, 3.0}
    (record,) = [json.loads(p.read_text()) for p in fits.glob("*.json")]
    auprc = {s: record["variants"][smoothing_choice._variant(s, 2)]["pixel_auprc"] for s in (1.0, 2.0, 3.0)}
    assert row["regret σ2"] == round(max(auprc.values()) - auprc[2.0], 4)
    assert row["regret inj"] == round(max(auprc.values()) - auprc[row["inj"]], 4) >= 0
    assert "mean AUPRC regret" in (out / "choice.md").read_text()
    assert smoothing_choice.main(["--models", str(tmp_path / "none"), "--fits", str(fits)]) == 2


def test_flagging_k_rule_means_seeds_then_datasets_and_picks_a_complete_k(tmp_path, capsys):
    k_rule = _load("flagging_k_rule")
    fields = ["dataset", "seed", "threshold", "segments_in", "seg_f1"]

    def write(path, rows):
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(dict(zip(fields, r, strict=True)) for r in rows)

    write(
        tmp_path / "a.csv",
        [
            ("a", 0, "tied k=1 (sweep)", "flagged", 0.6),
            ("a", 1, "tied k=1 (sweep)", "flagged", 0.8),  # dataset a at K=1: 0.7
            ("b", 0, "tied k=1 (sweep)", "flagged", 0.5),  # mean over datasets: (0.7 + 0.5) / 2 = 0.6
            ("a", 0, "tied k=2 (sweep)", "flagged", 0.9),
            ("a", 1, "tied k=2 (sweep)", "flagged", 0.9),
            ("b", 0, "tied k=2 (sweep)", "all", 0.99),  # segments in all records: not counted
            ("b", 0, "stored default", "flagged", 0.99),  # not a tied row
            ("a", 0, "tied k=3 (sweep)", "flagged", 0.1),
        ],
    )
    write(
        tmp_path / "b.csv", [("b", 0, "tied k=2 (sweep)", "flagged", 0.7), ("a", 0, "tied k=1 (sweep)", "flagged", 0.2)]
    )
    fits = "a:0;a:1;b:0"
    assert k_rule.main(["--csv", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--fits", fits]) == 0
    out = capsys.readouterr().out
    assert "| 1 | 0.200 | 0.800 | 0.500 | 0.500 |" in out  # the later file's a:0 wins: ((0.2 + 0.8) / 2 + 0.5) / 2
    assert "| 2 | 0.900 | 0.900 | 0.700 | 0.800 |" in out
    assert "| 3 | 0.100 | – | – | 0.100 (incomplete) |" in out
    assert out.strip().endswith("rule's K: 2")
    assert k_rule.main(["--csv", str(tmp_path / "none.csv"), "--fits", fits]) == 2


def test_oracle_cleaning_holds_out_exactly_the_true_mask(tmp_path, capsys, monkeypatch):
    """The oracle fit holds out the true training mask and nothing else, compares with cached fits of the same cells,
    refits nothing on a rerun, restores the cleaning class and refuses a method that does not self-clean."""
    from rddpm_signals import RobustDiffusion, cleaning
    from rddpm_signals.harness.cells import Cell, load_cell_data

    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--seeds", "0"]
    argv += ["--fits-dir", str(tmp_path / "g"), "--out", str(tmp_path / "o")]
    generalise.main(
        ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--fits", "rddpm"]
        + ["--out", str(tmp_path / "g")]
    )
    capsys.readouterr()
    init = cleaning.SelfCleaning.__init__
    assert oracle_cleaning.main(argv) == 0
    assert cleaning.SelfCleaning.__init__ is init
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "o").glob("*-oracle-d0.json")]
    truth = load_cell_data(Cell("forging", "rddpm", 0.2, 0, "smoke").resolved()).train_mask
    assert record["excluded"] == pytest.approx(float(truth.mean())) and record["defect_recall"] == 1.0
    (cached,) = [json.loads(p.read_text()) for p in (tmp_path / "g").glob("*.json")]
    text = capsys.readouterr().out
    gap = cached["variants"]["base"]["pixel_auroc"] - record["pixel_auroc"]
    assert f"({gap:+.4f} / " in text and "| forging | 0.2 | 0 |" in text
    assert (tmp_path / "o" / "forging_smoke_c0.2_d0.md").read_text() in text  # one file per contamination level

    def refuse(*args, **kwargs):
        raise AssertionError("refitted")

    monkeypatch.setattr(RobustDiffusion, "fit", refuse)
    assert oracle_cleaning.main(argv) == 0
    assert capsys.readouterr().out == text
    with pytest.raises(ValueError, match="does not self-clean"):
        oracle_cleaning.main([*argv, "--method", "ddpm", "--out", str(tmp_path / "o2")])


def test_oracle_cleaning_can_hold_out_whole_contaminated_samples(tmp_path):
    truth = np.zeros((4, 10), dtype=bool)
    truth[1, 3] = truth[3, 7:9] = True
    whole = oracle_cleaning.oracle_mask(truth, 0, whole_samples=True)
    assert whole.all(axis=1).tolist() == [False, True, False, True] and not whole[[0, 2]].any()
    assert np.array_equal(oracle_cleaning.oracle_mask(truth, 0, whole_samples=False), truth)
    argv = ["--datasets", "forging", "--contamination", "0.2", "--preset", "smoke", "--seeds", "0"]
    assert oracle_cleaning.main([*argv, "--whole-samples", "--out", str(tmp_path)]) == 0
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*-oracle-d0-whole.json")]
    from rddpm_signals.harness.cells import Cell, load_cell_data

    truth = np.asarray(load_cell_data(Cell("forging", "rddpm", 0.2, 0, "smoke").resolved()).train_mask, dtype=bool)
    assert record["whole_samples"] and record["excluded"] == pytest.approx(float(truth.any(axis=1).mean()))
    with pytest.raises(SystemExit):
        oracle_cleaning.main([*argv, "--whole-samples", "--dilate", "2", "--out", str(tmp_path)])


def test_oracle_cleaning_can_take_its_mask_from_another_contamination_level(tmp_path):
    """``--mask-from``: the clean draw's fit holds out the samples the contaminated draw's oracle loses."""
    from rddpm_signals.harness.cells import Cell, load_cell_data

    argv = ["--datasets", "forging", "--contamination", "0", "--preset", "smoke", "--seeds", "0", "--whole-samples"]
    assert oracle_cleaning.main([*argv, "--mask-from", "0.2", "--out", str(tmp_path)]) == 0
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*-oracle-d0-whole-from0.2.json")]
    truth = np.asarray(load_cell_data(Cell("forging", "rddpm", 0.2, 0, "smoke").resolved()).train_mask, dtype=bool)
    assert record["mask_from"] == 0.2 and record["contamination"] == 0.0
    assert truth.any(axis=1).mean() > 0 and record["excluded"] == pytest.approx(float(truth.any(axis=1).mean()))
    assert record["defect_recall"] is None  # the clean draw has no defect to recall


def test_discord_prior_measures_the_detectors_own_prior(tmp_path, capsys):
    """The benchmark's flags are the ones ``RobustDiffusion(clean_prior="discord")`` holds out (same normalisation,
    same settings), measured against the training labels; the table is printed and written."""
    from rddpm_signals import RobustDiffusion
    from rddpm_signals.harness.cells import Cell, load_cell_data

    argv = ["--datasets", "forging", "--preset", "smoke", "--contamination", "0.3", "--seeds", "0"]
    assert discord_prior.main([*argv, "--out", str(tmp_path)]) == 0
    text = (tmp_path / "forging_smoke.md").read_text()
    assert text in capsys.readouterr().out and "| forging | 0.3 | 0 |" in text
    data = load_cell_data(Cell("forging", "rddpm", 0.3, 0, "smoke").resolved())
    X = np.asarray(data.train_x, dtype=np.float32)
    # the benchmark's own defaults: dilation 2 (§25's) and the library's subsequence length
    det = RobustDiffusion(clean_prior="discord", clean_dilate=2, clean_prior_m=None)
    prior = det.prior_flags(X)
    truth = np.asarray(data.train_mask).reshape(prior.shape).astype(bool)
    row, undilated, wide = discord_prior.prior_rows("forging", "smoke", 0.3, 0, None, [None, "0", "m"])
    assert row["dilate"] == det.clean_dilate and wide["dilate"] == row["m"] > det.clean_dilate
    assert row["defect_recall"] == float(prior[truth].mean()) > 0.3
    assert row["normal_flagged"] == float(prior[~truth.any(axis=1)].mean()) < row["defect_recall"]
    assert undilated["defect_recall"] <= row["defect_recall"] <= wide["defect_recall"]
    assert undilated["normal_flagged"] < wide["normal_flagged"]
    assert discord_prior.prior_rows("forging", "smoke", 0.3, 0, 8, [None])[0]["m"] == 8
    # a data option overrides the preset's (longer samples here), and the table says their length
    assert (
        row["length"] == 64
        and discord_prior.prior_rows("forging", "smoke", 0.3, 0, 8, [None], {"length": 128})[0]["length"] == 128
    )
    assert discord_prior.main([*argv, "--m", "8", "--data", "length=128", "--out", str(tmp_path / "longer")]) == 0
    assert "| forging | 0.3 | 0 | 128 | 8 |" in (tmp_path / "longer" / "forging_smoke.md").read_text()


def test_prior_cost_times_the_default_fits_own_prior_and_its_parts(tmp_path, capsys):
    """Each size gets the default's own prior (the share it holds out is the detector's), positive times for it,
    and the table is printed and written with its rows."""
    from rddpm_signals import RobustDiffusion

    argv = ["--dataset", "forging", "--preset", "smoke", "--sizes", "8,16", "--steps", "2", "--out", str(tmp_path)]
    assert prior_cost.main(argv) == 0
    rows = json.loads((tmp_path / "prior_cost.json").read_text())
    assert [r["train_shape"] for r in rows] == [[8, 4, 64], [16, 4, 64]]
    assert all(r["prior_s"] > 0 and r["points_per_channel"] == r["train_shape"][0] * 64 for r in rows)
    assert (tmp_path / "prior_cost.md").read_text().strip() in capsys.readouterr().out
    data = prior_cost.datasets.load("forging", contamination=0.2, seed=0, n_train=16, n_test=8, length=64)
    params = {**prior_cost.model_params("smoke", "forging"), "random_state": 0, "verbose": False, "device": "cpu"}
    det = RobustDiffusion(dims=1, **{**params, "train_steps": 1}).fit(data.train_x)
    assert det.clean_history_[0, 0] == 0 and rows[1]["prior_share"] == det.clean_history_[0, 2]
    alone = tmp_path / "alone"
    assert prior_cost.main([*argv[:-1], str(alone), "--prior-only"]) == 0
    rows_alone = json.loads((alone / "prior_cost.json").read_text())
    assert [r["prior_share"] for r in rows_alone] == [r["prior_share"] for r in rows]
    assert all(math.isnan(r["rounds_s"]) and math.isnan(r["step_s"]) for r in rows_alone)


def test_round_maps_follows_left_in_defect_points_from_round_to_round():
    """Hand-made: 40 samples of 8 points with unit maps; one learnt defect point (sample 0, point 3) whose map falls
    from 50 to 1 over three rounds and is never held out; one defect held out in every round (sample 1, point 5)."""
    rng = np.random.default_rng(0)
    maps = 1 + 0.1 * rng.random((3, 40, 8))
    maps[:, 0, 3] = [50.0, 10.0, 1.0]
    maps[:, 1, 5] = 50.0
    masks = np.zeros((3, 40, 8), dtype=bool)
    masks[:, 1, 5] = True
    truth = np.zeros((40, 8), dtype=bool)
    truth[0, 3] = truth[1, 5] = True
    kinds = np.array(["dropout", "spike", *[""] * 38])
    summary = round_maps.round_summary(maps, masks, 0.0, truth, kinds)
    assert summary["held_out"] == [pytest.approx(1 / 320, abs=1e-4)] * 3
    assert summary["left_in_defect_points"] == 1
    z = summary["left_in_defect_z"]
    assert z[0] > 10 and z[0] > z[1] > z[2] and abs(z[2]) < 3  # followed down to the bulk
    assert list(summary["left_in_defect_z_by_kind"]) == ["dropout"]  # the spike was held out: nothing left in
    assert summary["left_in_defect_z_by_kind"]["dropout"] == z
    top = summary["top_kept_z"]  # the top 0.5 % of the 319 kept points at the first round: the learnt one and one
    assert top[0] > 10 and abs(top[2]) < 3  # more, so the median is theirs; it falls with the learnt one
    assert summary["kept_z_over_3"][0] == pytest.approx(1 / 319, abs=1e-4) and summary["kept_z_over_3"][2] == 0
    assert summary["caught_by_kind"] == {
        "dropout": {"whole": 0.0, "part": 0.0, "none": 1.0},
        "spike": {"whole": 1.0, "part": 0.0, "none": 0.0},
    }
    # widened by 8 the held-out spike point covers its whole sample; the dropout in sample 0 stays in
    assert summary["widened"]["0"] == summary["widened"]["8"] == {"defect_recall": 0.5, "normal_samples_held_out": 0}
    caught = round_maps.last_round_catch(masks[-1] | truth, truth, kinds, widen=(2,))
    assert caught["caught_by_kind"]["dropout"]["whole"] == 1.0 and caught["widened"]["2"]["defect_recall"] == 1.0


def test_round_maps_closing_fills_gaps_between_flags_of_a_sample_and_never_erodes_one():
    flags = np.zeros((3, 20), dtype=bool)
    flags[0, [0, 4]] = True  # a gap of 3 points from the sample's first point
    flags[1, [5, 12]] = True  # a gap of 6
    flags[2, 19] = True  # a lone flag at the last point
    closed = round_maps.close_flags(flags, 2)
    assert closed[0].tolist() == [True] * 5 + [False] * 15  # 3 <= 2 * 2: filled
    assert closed[1].tolist() == flags[1].tolist()  # 6 > 4: left open, nothing added outside
    assert closed[2].tolist() == flags[2].tolist()  # the end flag kept
    assert np.array_equal(round_maps.close_flags(flags, 3)[1, 5:13], np.ones(8, dtype=bool))
    assert round_maps.close_flags(flags, 0) is flags


def test_round_maps_mask_shapes_split_what_each_shape_holds_out():
    """60 samples of 64 points with flat maps; sample 0 has a defect at points 10-29 whose map stands out at its two
    ends only (points 10-12 and 27-29): closing the gap catches the whole defect, a dilation of 16 catches it too
    but holds out the normal points beside it."""
    rng = np.random.default_rng(1)
    maps = 1 + 0.01 * rng.random((60, 64))
    maps[0, 10:13] = maps[0, 27:30] = 100.0
    truth = np.zeros((60, 64), dtype=bool)
    truth[0, 10:30] = True
    shapes = round_maps.mask_shapes(maps, 0.5, 0.01, truth)
    assert shapes["close 16 + dilate 16"]["defect_recall"] == 1.0
    assert shapes["dilate 16"]["defect_recall"] == 1.0
    assert shapes["dilate 32"]["beside_defects"] >= shapes["dilate 16"]["beside_defects"] > 0
    assert all(s["normal_samples"] == 0 for s in shapes.values())
    assert round_maps.mask_shapes(maps, 0.5, 0.01, np.zeros_like(truth))["dilate 16"]["defect_recall"] is None


def test_round_maps_records_the_rounds_of_the_same_fit_and_reads_them_back(tmp_path, monkeypatch, capsys):
    """Recording the rounds does not change the fit (the generalise.py row of the same cell), keeps one map per
    round, and a second run reads the cache instead of refitting."""
    argv = ["--dataset", "dev_signals", "--preset", "smoke", "--contamination", "0.3", "--seed", "0"]
    assert round_maps.main([*argv, "--out", str(tmp_path / "rounds")]) == 0
    (saved,) = (tmp_path / "rounds").glob("*.npz")
    with np.load(saved) as f:
        assert f["maps"].shape == f["masks"].shape and f["maps"].shape[1:] == (20, 64)
        rounds = len(f["steps"])
    summary = json.loads(saved.with_suffix(".rounds.json").read_text())
    assert rounds >= 2 and len(summary["kept_z_over_3"]) == rounds
    plain = generalise.run_fit("dev_signals", "rddpm", 0.3, 0, "smoke", ["base"], tmp_path / "plain")
    metrics = ("pixel_auroc", "pixel_auprc", "sample_auroc")
    assert [summary["test"][k] for k in metrics] == [plain["variants"]["base"][k] for k in metrics]
    printed = capsys.readouterr().out
    assert "left-in defect points" in printed and "last round's discoveries, close 32 + dilate 16" in printed
    assert set(summary["shapes"]) == {name for name, _, _ in round_maps.SHAPES}
    monkeypatch.setattr(round_maps, "run_fit", lambda *a, **k: pytest.fail("refitted a cached cell"))
    assert round_maps.main([*argv, "--out", str(tmp_path / "rounds")]) == 0
    with pytest.raises(ValueError, match="no self-cleaning rounds"):
        round_maps.main([*argv, "--method", "ddpm", "--out", str(tmp_path / "none")])


def test_window_edges_counts_the_record_points_no_kept_window_shows(tmp_path, capsys):
    positions = np.array([[0, 0], [0, 2], [0, 4]])  # windows of 4 points every 2 on one record of 8
    truth = np.zeros((3, 4), dtype=bool)
    truth[1, 2:] = truth[2, :2] = True  # record points 4-5, in windows 1 and 2
    keep_two = np.array([False, True, False])  # window 1 dropped: window 2 still shows points 4-5
    assert window_edges.unseen(keep_two, positions, truth) == (0.0, 0.0)
    defect, normal = window_edges.unseen(np.array([False, True, True]), positions, truth)
    assert defect == 1.0 and normal == pytest.approx(2 / 6)  # points 6-7 were only in window 2
    assert "defect points held out 0.500" in window_edges.held(keep_two, truth)
    argv = ["--dataset", "val_long_record", "--seed", "0", "--rounds", str(tmp_path)]
    assert window_edges.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "round_maps.py" in err and "\n" not in err
    # a whole run on a tiny long-record cell: the flags recomputed from its last round are the fit's own drops
    cell = ["--dataset", "long_record", "--preset", "smoke", "--contamination", "0.3", "--seed", "0"]
    assert round_maps.main([*cell, "--out", str(tmp_path / "rounds")]) == 0
    assert window_edges.main([*cell, "--rounds", str(tmp_path / "rounds")]) == 0
    (edges,) = (tmp_path / "rounds").glob("*.edges.txt")
    text = edges.read_text()
    assert "prior, spread across windows): the windows holding one equal the fit's drops: True" in text
    held = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith(("as trained", "flags spread"))]
    as_trained, spread = held
    assert as_trained == spread  # this default already spreads its flags: spreading them again changes nothing


def test_prior_evidence_reports_what_the_cells_own_prior_flags(tmp_path, capsys):
    from rddpm_signals.harness.cells import Cell, build_detector, load_cell_data

    argv = ["--datasets", "forging", "--preset", "smoke", "--contamination", "0.3", "--seeds", "0"]
    assert prior_evidence.main([*argv, "--out", str(tmp_path)]) == 0
    text = (tmp_path / "forging_smoke.md").read_text()
    assert text.strip() in capsys.readouterr().out and "| forging | 0.3 | 0 |" in text
    row = json.loads((tmp_path / "forging_smoke.json").read_text())[0]
    resolved = Cell("forging", "rddpm", 0.3, 0, "smoke").resolved()
    data = load_cell_data(resolved)
    flags = build_detector(resolved, 1).prior_flags(np.asarray(data.train_x, dtype=np.float32))
    truth = np.asarray(data.train_mask).reshape(flags.shape).astype(bool)
    assert row["samples_flagged"] == float(flags.any(axis=1).mean()) and row["points_flagged"] == float(flags.mean())
    assert row["defect_recall"] == float(flags[truth].mean()) > row["points_flagged"]
    for method, reason in (("ddpm", "no cleaning prior"), ("rpca", "not a RobustDiffusion")):
        assert prior_evidence.main([*argv, "--method", method, "--out", str(tmp_path / method)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and reason in err and "\n" not in err


def test_prior_evidence_passes_a_long_records_positions_to_the_record_prior(tmp_path, capsys):
    argv = ["--datasets", "long_record", "--preset", "smoke", "--contamination", "0.3", "--seeds", "0"]
    method = "rddpm:clean_prior_reference=record,clean_prior_k=2"
    assert prior_evidence.main([*argv, "--method", method, "--out", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "long_record_smoke.json").read_text())[0]
    assert row["defect_recall"] > row["points_flagged"]


def test_event_neighbours_reports_each_event_against_both_references(tmp_path, capsys):
    from rddpm_signals.cleaning import record_point_index
    from rddpm_signals.harness.cells import Cell, load_cell_data, resolved_key

    argv = ["--datasets", "long_record", "--preset", "smoke", "--contamination", "0,0.3", "--seeds", "0"]
    assert event_neighbours.main([*argv, "--k-max", "2", "--events", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "long_record_smoke.md").read_text()
    assert text.strip() in capsys.readouterr().out
    events = load_cell_data(Cell("long_record", "rddpm", 0.3, 0, "smoke").resolved()).meta["train_events"]
    rows = [line for line in text.splitlines() if line.startswith("| long_record 0.3 s0 |")]
    assert len(rows) == 1 + len(events)  # the cell's row (0 % has no events: no row), then one per event
    assert [r.split("|")[2].strip() for r in rows[1:]] == [kind for kind, _, _ in events]
    resolved = Cell("long_record", "rddpm", 0.3, 0, "smoke").resolved()
    data = load_cell_data(resolved)
    result = event_neighbours.cell_neighbours(data)
    assert all(e["k=1"] > 0 and e["halves"] > 0 for e in result["events"])
    # --rounds: a fit's last round holding out the first event's points and nothing else
    index, _ = record_point_index(data.meta["train_layout"].positions, data.train_x.shape[-1])
    _, a, b = events[0]
    masks = np.zeros((2, *index.shape), dtype=bool)
    masks[-1] = (index >= a) & (index < b)
    np.savez(tmp_path / f"{resolved_key(resolved)}.npz", masks=masks)
    held = event_neighbours.held_by_fit(data, resolved, tmp_path)
    assert held[0] == 1.0 and held[1:] == [0.0] * (len(events) - 1)
    argv_rounds = [*argv, "--k-max", "1", "--events", "--rounds", str(tmp_path), "--out", str(tmp_path / "r")]
    assert event_neighbours.main(argv_rounds) == 0
    assert "| held out by the fit |" in (tmp_path / "r" / "long_record_smoke.md").read_text()
    assert event_neighbours.main(["--datasets", "forging", "--preset", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not one record cut into windows" in err and "\n" not in err
