#!/usr/bin/env python
"""Speed benchmark: training throughput and harness overhead, scoring latency against quality (DDPM / DDIM step
counts), bf16 against fp32, achieved GFLOP/s against the machine's matmul peak, and peak memory when scoring 1000
samples streamed in batches. Prints markdown tables and writes them to ``--out`` (default results/speed/).

    python benchmarks/speed.py                    # forging + rolling, CPU-sized (~15 min on 2 cores)
    python benchmarks/speed.py --datasets forging --train-steps 300

Run it on a quiet machine: every figure is a wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from rddpm_signals import RobustDiffusion, datasets, metrics
from rddpm_signals._io import atomic_write_text
from rddpm_signals.harness.presets import dataset_options, model_params
from rddpm_signals.losses import make_loss
from rddpm_signals.nets import UNet

#: (label, t0, sampler, reverse_steps); the first row is the paper's recipe, the reference for speed-ups.
SAMPLING = [
    ("DDPM 250 (t0=250)", 250, "ddpm", None),
    ("DDPM 100 (t0=100)", 100, "ddpm", None),
    ("DDIM 50 (t0=100)", 100, "ddim", 50),
    ("DDIM 20 (t0=100)", 100, "ddim", 20),
    ("DDIM 10 (t0=100)", 100, "ddim", 10),
    ("DDIM 5 (t0=100)", 100, "ddim", 5),
    ("DDIM 10 (t0=250)", 250, "ddim", 10),
]


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an ``n × n`` matmul in ``dtype`` (best of ``repeats``)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def _detector(dataset: str, args: argparse.Namespace, **extra) -> RobustDiffusion:
    params = {**model_params("quick", dataset), "train_steps": args.train_steps, "verbose": False, "device": "cpu"}
    params.update(extra)
    return RobustDiffusion(**params)


def training_throughput(data, dataset: str, args: argparse.Namespace) -> list:
    """Samples/s of ``RobustDiffusion.fit`` against a bare loop (forward, loss, backward, AdamW step)."""
    steps = args.throughput_steps
    det = _detector(dataset, args, train_steps=steps, dims=data.dims)
    start = time.perf_counter()
    det.fit(data.train_x)
    fit_s = time.perf_counter() - start

    torch.manual_seed(0)
    x = torch.from_numpy(data.train_x[: det.batch_size])
    net = UNet(dims=data.dims, in_channels=x.shape[1], channels=det.channels, channel_mult=det.channel_mult)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    loss_fn = make_loss(det.loss, delta=det.delta, trim=det.trim)
    start = time.perf_counter()
    for _ in range(steps):
        t = torch.randint(0, 1000, (x.shape[0],))
        noise = torch.randn_like(x)
        out = loss_fn(net(x + noise, t), noise, t)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    bare_s = time.perf_counter() - start
    samples = steps * det.batch_size
    overhead = 100 * (fit_s - bare_s) / bare_s
    return [dataset, steps, det.batch_size, f"{samples / fit_s:.1f}", f"{samples / bare_s:.1f}", f"{overhead:+.1f} %"]


def step_gflops(data, dataset: str, args: argparse.Namespace, precision: str) -> list:
    """FLOPs of one training step (FlopCounterMode, forward + backward) over its measured time."""
    det = _detector(dataset, args, dims=data.dims)
    x = torch.from_numpy(data.train_x[: det.batch_size])
    net = UNet(dims=data.dims, in_channels=x.shape[1], channels=det.channels, channel_mult=det.channel_mult)
    t = torch.randint(0, 1000, (x.shape[0],))
    ctx = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step() -> None:
        with ctx:
            out = net(x, t)
        out.float().square().mean().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(3):
        step()
    times = []
    for _ in range(10):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    best = min(times)
    return [dataset, precision, f"{flops / 1e9:.2f}", f"{1000 * best:.1f}", f"{flops / best / 1e9:.1f}"]


def sampling_curve(data, dataset: str, args: argparse.Namespace, precision: str = "fp32") -> tuple[list, dict]:
    """Pixel AUROC and latency per sample for each sampling configuration, on one trained model."""
    det = _detector(dataset, args, dims=data.dims, precision=precision, train_t_max=250, t0=100)
    det.fit(data.train_x)
    rows, aurocs = [], {}
    reference = None
    for label, t0, sampler, steps in SAMPLING:
        det.set_params(t0=t0, sampler=sampler, reverse_steps=steps)
        start = time.perf_counter()
        maps = det.anomaly_map(data.test_x)
        seconds = time.perf_counter() - start
        auroc = metrics.pixel_auroc(maps, data.test_mask)
        latency = 1000 * seconds / len(data.test_x)
        reference = reference or latency
        aurocs[label] = auroc
        rows.append([dataset, precision, label, f"{latency:.2f}", f"{reference / latency:.1f}×", f"{auroc:.4f}"])
    return rows, aurocs


_MEMORY_CHILD = """
import resource, sys, numpy as np, torch
from rddpm_signals import RobustDiffusion
det = RobustDiffusion.load(sys.argv[1])
X = np.load(sys.argv[2])
det.anomaly_map(X[:2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
maps = det.anomaly_map(X)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, maps.shape[0])
"""


def scoring_memory(data, dataset: str, args: argparse.Namespace) -> list:
    """Peak RSS of a fresh process scoring 1000 samples in batches of ``scoring_batch_size``."""
    det = _detector(dataset, args, dims=data.dims, train_steps=20, sampler="ddim", reverse_steps=10)
    det.fit(data.train_x)
    reps = int(np.ceil(1000 / len(data.test_x)))
    X = np.concatenate([data.test_x] * reps)[:1000]
    with tempfile.TemporaryDirectory() as tmp:
        det.save(Path(tmp) / "det.pt")
        np.save(Path(tmp) / "x.npy", X)
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(Path(tmp) / "det.pt"), str(Path(tmp) / "x.npy")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    before, after = int(out[0]) / 1024, int(out[1]) / 1024  # ru_maxrss is in KiB on Linux
    data_mb = X.nbytes / 2**20
    return [
        dataset,
        X.shape,
        det.scoring_batch_size,
        f"{data_mb:.1f}",
        f"{before:.0f}",
        f"{after:.0f}",
        f"{after - before:.0f}",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", default="forging,rolling")
    p.add_argument("--train-steps", type=int, default=600, help="training steps of the models whose AUROC is compared")
    p.add_argument("--throughput-steps", type=int, default=100)
    p.add_argument("--out", default="results/speed")
    args = p.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    names = [d for d in args.datasets.split(",") if d]
    loaded = {d: datasets.load(d, contamination=0.2, seed=0, **dataset_options("quick", d)) for d in names}
    report = [
        f"Command: `python benchmarks/speed.py {' '.join(sys.argv[1:])}`".strip(),
        f"torch threads: {torch.get_num_threads()}",
        "",
    ]

    def emit(title: str, header: list[str], rows: list[list]) -> None:
        text = f"### {title}\n\n{_table(header, rows)}\n"
        print(text, flush=True)
        report.append(text)

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    emit("Matmul peak (2048²)", ["dtype", "GFLOP/s"], [[k, f"{v:.0f}"] for k, v in peaks.items()])

    emit(
        "Training throughput: RobustDiffusion.fit against a bare loop",
        ["dataset", "steps", "batch", "fit samples/s", "bare samples/s", "harness overhead"],
        [training_throughput(loaded[d], d, args) for d in names],
    )
    rows = [step_gflops(loaded[d], d, args, prec) for d in names for prec in ("fp32", "bf16")]
    for row in rows:
        row.append(f"{100 * float(row[-1]) / peaks[row[1]]:.0f} %")
    emit(
        "Achieved GFLOP/s of a training step",
        ["dataset", "precision", "GFLOP/step", "ms/step", "GFLOP/s", "of peak"],
        rows,
    )

    curve, summary = [], {}
    for d in names:
        for precision in ("fp32", "bf16"):
            rows, aurocs = sampling_curve(loaded[d], d, args, precision)
            curve += rows
            summary[f"{d}/{precision}"] = aurocs
    emit(
        f"Scoring: latency and pixel AUROC (contamination 20 %, {args.train_steps} training steps, train_t_max 250)",
        ["dataset", "precision", "sampler", "ms/sample", "speed-up vs DDPM 250", "pixel AUROC"],
        curve,
    )
    emit(
        "Peak memory scoring 1000 samples (fresh process, RSS)",
        ["dataset", "X", "batch", "data MiB", "RSS before MiB", "RSS peak MiB", "growth MiB"],
        [scoring_memory(loaded[d], d, args) for d in names],
    )
    out = Path(args.out)
    atomic_write_text(out / "speed.md", "\n".join(report) + "\n")
    atomic_write_text(out / "sampling_auroc.json", json.dumps(summary, indent=1))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"written to {out}/speed.md; max RSS of this process {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
