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
from rddpm_signals._io import atomic_write_text, markdown_table
from rddpm_signals.cleaning import auto_by_layout, is_auto
from rddpm_signals.harness.presets import dataset_options, model_params
from rddpm_signals.losses import make_loss
from rddpm_signals.nets import UNet

#: (label, t0, sampler, reverse_steps); the first row is the paper's recipe, the reference for speed-ups.
SAMPLING = [
    ("DDPM 250 (t0=250)", 250, "ddpm", None),
    ("DDPM 100 (t0=100)", 100, "ddpm", None),
    ("DDPM 10 respaced (t0=100)", 100, "ddpm", 10),
    ("DDIM 50 (t0=100)", 100, "ddim", 50),
    ("DDIM 20 (t0=100)", 100, "ddim", 20),
    ("DDIM 10 (t0=100)", 100, "ddim", 10),
    ("DDIM 5 (t0=100)", 100, "ddim", 5),
    ("DDIM 2 (t0=100)", 100, "ddim", 2),
    ("DDIM 1 (t0=100)", 100, "ddim", 1),
    ("DDPM 10 respaced (t0=250)", 250, "ddpm", 10),
    ("DDIM 10 (t0=250)", 250, "ddim", 10),
    ("DDIM 1 (t0=250)", 250, "ddim", 1),
]


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
    params["n_reconstructions"] = 1  # latencies are of one reconstruction, as in docs/RESULTS.md §6
    params.update(extra)
    return RobustDiffusion(**params)


def training_throughput(data, dataset: str, args: argparse.Namespace) -> list:
    """Steady-state samples/s of ``RobustDiffusion.fit`` against a bare loop over the same network, batch, loss and
    optimizer (forward, loss, backward, AdamW step). Per-step times are differences of two run lengths, so the
    one-off set-up (normalisation, network construction) is reported apart from the per-step overhead."""
    short, long = 20, 20 + args.throughput_steps

    def fit_seconds(steps: int) -> float:
        # Self-cleaning's scoring rounds are not part of the training loop being compared.
        det = _detector(dataset, args, train_steps=steps, dims=data.dims, self_clean=False)
        start = time.perf_counter()
        det.fit(data.train_x)
        return time.perf_counter() - start

    det = _detector(dataset, args, dims=data.dims)
    x = torch.from_numpy(data.train_x[: det.batch_size])
    # what fit trains these separate samples with (loss="auto" resolved as fit resolves it without self-cleaning)
    loss_fn = make_loss(
        auto_by_layout(data.dims, False, False)["loss"] if is_auto(det.loss) else det.loss,
        delta=det.delta,
        trim=det.trim,
    )

    def bare_seconds(steps: int) -> float:
        torch.manual_seed(0)
        net = UNet(dims=data.dims, in_channels=x.shape[1], channels=det.channels, channel_mult=det.channel_mult)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, foreach=True)
        start = time.perf_counter()
        for _ in range(steps):
            t = torch.randint(0, 1000, (x.shape[0],))
            noise = torch.randn_like(x)
            out = loss_fn(net(x + noise, t), noise, t)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        return time.perf_counter() - start

    fit_seconds(short), bare_seconds(short)  # warm-up: allocator, oneDNN kernels
    fit_short, fit_long = fit_seconds(short), fit_seconds(long)
    bare_short, bare_long = bare_seconds(short), bare_seconds(long)
    fit_step = (fit_long - fit_short) / args.throughput_steps
    bare_step = (bare_long - bare_short) / args.throughput_steps
    setup = fit_short - short * fit_step
    overhead = 100 * (fit_step - bare_step) / bare_step
    return [
        dataset,
        det.batch_size,
        f"{1000 * fit_step:.1f}",
        f"{1000 * bare_step:.1f}",
        f"{det.batch_size / fit_step:.0f}",
        f"{det.batch_size / bare_step:.0f}",
        f"{overhead:+.1f} %",
        f"{setup:.2f}",
    ]


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
    det = _detector(dataset, args, dims=data.dims, precision=precision)
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
X = np.load(sys.argv[2])[: int(sys.argv[3])]
maps = det.anomaly_map(X)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, maps.shape[0])
"""


def scoring_memory(data, dataset: str, args: argparse.Namespace) -> list:
    """Peak RSS of fresh processes that load a detector and score 64, 1000 and 4000 samples in batches of
    ``scoring_batch_size``: streaming keeps the peak flat as the count grows (beyond the input array itself)."""
    det = _detector(dataset, args, dims=data.dims, train_steps=20)
    det.fit(data.train_x)
    X = np.concatenate([data.test_x] * int(np.ceil(4000 / len(data.test_x))))[:4000]
    peaks = []
    with tempfile.TemporaryDirectory() as tmp:
        det.save(Path(tmp) / "det.pt")
        np.save(Path(tmp) / "x.npy", X)
        for n in (64, 1000, 4000):
            out = subprocess.run(
                [sys.executable, "-c", _MEMORY_CHILD, str(Path(tmp) / "det.pt"), str(Path(tmp) / "x.npy"), str(n)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            peaks.append(int(out[0]) / 1024)  # ru_maxrss is in KiB on Linux
    sample_mb = X[0].nbytes / 2**20
    return [
        dataset,
        det.sampler,
        det.reverse_steps,
        det.scoring_batch_size,
        f"{sample_mb * 1000:.1f}",
        *(f"{p:.0f}" for p in peaks),
        f"{peaks[2] - peaks[0]:+.0f}",
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
        text = f"### {title}\n\n{markdown_table(header, rows)}\n"
        print(text, flush=True)
        report.append(text)

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    emit("Matmul peak (2048²)", ["dtype", "GFLOP/s"], [[k, f"{v:.0f}"] for k, v in peaks.items()])

    emit(
        f"Training throughput: RobustDiffusion.fit against a bare loop ({args.throughput_steps} steady-state steps)",
        [
            "dataset",
            "batch",
            "fit ms/step",
            "bare ms/step",
            "fit samples/s",
            "bare samples/s",
            "harness overhead",
            "fit set-up s",
        ],
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
        f"Scoring: latency and pixel AUROC (contamination 20 %, {args.train_steps} training steps)",
        ["dataset", "precision", "sampler", "ms/sample", "speed-up vs DDPM 250", "pixel AUROC"],
        curve,
    )
    emit(
        "Peak memory of a fresh process scoring N samples streamed in batches (RSS, MiB)",
        ["dataset", "sampler", "steps", "batch", "input MiB per 1000", "N=64", "N=1000", "N=4000", "4000 − 64"],
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
