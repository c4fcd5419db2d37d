#!/usr/bin/env python
"""Scaling benchmark: training step time in 1 and N processes (``torchrun``, gloo on the CPU / nccl on CUDA) with
the same global batch, and the host syncs of a training step when the loss is read every step (the loop before the
GPU-friendly change, and still the CPU default) against every ``READ_EVERY`` steps (the CUDA default).

Writes ``scaling.csv`` and ``scaling.md`` to ``--out`` and prints the table.

    OMP_NUM_THREADS=1 python benchmarks/scaling.py --out /tmp/scaling            # CPU, 1 and 2 processes (~1 min)
    python benchmarks/scaling.py --device cuda --procs 1 8 --length 4096 --batch-size 64 --steps 200 --out /tmp/sc

(the second line: one command for a GPU machine; ``--procs 1 8`` on 8 GPUs, each process on ``cuda:LOCAL_RANK``).

Host syncs are counted two ways: on the CPU, the Python-level calls made from this package's code that read a
tensor on the host (``float()``, ``.item()``, ``.tolist()``, ``.cpu()``, ``.numpy()``) and the time spent inside
them (torch's own reads of CPU-resident values, such as AdamW's step counters, are left out: they do not wait for
a GPU); syncs made inside torch's C++ (boolean-mask indexing, for one) are not seen there. On CUDA,
``torch.cuda.set_sync_debug_mode("warn")`` reports every synchronising operation, and the count of those warnings
is used instead. On the CPU a "sync" costs nothing (no device to wait for), so the CPU share is only a count; the
share that matters is the CUDA one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from rddpm_signals._io import markdown_table
from rddpm_signals.diffusion import NoiseSchedule, make_noise_fn
from rddpm_signals.distributed import Shard, prepare
from rddpm_signals.losses import make_loss
from rddpm_signals.nets import UNet
from rddpm_signals.training import READ_EVERY, TrainConfig, train

_HOST_READS = ("__float__", "item", "tolist", "cpu", "numpy")


@contextlib.contextmanager
def _counted_host_reads(device: torch.device):
    """Yield a dict that ends up holding ``calls`` (host syncs seen) and ``seconds`` (time inside them; CPU only)."""
    found = {"calls": 0, "seconds": 0.0}
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield found
            finally:
                torch.cuda.set_sync_debug_mode(0)
        found["calls"] = sum("synchroniz" in str(w.message) for w in caught)
        return
    originals = {name: getattr(torch.Tensor, name) for name in _HOST_READS}

    def counting(method):
        def wrapper(self, *args, **kwargs):
            if "rddpm_signals" not in sys._getframe(1).f_code.co_filename:
                return method(self, *args, **kwargs)
            start = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                found["calls"] += 1
                found["seconds"] += time.perf_counter() - start

        return wrapper

    for name, method in originals.items():
        setattr(torch.Tensor, name, counting(method))
    try:
        yield found
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)


def _run(args: argparse.Namespace, device: torch.device, read_every: int | None, count: bool) -> dict:
    """Train ``args.steps`` steps (after a short warm-up run) and time them; ``count``: also count host reads."""
    torch.manual_seed(0)
    data = torch.randn(args.samples, 1, args.length, generator=torch.Generator().manual_seed(0))
    schedule = NoiseSchedule.create("linear", 1000)

    def fit(steps: int) -> float:
        net = UNet(dims=1, in_channels=1, channels=args.channels, channel_mult=(1, 2, 2), attention=False)
        config = TrainConfig(steps=steps, batch_size=args.batch_size, read_every=read_every)
        generator = torch.Generator().manual_seed(1)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        train(net, data, schedule, make_loss(args.loss), make_noise_fn("gaussian"), config, generator, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    fit(3)  # warm-up: allocations, kernels, process-group first calls
    found = {"calls": 0, "seconds": 0.0}
    with _counted_host_reads(device) if count else contextlib.nullcontext(found) as found:
        seconds = fit(args.steps)
    return {
        "s_per_step": seconds / args.steps,
        "syncs_per_step": found["calls"] / args.steps if count else float("nan"),
        "sync_share": found["seconds"] / seconds if count and device.type != "cuda" else float("nan"),
    }


def _worker(args: argparse.Namespace) -> None:
    """One process of a ``torchrun`` launch: time the run, rank 0 writes the JSON."""
    torch.set_num_threads(1)
    device = prepare(args.device)
    shard = Shard.current()
    result = _run(args, device, None, count=False)
    if shard is None or shard.rank == 0:
        Path(args.worker).write_text(json.dumps(result))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: argparse.Namespace, procs: int, out: Path) -> dict:
    """This script in ``procs`` processes under torchrun; the timings of rank 0."""
    target = out / f"worker_{procs}.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={procs}"]
    command += ["--master_addr=127.0.0.1", f"--master_port={_free_port()}", __file__, "--worker", str(target)]
    command += _forwarded(args)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(command, env=env, check=True)
    return json.loads(target.read_text())


def _forwarded(args: argparse.Namespace) -> list[str]:
    keys = ("device", "loss", "steps", "batch_size", "samples", "length", "channels")
    return [item for key in keys for item in (f"--{key.replace('_', '-')}", str(getattr(args, key)))]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=False, default=Path("results/scaling"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loss", default="lts")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="the global batch, split over the processes")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser


def main() -> None:
    args = _parser().parse_args()
    if args.worker:
        _worker(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    device = prepare(args.device)
    rows = []
    for read_every, label in ((1, "every step (before; CPU default)"), (READ_EVERY, f"every {READ_EVERY} steps")):
        result = _run(args, device, read_every, count=True)
        rows.append({"processes": 1, "loss read": label, **result})
    for procs in args.procs:
        if procs > 1:
            rows.append({"processes": procs, "loss read": "default", **_launch(args, procs, args.out)})
    setting = f"{args.device}, loss={args.loss}, global batch {args.batch_size}, length {args.length}"
    setting += f", channels {args.channels}, {args.steps} steps"
    header = ["processes", "loss read", "s_per_step", "syncs_per_step", "sync_share"]
    cells = [[f"{row[k]:.4g}" if isinstance(row[k], float) else row[k] for k in header] for row in rows]
    text = f"Training step time ({setting})\n\n{markdown_table(header, cells)}\n"
    print(text)
    (args.out / "scaling.md").write_text(text)
    with open(args.out / "scaling.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows([{k: row[k] for k in header} for row in rows])


if __name__ == "__main__":
    main()
