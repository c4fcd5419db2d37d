"""The Ray executor: a sweep's cells and a folder's files as Ray tasks give exactly what the local executor gives.

One local Ray (2 CPUs) serves the module: the benchmark runs in this process on it, and the ``score`` subprocess
joins it through ``--ray-address``. Without Ray installed, only the checks that Ray stays optional run.
"""

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers import TINY_CLI
from rddpm_signals import cli as cli_module
from rddpm_signals.harness import main as benchmark_main

try:
    import ray
except ImportError:
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed: pip install 'rddpm-signals[ray]' (or .[dev])")

SWEEP = [
    "--preset",
    "smoke",
    "--datasets",
    "forging",
    "--methods",
    "rddpm",
    "--contamination",
    "0.2",
    "--seeds",
    "0,1",  # two cells that differ only in their seed: each task must seed itself as the local run does
    "--no-plots",
]
TIMINGS = ("fit_s", "score_s", "score_ms_per_sample")


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    # the module's Ray set RAY_AUTH_MODE=token here: a process that joins it needs that too, and the token in HOME
    env.update({k: v for k, v in os.environ.items() if (k.startswith("RAY_") and k != "RAY_ADDRESS") or k == "HOME"})
    return subprocess.run(
        [sys.executable, "-m", "rddpm_signals.cli", *args], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def cluster():
    """A local Ray of 2 CPUs for the module → its address, for subprocesses to join."""
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def _csv_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _cache(folder: Path) -> dict[str, object]:
    """Every cache file by name: JSON without the wall times, NPZ as a dict of arrays."""
    out: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix == ".json":
            out[path.name] = {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMINGS}
        else:
            with np.load(path) as z:
                out[path.name] = {k: z[k] for k in z.files}
    return out


@needs_ray
def test_sweep_on_ray_gives_the_rows_and_cache_of_the_local_run(tmp_path, cluster):
    benchmark_main([*SWEEP, "--jobs", "1", "--out", str(tmp_path / "local")])
    benchmark_main([*SWEEP, "--executor", "ray", "--out", str(tmp_path / "ray")])
    local, remote = _csv_rows(tmp_path / "local" / "results.csv"), _csv_rows(tmp_path / "ray" / "results.csv")
    assert len(local) == 2 and local[0]["pixel_auroc"] != local[1]["pixel_auroc"]  # the seeds matter
    assert remote == local
    a, b = _cache(tmp_path / "local" / "cache"), _cache(tmp_path / "ray" / "cache")
    assert sorted(a) == sorted(b) and len(a) == 4  # a JSON and an NPZ per cell, under the same keys
    for name in a:
        if name.endswith(".json"):
            assert b[name] == a[name], name
        else:
            assert a[name].keys() == b[name].keys()
            for k in a[name]:
                np.testing.assert_array_equal(b[name][k], a[name][k], err_msg=f"{name}:{k}")
    # a rerun on Ray reads the cache: nothing recomputed, the same rows
    benchmark_main([*SWEEP, "--executor", "ray", "--out", str(tmp_path / "ray")])
    assert _csv_rows(tmp_path / "ray" / "results.csv") == local


@pytest.fixture(scope="module")
def scored(tmp_path_factory, cluster):
    """A tiny model, a folder of 6 strokes, and that folder scored in-process and as Ray tasks."""
    root = tmp_path_factory.mktemp("ray_cli")
    # the files and the model in this process (seconds saved on torch imports); the two scorings as a user runs them
    assert cli_module.main(["example", "forging", str(root / "train"), "--n", "16", "--quiet"]) == 0
    assert cli_module.main(["example", "forging", str(root / "new"), "--split", "test", "--n", "6", "--quiet"]) == 0
    # the plain |x - x̂| map: on this 4-step model it flags segments (the CSV comparison below needs some); the
    # default's map choice is made at fit, so scoring takes the same path on either executor whatever it picks
    tiny = [a + ",map_structure=none" if a.startswith("rddpm:") else a for a in TINY_CLI]
    assert cli_module.main(["fit", str(root / "train"), "--out", str(root / "m.model"), "--quiet", *tiny]) == 0
    runs = {}
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--ray-address", cluster])):
        out, seg = root / f"{name}.nc", root / f"{name}.csv"
        proc = cli("score", str(root / "m.model"), str(root / "new"), "--out", str(out), "--segments", str(seg), *extra)
        assert proc.returncode == 0, proc.stderr
        runs[name] = (out, seg, proc.stdout)
    return runs


@needs_ray
def test_folder_scored_on_ray_writes_the_outputs_of_in_process_scoring(scored):
    (local_nc, local_csv, local_out), (ray_nc, ray_csv, ray_out) = scored["local"], scored["ray"]
    assert ray_out.splitlines()[:-1] == local_out.splitlines()[:-1]  # the summary table (the last line: file names)
    assert ray_csv.read_text() == local_csv.read_text() and local_csv.read_text().count("\n") > 1
    with xr.open_dataset(local_nc) as a, xr.open_dataset(ray_nc) as b:
        xr.testing.assert_identical(b.load(), a.load())  # scores, flags, sources in the same order, attributes
        n = a.sizes["record"]
    assert n == 6
    for i in range(n):
        group = f"records/r{i:05d}"
        with xr.open_dataset(local_nc, group=group) as a, xr.open_dataset(ray_nc, group=group) as b:
            xr.testing.assert_identical(b.load(), a.load())  # maps and signals, bit for bit


def test_without_ray_the_executor_is_one_line_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    code = cli_module.main(["score", "m.model", str(tmp_path), "--out", str(tmp_path / "r.nc"), "--executor", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == cli_module.EXIT_BAD_INPUT and err.count("\n") == 0
    assert "pip install 'rddpm-signals[ray]'" in err and not (tmp_path / "r.nc").exists()
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main([*SWEEP, "--executor", "ray", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and "pip install 'rddpm-signals[ray]'" in err and err.count("\n") == 0
    assert not (tmp_path / "b").exists()


def test_ray_address_without_the_ray_executor_is_refused(tmp_path, capsys):
    code = cli_module.main(["score", "m.model", str(tmp_path), "--out", str(tmp_path / "r.nc"), "--ray-address", "x"])
    assert code == cli_module.EXIT_BAD_INPUT and "--executor ray" in capsys.readouterr().err


def test_importing_the_package_does_not_import_ray():
    code = "import sys, rddpm_signals, rddpm_signals.cli, rddpm_signals.harness; print('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
