"""Training under ``torchrun`` (2 gloo processes on the CPU) equals one process over the same global batch: the
final weights, loss history, self-cleaning mask and anomaly maps agree to float rounding, and every rank ends with
the same weights. Covers a plain robust loss (Huber), LTS trimming over the global batch (with unequal per-rank
shares), and the default (LTS with self-cleaning, its discord prior profiled share by share)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import TINY_1D
from rddpm_signals import RobustDiffusion
from rddpm_signals.distributed import Shard

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

BASE = {**TINY_1D, "train_steps": 8, "batch_size": 8}
CASES = {
    "huber": {"loss": "huber", "self_clean": False},
    "lts": {"loss": "lts", "self_clean": False, "batch_size": 7},  # shares of 4 and 3 rows; 6 of 7 kept
    "default": {"clean_start": 0.25, "clean_rounds": 2},  # LTS + self-cleaning
}
WORKER = """
import json, sys
import numpy as np
import torch
torch.set_num_threads(1)
import torch.distributed as dist
from rddpm_signals import RobustDiffusion
cases, X, out = json.loads(sys.argv[1]), np.load(sys.argv[2]), sys.argv[3]
rows = []  # batch rows of every training forward pass of this process


def count_rows(module, args, output):
    if module.training and type(module).__name__ == "UNet":
        rows.append(args[0].shape[0])


torch.nn.modules.module.register_module_forward_hook(count_rows)
import rddpm_signals.detector as detector
prior_rows = []  # samples this process profiled for the discord prior
profile = detector.discord_maps


def counting_discord_maps(*args, **kwargs):
    maps = profile(*args, **kwargs)
    prior_rows.append(len(maps))
    return maps


detector.discord_maps = counting_discord_maps
for name, params in cases.items():
    rows.clear()
    prior_rows.clear()
    det = RobustDiffusion(**params).fit(X)  # the library initialises the process group
    state = {f"w.{k}": v for k, v in det.net_.state_dict().items()}
    state["rows"] = torch.tensor(sorted(set(rows)))
    state["world"] = torch.tensor(dist.get_world_size())
    state["prior_rows"] = torch.tensor(prior_rows, dtype=torch.int64)
    state["history"] = torch.from_numpy(det.loss_history_)
    state["map"] = torch.from_numpy(det.anomaly_map(X))
    if hasattr(det, "clean_mask_"):
        state["mask"] = torch.from_numpy(det.clean_mask_)
        state["clean_history"] = torch.from_numpy(det.clean_history_)
    torch.save(state, f"{out}/{name}.rank{dist.get_rank()}.pt")
"""


def _data() -> np.ndarray:
    X = np.random.default_rng(0).normal(size=(12, 1, 32)).astype(np.float32)
    X[3, 0, 10:14] += 6.0  # a defect for the cleaning to find
    return X


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _params(name: str) -> dict:
    params = {**BASE, **CASES[name]}
    params["channel_mult"] = list(params["channel_mult"])
    return params


@pytest.fixture(scope="module")
def distributed_runs(tmp_path_factory) -> Path:
    """Every case fitted once by 2 processes under torchrun; ``{case}.rank{r}.pt`` per case and rank."""
    out = tmp_path_factory.mktemp("ddp")
    np.save(out / "X.npy", _data())
    (out / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2"]
    command += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(out / "worker.py")]
    cases = json.dumps({name: _params(name) for name in CASES})
    done = subprocess.run([*command, cases, str(out / "X.npy"), str(out)], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_equal_one(distributed_runs, name):
    X = _data()
    single = RobustDiffusion(**_params(name)).fit(X)
    ranks = [torch.load(distributed_runs / f"{name}.rank{r}.pt", weights_only=True) for r in range(2)]
    for key in set(ranks[0]) - {"rows", "prior_rows"}:  # every rank ends with bitwise the same weights and maps
        torch.testing.assert_close(ranks[1][key], ranks[0][key], rtol=0, atol=0, msg=f"rank 1 ≠ rank 0 on {key}")
    share = _params(name)["batch_size"] // 2
    assert [r["world"].item() for r in ranks] == [2, 2]
    assert [r["rows"].tolist() for r in ranks] == [[_params(name)["batch_size"] - share], [share]]  # really shared
    got = ranks[0]
    for key, value in single.net_.state_dict().items():
        torch.testing.assert_close(got[f"w.{key}"], value, rtol=0, atol=1e-5, msg=f"weights {key}")
    np.testing.assert_allclose(got["history"].numpy(), single.loss_history_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["map"].numpy(), single.anomaly_map(X), rtol=0, atol=1e-5)
    if single.self_clean:
        np.testing.assert_array_equal(got["mask"].numpy(), single.clean_mask_)
        np.testing.assert_array_equal(got["clean_history"].numpy(), single.clean_history_)
        assert 0 < single.clean_mask_.mean() < 1
        # the 1D default's discord prior: each process profiled its half of the 12 samples, and the gathered
        # prior is the one-process prior (the first row of the cleaning history)
        assert single.clean_settings_["prior"] == "discord"
        assert [r["prior_rows"].tolist() for r in ranks] == [[6], [6]]


def test_shares_are_contiguous_and_cover_the_batch():
    shards = [Shard(rank, 3, torch.device("cpu")).of(8) for rank in range(3)]
    assert [s.sizes for s in shards] == [[3, 3, 2]] * 3
    assert [s.rows for s in shards] == [slice(0, 3), slice(3, 6), slice(6, 8)]
    assert Shard.current() is None  # not launched: the one-process path
