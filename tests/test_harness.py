"""The benchmark harness: method parsing, caching, resuming, determinism and its outputs."""

import csv

import numpy as np
import pytest

from rddpm_signals import cleaning
from rddpm_signals.harness import Cell, parse_method, run_cell
from rddpm_signals.harness import cells as cells_module
from rddpm_signals.harness import main as benchmark_main
from rddpm_signals.harness.report import delta_of


def test_parse_method_with_overrides():
    spec = parse_method("rddpm:loss=tukey,delta=3,self_clean=true,reverse_steps=None")
    assert spec.base == "rddpm" and spec.is_diffusion
    assert spec.overrides == {"loss": "tukey", "delta": 3, "self_clean": True, "reverse_steps": None}
    assert parse_method("clean").trains_clean and not parse_method("rpca").is_diffusion
    with pytest.raises(ValueError, match="unknown method"):
        parse_method("gan")
    with pytest.raises(ValueError, match="key=value"):
        parse_method("rddpm:delta")


def test_delta_of_labels():
    assert delta_of("rddpm:loss=huber,delta=0.3") == 0.3
    assert delta_of("rddpm:loss=l1") is None


def test_cell_key_changes_with_every_setting(monkeypatch):
    base = Cell("forging", "rddpm", 0.2, 0, "smoke")
    keys = {
        base.key(),
        Cell("forging", "rddpm", 0.1, 0, "smoke").key(),
        Cell("forging", "rddpm", 0.2, 1, "smoke").key(),
        Cell("forging", "rddpm:delta=0.5", 0.2, 0, "smoke").key(),
        Cell("rolling", "rddpm", 0.2, 0, "smoke").key(),
    }
    assert len(keys) == 5
    # settings of self-cleaning count only when it is on
    off = Cell("forging", "rddpm:self_clean=false", 0.2, 0, "smoke")
    assert off.key() == Cell("forging", "rddpm:self_clean=false,clean_rounds=7", 0.2, 0, "smoke").key()
    assert base.key() != Cell("forging", "rddpm:clean_rounds=7", 0.2, 0, "smoke").key()
    # a parameter added later counts only away from the value that reproduces the code before it
    assert Cell("forging", "rddpm:clean_refits=0", 0.2, 0, "smoke").key() == base.key()
    assert Cell("forging", "rddpm:clean_refits=1", 0.2, 0, "smoke").key() != base.key()
    # "auto" cleaning settings are keyed by what they resolve to: a changed resolution is a new key
    w3pdm = "rddpm:clean_rule=test,clean_rounds=10,clean_dilate=16,clean_prior=discord,clean_prior_m=64"
    explicit = Cell("forging", w3pdm, 0.2, 0, "smoke")
    before = {cell: cell.key() for cell in (base, explicit, off)}
    with monkeypatch.context() as patched:
        patched.setattr(cleaning, "auto_prior_m", lambda length: 2)
        assert {cell: cell.key() == key for cell, key in before.items()} == {base: False, explicit: True, off: True}
    assert base.key() == before[base] and "auto_cleaning" not in explicit.resolved()
    # "clean" trains at contamination 0 whatever the cell's level: one key (one fit) for every level
    assert Cell("forging", "clean", 0.2, 0, "smoke").key() == Cell("forging", "clean", 0.3, 0, "smoke").key()
    assert Cell("forging", "clean", 0.2, 0, "smoke").resolved()["train_contamination"] == 0.0


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


ARGS = [
    "--preset",
    "smoke",
    "--datasets",
    "forging",
    "--methods",
    "rddpm,rpca,ssd",
    "--contamination",
    "0,0.2",
    "--jobs",
    "1",
    "--no-plots",
]


def test_same_command_twice_gives_identical_rows(tmp_path):
    benchmark_main([*ARGS, "--out", str(tmp_path / "a")])
    benchmark_main([*ARGS, "--out", str(tmp_path / "b")])
    a, b = _rows(tmp_path / "a" / "results.csv"), _rows(tmp_path / "b" / "results.csv")
    assert len(a) == 6 and a == b
    summary = (tmp_path / "a" / "summary.md").read_text()
    assert summary.count("| rddpm |") == 2  # the results table and the gap-to-own-clean table
    assert "gap to the same method trained clean" in summary


