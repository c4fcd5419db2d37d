"""Peak memory and wall time of scoring one long single-channel record through the CLI.

Writes a synthetic hour (``--hours``) of a machine hum at ``--rate`` Hz as a float32 WAV with a few planted bursts,
and a short training set of the same process (``--n-train`` records of ``--train-seconds``; one of them carries a
burst, so the training set is contaminated), fits a small model on the short records through the CLI in-process
(``--adapter waveform --window W --hop H``), then scores the long WAV with ``python -m rddpm_signals.cli score`` in a
**subprocess** and reads that child's own peak RSS (GNU ``/usr/bin/time``'s maximum resident set size; see
:func:`child_peak`) and wall time. The baseline RSS of a child that only imports the CLI and torch is measured the
same way, for scale.

Usage::

    python benchmarks/streaming.py                              # 1 h at 10 kHz, tiny diffusion → results/streaming
    python benchmarks/streaming.py --method rpca --no-signal
    python benchmarks/streaming.py --hours 0.01 --out /tmp/s    # a quick try

Output: ``OUT/streaming.json`` (one object; re-runs with another ``--method`` or ``--no-signal`` add a key to the
``runs`` list) and the same JSON printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rddpm_signals._io import atomic_path, atomic_write_text  # noqa: E402

__all__ = ["hum", "write_long_wav", "write_training_set", "child_peak", "run", "main"]

_BLOCK_S = 10.0  # seconds generated and written at a time
_BURST_S = 0.25


def hum(start: int, n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples float32 ``(n,)`` of a machine hum from sample ``start``: a 50 Hz fundamental with harmonics, a
    slow amplitude wobble and white noise (the deterministic part is continuous across calls)."""
    t = (start + np.arange(n, dtype=np.float64)) / rate
    x = np.sin(2 * np.pi * 50.0 * t) + 0.5 * np.sin(2 * np.pi * 100.0 * t + 0.3) + 0.25 * np.sin(2 * np.pi * 150.0 * t)
    x *= 1.0 + 0.1 * np.sin(2 * np.pi * 0.05 * t)
    x += 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def _burst(n: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A decaying 1.2 kHz ring with a noisy onset, ``(n,)`` float32."""
    t = np.arange(n) / rate
    return ((1.5 * np.sin(2 * np.pi * 1200.0 * t) + 0.5 * rng.standard_normal(n)) * np.exp(-t / (_BURST_S / 3))).astype(
        np.float32
    )


def _add_bursts(block: np.ndarray, start: int, bursts: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    n_burst = int(round(_BURST_S * rate))
    for b in bursts:
        lo, hi = max(b, start), min(b + n_burst, start + len(block))
        if lo < hi:
            block[lo - start : hi - start] += _burst(n_burst, rate, rng)[lo - b : hi - b]


def write_long_wav(path: Path, seconds: float, rate: int, n_bursts: int = 5, seed: int = 0) -> list[float]:
    """Write ``seconds`` of hum at ``rate`` Hz as a mono float32 WAV, block by block (memory of one block), with
    ``n_bursts`` bursts at random times; returns the burst start times in seconds, sorted."""
    import soundfile as sf

    rng = np.random.default_rng([seed, 1])
    total = int(round(seconds * rate))
    n_burst = int(round(_BURST_S * rate))
    bursts = np.sort(rng.choice(max(total - n_burst, 1), size=n_bursts, replace=False)) if n_bursts else []
    bursts = np.asarray(bursts, dtype=np.int64)
    block = int(_BLOCK_S * rate)
    with atomic_path(path) as tmp, sf.SoundFile(str(tmp), "w", rate, 1, subtype="FLOAT", format="WAV") as f:
        for start in range(0, total, block):
            x = hum(start, min(block, total - start), rate, rng)
            _add_bursts(x, start, bursts, rate, rng)
            f.write(x)
    return [float(b) / rate for b in bursts]


def write_training_set(folder: Path, n: int, seconds: float, rate: int, seed: int = 0) -> None:
    """``n`` records of ``seconds`` of the same hum (each from a different start), the first with one burst."""
    import soundfile as sf

    rng = np.random.default_rng([seed, 2])
    folder.mkdir(parents=True, exist_ok=True)
    length = int(round(seconds * rate))
    for i in range(n):
        x = hum(int(rng.integers(0, 10**7)), length, rate, rng)
        if i == 0:
            _add_bursts(x, 0, np.array([length // 2]), rate, rng)
        with atomic_path(folder / f"train_{i:03d}.wav") as tmp:
            sf.write(str(tmp), x, rate, subtype="FLOAT", format="WAV")


def child_peak(cmd: Sequence[str], log: Path, timeout: float | None = None) -> tuple[int, float, float]:
    """Run ``cmd`` as a child (output to ``log``) → (exit code, the command's own peak RSS in MB, wall seconds).
    Past ``timeout`` seconds the child is killed and the exit code is -9.

    The peak comes from ``/usr/bin/time`` (GNU time's ``%M``): the command then runs as a child of ``time``, a small
    process. Reading ``ru_maxrss`` of a direct child of this process would not do: Linux carries the parent's own
    high-water RSS into a forked child's ``ru_maxrss`` at ``exec``, so a parent that has imported torch and fitted a
    model would set a floor under the figure. Without GNU time, ``os.wait4``'s ``ru_maxrss`` is used (an upper
    bound: the largest of the command's peak and this process's peak)."""
    gnu_time = Path("/usr/bin/time")
    peak_file = log.with_suffix(".maxrss")
    peak_file.unlink(missing_ok=True)
    full = [str(gnu_time), "-f", "%M", "-o", str(peak_file), *cmd] if gnu_time.is_file() else list(cmd)
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if timeout is not None and time.perf_counter() - start > timeout:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    wall = time.perf_counter() - start
    peak_kb = float(usage.ru_maxrss)  # KB on Linux
    if peak_file.is_file():
        lines = [ln for ln in peak_file.read_text().split() if ln.strip().isdigit()]
        if lines:
            peak_kb = float(lines[-1])
    return proc.returncode, peak_kb / 1024.0, wall


def _is_diffusion(method: str) -> bool:
    from rddpm_signals.methods import parse_method

    return parse_method(method).is_diffusion


def _burst_recall(segments_csv: Path, bursts: Sequence[float]) -> tuple[int, int]:
    """(planted bursts overlapped by a reported segment, reported segments) from the segments CSV."""
    import csv

    with open(segments_csv, newline="") as f:
        segs = [(float(r["start"]), float(r["end"])) for r in csv.DictReader(f)]
    found = sum(any(a < b + _BURST_S and b < e for a, e in segs) for b in bursts)
    return found, len(segs)


def run(args: argparse.Namespace) -> dict:
    """Write the data (once per size), fit (once per method), score the long record in a child → one run's dict."""
    from rddpm_signals.cli import main as cli_main

    out = Path(args.out)
    data = out / "work" / f"data_{args.hours:g}h_{args.rate}Hz_s{args.seed}"
    long_wav = data / "long" / "long.wav"
    bursts_file = data / "bursts.json"
    if not (long_wav.is_file() and bursts_file.is_file()):
        long_wav.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        bursts = write_long_wav(long_wav, args.hours * 3600.0, args.rate, args.bursts, args.seed)
        write_training_set(data / "train", args.n_train, args.train_seconds, args.rate, args.seed)
        atomic_write_text(bursts_file, json.dumps(bursts))
        print(f"wrote {long_wav} ({long_wav.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.0f} s")
    bursts = json.loads(bursts_file.read_text())

    fit_argv = ["fit", str(data / "train"), "--adapter", "waveform", "--window", str(args.window)]
    fit_argv += ["--hop", str(args.hop or args.window), "--method", args.method, "--seed", str(args.seed), "--quiet"]
    if _is_diffusion(args.method):
        fit_argv += ["--channels", str(args.channels), "--train-steps", str(args.train_steps)]
        fit_argv += ["--reverse-steps", str(args.reverse_steps), "--n-reconstructions", str(args.n_reconstructions)]
    tag = args.method.replace(":", "_").replace(",", "_").replace("=", "-")
    model = out / "work" / f"{tag}_w{args.window}_r{args.rate}.model"
    if not model.is_file() or args.refit:
        print("$ rddpm-signals " + shlex.join([*fit_argv[:2], "--out", str(model), *fit_argv[2:]]), flush=True)
        start = time.perf_counter()
        if cli_main([*fit_argv, "--out", str(model)]) != 0:
            raise RuntimeError("the fit failed")
        print(f"fitted in {time.perf_counter() - start:.0f} s", flush=True)

    result, segments = out / "work" / f"{tag}_long.nc", out / "work" / f"{tag}_long_segments.csv"
    score_cmd = [sys.executable, "-m", "rddpm_signals.cli", "score", str(model), str(long_wav), "--out", str(result)]
    score_cmd += ["--segments", str(segments), "--chunk-windows", str(args.chunk_windows), "--quiet"]
    if args.no_signal:
        score_cmd.append("--no-signal")
    base_cmd = [sys.executable, "-c", "import torch, xarray, rddpm_signals.cli, rddpm_signals.model"]
    base_mb = float("nan") if args.no_baseline else child_peak(base_cmd, out / "work" / "baseline.log")[1]
    print("$ " + shlex.join(score_cmd), flush=True)
    code, peak_mb, wall = child_peak(score_cmd, out / "work" / f"{tag}_score.log", timeout=args.timeout)
    log_tail = (out / "work" / f"{tag}_score.log").read_text(errors="replace")[-2000:]
    found, n_segments = _burst_recall(segments, bursts) if code == 0 else (None, None)
    return {
        "method": args.method,
        "diffusion": _is_diffusion(args.method),
        "channels": args.channels if _is_diffusion(args.method) else None,
        "train_steps": args.train_steps if _is_diffusion(args.method) else None,
        "reverse_steps": args.reverse_steps if _is_diffusion(args.method) else None,
        "n_reconstructions": args.n_reconstructions if _is_diffusion(args.method) else None,
        "window": args.window,
        "hop": args.hop or args.window,
        "chunk_windows": args.chunk_windows,
        "no_signal": bool(args.no_signal),
        "hours": args.hours,
        "rate_hz": args.rate,
        "samples": int(round(args.hours * 3600 * args.rate)),
        "wav_mib": round(long_wav.stat().st_size / 2**20, 1),
        "exit_code": code,
        "timed_out": code == -9,
        "peak_rss_mb": round(peak_mb, 1),
        "baseline_rss_mb": None if args.no_baseline else round(base_mb, 1),
        "wall_s": round(wall, 1),
        "result_mib": round(result.stat().st_size / 2**20, 1) if code == 0 and result.is_file() else None,
        "bursts_planted": len(bursts),
        "bursts_found": found,
        "segments_reported": n_segments,
        "command": shlex.join(["python", "-m", "rddpm_signals.cli", *score_cmd[3:]]),
        "log_tail": log_tail if code != 0 else "",
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hours", type=float, default=1.0, help="length of the long record (1)")
    p.add_argument("--rate", type=int, default=10_000, help="sample rate in Hz (10000)")
    p.add_argument("--method", default="rddpm", help="fit --method (default rddpm, with the tiny settings below)")
    p.add_argument("--channels", type=int, default=8, help="diffusion --channels (8)")
    p.add_argument("--train-steps", type=int, default=50, help="diffusion --train-steps (50)")
    p.add_argument("--reverse-steps", type=int, default=2, help="diffusion --reverse-steps (2)")
    p.add_argument(
        "--n-reconstructions", type=int, default=1, help="diffusion --n-reconstructions (1, as docs/RESULTS.md §9)"
    )
    p.add_argument("--window", type=int, default=4096, help="adapter --window in samples (4096)")
    p.add_argument("--hop", type=int, default=None, help="adapter --hop (default: the window)")
    p.add_argument("--chunk-windows", type=int, default=256, help="score --chunk-windows (256)")
    p.add_argument("--no-signal", action="store_true", help="score --no-signal: leave the signal out of the result")
    p.add_argument("--no-baseline", action="store_true", help="skip measuring the RSS of a child that only imports")
    p.add_argument("--n-train", type=int, default=6, help="training records (6)")
    p.add_argument("--train-seconds", type=float, default=10.0, help="seconds per training record (10)")
    p.add_argument("--bursts", type=int, default=5, help="bursts planted in the long record (5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=None, help="kill the scoring child after this many seconds")
    p.add_argument("--refit", action="store_true", help="fit again even when the model file exists")
    p.add_argument("--out", default="results/streaming")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one measurement, add it to ``OUT/streaming.json`` and print that file; returns the child's exit code."""
    args = _parser().parse_args(argv)
    out = Path(args.out)
    (out / "work").mkdir(parents=True, exist_ok=True)
    entry = run(args)
    entry["benchmark_command"] = "python benchmarks/streaming.py " + shlex.join(
        list(sys.argv[1:] if argv is None else argv)
    )
    path = out / "streaming.json"
    runs = json.loads(path.read_text()).get("runs", []) if path.is_file() else []
    same = ("method", "hours", "rate_hz", "window", "hop", "chunk_windows", "no_signal")
    runs = [r for r in runs if any(r.get(k) != entry[k] for k in same)] + [entry]
    doc = {"machine": f"{os.cpu_count()} CPU cores visible (shared), no GPU used", "runs": runs}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    print(json.dumps(entry, indent=2))
    return 0 if entry["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