def test_interrupted_run_resumes_without_recomputing(tmp_path, monkeypatch):
    out = tmp_path / "run"
    calls = []
    real = cells_module.build_detector

    def counting(resolved, dims):
        calls.append(resolved["detector"])
        return real(resolved, dims)

    monkeypatch.setattr(cells_module, "build_detector", counting)
    # "Interrupt" after the first method: run a subset, then the whole grid.
    benchmark_main([*ARGS[:5], "rpca", *ARGS[6:], "--out", str(out)])
    assert calls == ["RPCA", "RPCA"]
    benchmark_main([*ARGS, "--out", str(out)])
    assert calls == ["RPCA", "RPCA", "RobustDiffusion", "SSD", "RobustDiffusion", "SSD"]
    benchmark_main([*ARGS, "--out", str(out)])
    assert len(calls) == 6


def test_cell_result_fields(tmp_path):
    result = run_cell(Cell("rolling", "ddpm", 0.2, 0, "smoke"), tmp_path)
    for key in ("pixel_auroc", "pixel_auprc", "aupro", "f1_max", "sample_auroc", "fit_s", "score_s"):
        assert key in result
    assert 0.0 <= result["pixel_auroc"] <= 1.0
    assert len(list(tmp_path.glob("*.npz"))) == 1


def test_full_outputs_with_plots(tmp_path):
    out = tmp_path / "p"
    benchmark_main(
        [
            "--preset",
            "smoke",
            "--methods",
            "rddpm:loss=huber,delta=0.5;rddpm:loss=l1;ddpm;clean;ssd",
            "--jobs",
            "1",
            "--out",
            str(out),
        ]
    )
    for name in (
        "results.csv",
        "timings.csv",
        "summary.md",
        "auroc_vs_contamination.png",
        "delta_sensitivity.png",
        "examples_forging.png",
        "examples_rolling.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert "gap to `clean`" in (out / "summary.md").read_text()


def test_bad_arguments_exit_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        benchmark_main(["--preset", "smoke", "--methods", "nonsense", "--out", str(tmp_path)])
    assert "unknown method" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark_main(["--contamination", "1.5"])


def test_equivalent_spellings_share_one_key():
    paper = Cell("forging", "rddpm_paper", 0.2, 0, "smoke")
    spelled = "rddpm:loss=huber,delta=1.0,self_clean=false,map_normalization=none,map_structure=none"
    spelled = Cell("forging", spelled, 0.2, 0, "smoke")
    assert paper.key() == spelled.key()
    assert Cell("forging", "clean", 0.2, 0, "smoke").key() == Cell("forging", "rddpm", 0.0, 0, "smoke").key()


def test_auto_layout_recipe_is_keyed_as_what_it_resolves_to_on_each_dataset():
    """The harness fits without ``overlapping=``: on the long records (overlapping windows) the default is keyed and
    built as ``clean_samples="flagged", loss="mse", clean_across_windows=True``, elsewhere as ``False``, ``"lts"`` and
    ``False`` (so the cells cached before "auto" keep their keys)."""
    from rddpm_signals.harness.cells import build_detector

    for dataset, preset in (("long_record", "develop"), ("val_long_record", "validate")):
        default = Cell(dataset, "rddpm", 0.2, 0, preset)
        assert default.key() == Cell(dataset, "rddpm:loss=mse,clean_samples=flagged", 0.2, 0, preset).key()
        assert default.key() == Cell(dataset, "rddpm:clean_samples=flagged", 0.2, 0, preset).key()
        assert default.key() != Cell(dataset, "rddpm:clean_samples=flagged,loss=lts", 0.2, 0, preset).key()
        kept = Cell(dataset, "rddpm:clean_samples=false", 0.2, 0, preset)  # windows kept whole: the trim stays
        assert kept.key() == Cell(dataset, "rddpm:clean_samples=false,loss=lts", 0.2, 0, preset).key()
        assert default.key() == Cell(dataset, "rddpm:clean_across_windows=true", 0.2, 0, preset).key()
        assert default.key() != Cell(dataset, "rddpm:clean_across_windows=false", 0.2, 0, preset).key()
        built = build_detector(default.resolved(), dims=1)
        assert (built.clean_samples, built.loss, built.clean_across_windows) == ("flagged", "mse", True)
        wide = default.resolved({"hop": 128})  # windows that no longer overlap: separate samples
        assert wide["params"].get("clean_samples", False) is False and wide["params"]["loss"] == "lts"
        unclean = Cell(dataset, "rddpm:self_clean=false", 0.2, 0, preset)  # nothing dropped: the trim stays
        assert unclean.key() == Cell(dataset, "rddpm:self_clean=false,loss=lts", 0.2, 0, preset).key()
    for dataset in ("forging", "dev_signals"):
        default = Cell(dataset, "rddpm", 0.2, 0, "develop")
        assert default.key() == Cell(dataset, "rddpm:clean_samples=false,loss=lts", 0.2, 0, "develop").key()
        built = build_detector(default.resolved(), dims=1)
        assert (built.clean_samples, built.loss) == (False, "lts")


def test_built_detectors_have_the_parameters_their_method_names():
    """The key omits a parameter that holds its original value (map_structure="none"); the detector built from the
    resolved cell must still get that value, not the library's newer default ("auto")."""
    from rddpm_signals import RobustDiffusion
    from rddpm_signals.harness.cells import build_detector
    from rddpm_signals.harness.presets import model_params
    from rddpm_signals.methods import METHODS

    for name, method in METHODS.items():
        if method.detector != "RobustDiffusion":
            continue
        cell = Cell("forging", name, 0.2, 0, "smoke")
        built = build_detector(cell.resolved(), dims=1).get_params()
        wanted = RobustDiffusion(dims=1, **{**model_params("smoke", "forging"), **method.params}).get_params()
        wanted.update(random_state=0, verbose=False)
        if wanted["self_clean"] and wanted["clean_samples"] == "auto":
            wanted["clean_samples"] = False  # what "auto" resolves to on forging's separate samples
        if wanted["loss"] == "auto":
            wanted["loss"] = "lts"
        if wanted["self_clean"] and wanted["clean_across_windows"] == "auto":
            wanted["clean_across_windows"] = False  # likewise
        listed = {k: list(v) if isinstance(v, tuple) else v for k, v in wanted.items()}  # as the key stores them
        assert built == listed, name
    pinned = build_detector(Cell("forging", "rddpm:map_structure=none", 0.2, 0, "smoke").resolved(), dims=1)
    assert pinned.map_structure == "none"
    assert build_detector(Cell("forging", "rddpm", 0.2, 0, "smoke").resolved(), dims=1).map_structure == "auto"
    assert build_detector(Cell("forging", "ddpm", 0.2, 0, "smoke").resolved(), dims=1).map_structure == "none"


def _load_benchmark(name: str):
    """The module of ``benchmarks/<name>.py`` (the folder is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _per_defect_columns(dataset: str, out) -> tuple[list[str], str]:
    """``benchmarks/per_defect.py`` on ``dataset``'s smoke cell at 0 %: its table's columns after "contamination",
    and the table."""
    args = ["--dataset", dataset, "--preset", "smoke", "--contamination", "0", "--out", str(out)]
    assert _load_benchmark("per_defect").main(args) == 0
    table = (out / f"{dataset}_rddpm.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| contamination"))
    return [c.strip() for c in header.strip("|").split("|")][1:], table


def test_per_defect_benchmark_reports_every_kind(tmp_path):
    from rddpm_signals.datasets.rolling import DEFECTS as ROLLING_DEFECTS

    columns, table = _per_defect_columns("rolling", tmp_path)
    assert columns[0] == "all" and len(columns) > 1 and set(columns[1:]) <= set(ROLLING_DEFECTS)
    assert "| 0% |" in table


def test_per_defect_benchmark_scores_a_long_record_per_event_kind(tmp_path):
    from rddpm_signals.datasets.long_record import point_maps

    columns, _ = _per_defect_columns("long_record", tmp_path)
    data = cells_module.load_cell_data(Cell("long_record", "rddpm", 0.0, 0, "smoke").resolved())
    assert columns == ["all", *sorted({kind for kind, _, _ in data.meta["test_events"]})]
    # a kind's AUROC pools its events' points with the record's normal points: a map that is 1 on one kind's events
    # and 0 elsewhere scores 1 for that kind, 0.5 for the others
    maps, mask = point_maps(data, np.zeros(data.test_x.shape[:1] + data.test_x.shape[2:]))
    kind = columns[1]
    for k, a, b in data.meta["test_events"]:
        maps[0, a:b] = float(k == kind)
    scores = _load_benchmark("per_defect").per_kind_auroc_on_record(maps, mask, data.meta["test_events"])
    assert scores[kind] == 1.0 and all(scores[k] == 0.5 for k in columns[2:])


def test_cleaning_benchmark_reports_each_rule_and_restores_the_library_rule(tmp_path):
    from rddpm_signals import cleaning

    module = _load_benchmark("cleaning")
    library_rule = cleaning.flag_points
    args = ["--dataset", "forging", "--preset", "smoke", "--contamination", "0.3", "--out", str(tmp_path)]
    assert module.main([*args, "--rules", "default,random:0.5,after_dilation:0.2"]) == 0
    assert cleaning.flag_points is library_rule
    rows = [line for line in (tmp_path / "forging_0.3.md").read_text().splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["default", "random:0.5", "after_dilation:0.2"]
    excluded = {row.split("|")[1].strip(): float(row.split("|")[4]) for row in rows}
    assert 0.4 < excluded["random:0.5"] < 0.6 and excluded["after_dilation:0.2"] <= 0.21
    with pytest.raises(ValueError, match="share"):
        module.main([*args, "--rules", "random"])
    with pytest.raises(ValueError, match="self-clean"):
        module.main([*args, "--method", "ddpm"])
    with pytest.raises(ValueError, match="clean_rule='test'"):  # 1D signals flag by the test rule by default
        module.main([*args, "--method", "rddpm"])


def test_plots_give_every_method_its_own_style_and_its_map_its_own_scale(tmp_path, monkeypatch):
    import numpy as np

    from rddpm_signals.harness import report

    methods = [f"m{k}" for k in range(25)]
    styles = report.method_styles(methods)
    assert len({(s["color"], s["marker"]) for s in styles.values()}) == 25
    assert len({s["color"] for s in list(styles.values())[:20]}) == 20  # no colour repeats among 20 methods
    assert report.method_styles(methods[:3]) == {m: styles[m] for m in methods[:3]}  # fixed by method order

    figures = []
    monkeypatch.setattr(report, "_savefig", lambda fig, path: figures.append(fig))
    rows = [
        {"dataset": "d", "method": m, "contamination": c, "seed": 0, "pixel_auroc": 0.5 + 0.01 * k}
        for k, m in enumerate(methods[:12])
        for c in (0.0, 0.2)
    ]
    report.plot_contamination(rows, methods[:12], tmp_path / "c.png")
    lines = [line for line in figures[-1].axes[0].get_lines() if line.get_marker() not in (None, "None", "_")]
    assert len({(str(line.get_color()), line.get_marker()) for line in lines}) == 12
    assert figures[-1].axes[0].get_xlabel() == "training contamination (%)"

    rng = np.random.default_rng(0)
    examples = {
        m: {
            "x": rng.random((1, 1, 8, 10)),
            "map": scale * rng.random((1, 8, 10)),
            "mask": np.zeros((1, 8, 10)),
            **({"recon": rng.random((1, 1, 8, 10))} if m == "a" else {}),
        }
        for m, scale in (("a", 1.0), ("b", 10.0), ("c", 100.0))
    }
    report.plot_examples(examples, "toy", tmp_path / "e.png")
    fig = figures[-1]
    grid = [ax for ax in fig.axes if ax.get_title().startswith("anomaly map")]
    assert len(grid) == 3
    # maps in different units (|x - x̂|, a discord distance, RPCA's sparse part): each map its own colour scale and bar
    tops = [ax.get_images()[0].get_clim()[1] for ax in grid]
    assert np.allclose(tops, [float(examples[m]["map"].max()) for m in examples])
    assert sum("anomaly" in ax.get_ylabel() for ax in fig.axes) == 3  # one labelled colour bar per map
    assert sum(ax.get_title() == "input" for ax in fig.axes) == 3  # column titles on every row
    panels = [ax for ax in fig.axes if ax.get_title() in ("input", "reconstruction") and ax.get_images()]
    signal = {ax.get_images()[0].get_clim() for ax in panels}
    assert len(signal) == 1  # input and reconstruction still share one scale

    examples_1d = {
        m: {"x": rng.random((1, 2, 40)), "map": scale * rng.random((1, 40)), "mask": np.zeros((1, 40))}
        for m, scale in (("a", 0.1), ("b", 3.0))
    }
    report.plot_examples(examples_1d, "toy 1D", tmp_path / "e1.png")
    maps_1d = [ax for ax in figures[-1].axes if ax.get_title().startswith("anomaly map")]
    for ax, m in zip(maps_1d, examples_1d, strict=True):  # the small map fills its own panel, not a flat line
        lo, hi = ax.get_ylim()
        values = examples_1d[m]["map"]
        assert hi < 1.2 * float(values.max()) and hi - lo > 0.8 * float(np.ptp(values))
    assert figures[-1].axes[-1].get_xlabel() == "sample index"


def test_only_long_records_are_graded_per_point():
    """Machine sound carries a test layout (its clips' windows) but no point mask: it is graded on its maps."""
    from types import SimpleNamespace

    from rddpm_signals.harness.cells import _graded

    maps = np.random.default_rng(0).random((3, 4, 8))
    data = SimpleNamespace(meta={"test_layout": object()}, test_mask=maps > 0.5)
    graded_maps, graded_mask = _graded(data, maps)
    assert graded_maps is maps and graded_mask is data.test_mask
