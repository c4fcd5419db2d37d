"""Benchmarks of the classical baselines: RPCA (principal component pursuit) and SSD (smooth-sparse decomposition).

    python benchmarks/baselines.py [--out results/baselines] [--forging] [--blas-threads 1]

Tables (printed, and written as CSV + one markdown file under ``--out``):

1. RPCA exact recovery on ``M = L0 + S0`` (500 × 400, rank 5, 5 % corruptions, no noise) with the full-SVD and the
   randomized-SVD paths, and a timing table for 200 … 5000 rows × 400 columns (same rank and corruption share).
2. SSD on a smooth 2D background + sparse defects + Gaussian noise σ = 0.05 (the set-up of Yan, Paynabar & Shi
   2017): pixel AUROC, background error, time of one 256 × 256 image; the separable solve beside a dense solve
   with the Kronecker basis ``B_y ⊗ B_x`` (formed only here), with the speed factor; a γ-rule comparison.
3. (``--forging``) RPCA and SSD on the forging set at 0 / 10 / 20 / 30 % contamination.

Timings are wall-clock on whatever machine runs this; BLAS runs with ``--blas-threads`` threads (default 1: on a
shared 2-core machine under load, two-thread OpenBLAS made small matrix products up to ~80x slower).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from threadpoolctl import threadpool_limits

from rddpm_signals._io import atomic_write_text, markdown_table
from rddpm_signals.baselines import RPCA, SSD, pcp
from rddpm_signals.baselines.ssd import _soft
from rddpm_signals.metrics import pixel_auprc, pixel_auroc, sample_auroc

NOISE = 0.05


# ----------------------------------------------------------------------------------------------- output
def table(rows: list[dict], title: str) -> str:
    """A markdown table of ``rows`` (dicts with the same keys), with ``title`` above it."""
    keys = list(rows[0])

    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4g}"
        return str(v)

    return f"### {title}\n\n{markdown_table(keys, [[fmt(r[k]) for k in keys] for r in rows])}\n"


def write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


# ----------------------------------------------------------------------------------------------- RPCA
def rpca_problem(m: int, n: int, rank: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``L0 = A B / √rank`` with standard normal ``A`` ``(m, rank)``, ``B`` ``(rank, n)`` (entries of unit
    variance); ``S0`` on a uniformly random ``share`` of entries, ``±U(1, 5)``."""
    rng = np.random.default_rng(seed)
    L0 = rng.standard_normal((m, rank)) @ rng.standard_normal((rank, n)) / np.sqrt(rank)
    S0 = np.zeros((m, n))
    hit = rng.random((m, n)) < share
    S0[hit] = rng.choice([-1.0, 1.0], hit.sum()) * rng.uniform(1.0, 5.0, hit.sum())
    return L0, S0


def rpca_section(rows_list: list[int], cols: int) -> tuple[list[dict], list[dict]]:
    recovery = []
    L0, S0 = rpca_problem(500, 400, 5, 0.05, seed=0)
    for svd in ("full", "randomized"):
        result, seconds = timed(pcp, L0 + S0, svd=svd, random_state=0)
        recovery.append(
            {
                "problem": "500x400, rank 5, 5% sparse, no noise",
                "svd": svd,
                "rel_err_L": float(np.linalg.norm(result.L - L0) / np.linalg.norm(L0)),
                "rel_err_S": float(np.linalg.norm(result.S - S0) / np.linalg.norm(S0)),
                "rank": result.rank,
                "iterations": result.n_iter,
                "seconds": seconds,
            }
        )
    timing = []
    for m in rows_list:
        L0, S0 = rpca_problem(m, cols, 5, 0.05, seed=1)
        for svd in ("full", "randomized"):
            result, seconds = timed(pcp, L0 + S0, svd=svd, random_state=0)
            timing.append(
                {
                    "rows": m,
                    "cols": cols,
                    "svd": svd,
                    "seconds": seconds,
                    "iterations": result.n_iter,
                    "rel_err_L": float(np.linalg.norm(result.L - L0) / np.linalg.norm(L0)),
                }
            )
            print(f"  rpca {m}x{cols} {svd}: {seconds:.3f} s, {result.n_iter} it", flush=True)
    return recovery, timing


# ----------------------------------------------------------------------------------------------- SSD
def ssd_image(n: int, seed: int, amplitude: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth background (a tilted sinusoid plus a broad bump, range ≈ 0 … 1), sparse rectangular defects
    (spots and thin scratches of ``amplitude``) and Gaussian noise σ = 0.05: image, background, mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:n, 0:n] / n
    background = 0.5 + 0.3 * np.sin(2 * np.pi * (0.7 * xx + 0.4 * yy) + rng.uniform(0, 2 * np.pi))
    cy, cx = rng.uniform(0.3, 0.7, 2)
    background += 0.2 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05)
    mask = np.zeros((n, n), dtype=bool)
    scale = n / 64
    for _ in range(3):  # spots
        h, w = (rng.integers(2, 6, 2) * scale).astype(int)
        r, c = rng.integers(0, n - h), rng.integers(0, n - w)
        mask[r : r + h, c : c + w] = True
    for _ in range(2):  # thin scratches
        length, width = int(rng.integers(10, 25) * scale), max(1, int(scale // 2))
        r, c = rng.integers(0, n - length, 2)
        if rng.random() < 0.5:
            mask[r : r + width, c : c + length] = True
        else:
            mask[r : r + length, c : c + width] = True
    image = background + amplitude * mask + NOISE * rng.standard_normal((n, n))
    return image, background, mask


def dense_ssd(det: SSD, image: np.ndarray, gamma: float) -> tuple[np.ndarray, float, float, int]:
    """SSD of one image with the Kronecker basis formed explicitly (the comparison only): same λ, γ, stopping rule
    and iteration as the separable solver. Returns the background, set-up and solve seconds, iterations."""
    smoother = det._smoother(image.shape)
    by, bx = smoother.axes
    lam = float(det.lam_[0])
    start = time.perf_counter()
    B = np.kron(by.B, bx.B)
    P = np.kron(by.P, bx.G) + np.kron(by.G, bx.P)
    factor = cho_factor(B.T @ B + lam * P)
    setup = time.perf_counter() - start

    def smooth(r: np.ndarray) -> np.ndarray:
        return B @ cho_solve(factor, B.T @ r)

    y = image.ravel()
    tol = det.tol * float(det.sigma_[0])
    start = time.perf_counter()
    a = np.zeros_like(y)
    z, t, it = a, 1.0, 0
    for _ in range(det.max_iter):
        it += 1
        a_new = _soft(y - smooth(y - z), gamma)
        step = a_new - a
        if np.dot(z - a_new, step) > 0:
            t = 1.0
        t_new = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        z = a_new + ((t - 1.0) / t_new) * step
        t, a = t_new, a_new
        if np.linalg.norm(step) / np.sqrt(y.size) <= tol:
            break
    background = smooth(y - a)
    return background.reshape(image.shape), setup, time.perf_counter() - start, it


def ssd_section(size: int, dense_size: int, dense_note: str, seeds: int) -> tuple[list[dict], list[dict], list[dict]]:
    quality = []
    images = [ssd_image(size, seed, amplitude=0.3) for seed in range(seeds)]
    X = np.stack([im for im, _, _ in images])[:, None]
    truth = np.stack([b for _, b, _ in images])
    masks = np.stack([m for _, _, m in images])
    for gamma in ("otsu", "universal"):
        det, fit_s = timed(SSD(dims=2, gamma=gamma).fit, X)
        det.anomaly_map(X[:1])  # warm the basis cache (built once per grid size)
        one = [timed(det.anomaly_map, X[i : i + 1])[1] for i in range(seeds)]
        maps = det.anomaly_map(X)
        background, sparse = det.decompose(X)
        quality.append(
            {
                "image": f"{size}x{size}, defects 0.3, noise 0.05, {seeds} images",
                "gamma": gamma,
                "lam": float(det.lam_[0]),
                "pixel_auroc_residual": pixel_auroc(maps, masks),
                "pixel_auroc_sparse": pixel_auroc(det.set_params(map_kind="sparse").anomaly_map(X), masks),
                "pixel_auprc_residual": pixel_auprc(maps, masks),
                "background_rel_err": float(np.linalg.norm(background[:, 0] - truth) / np.linalg.norm(truth)),
                "sigma_hat": float(det.sigma_[0]),
                "map_seconds_per_image_median": float(np.median(one)),
                "map_seconds_per_image_max": float(np.max(one)),
                "fit_seconds": fit_s,
            }
        )
        print(f"  ssd gamma={gamma}: AUROC {quality[-1]['pixel_auroc_residual']:.4f}", flush=True)

    # Separable vs dense Kronecker, on one image (of dense_size if the dense basis would not fit).
    image, _, _ = ssd_image(dense_size, 0, amplitude=0.3) if dense_size != size else images[0]
    det = SSD(dims=2).fit(image[None, None])
    smoother = det._smoother(image.shape)
    gamma = float(det._gammas(smoother, image[None], det.lam_, det.sigma_)[0])
    (sep_background, _), sep_s = timed(det.decompose, image[None, None])
    sep_s = min(sep_s, *(timed(det.decompose, image[None, None])[1] for _ in range(4)))
    dense_background, setup_s, dense_s, dense_it = dense_ssd(det, image, gamma)
    _, _, sep_it = det._solve(image[None, None], det.lam_, det.sigma_)
    k = smoother.axes[0].B.shape[1] * smoother.axes[1].B.shape[1]
    speed = [
        {
            "image": f"{dense_size}x{dense_size}",
            "basis": f"{smoother.axes[0].B.shape[1]}x{smoother.axes[1].B.shape[1]} = {k}",
            "dense_basis_MB": image.size * k * 8 / 2**20,
            "separable_seconds": sep_s,
            "separable_iterations": sep_it,
            "dense_setup_seconds": setup_s,
            "dense_solve_seconds": dense_s,
            "dense_iterations": dense_it,
            "speed_factor_solve": dense_s / sep_s,
            "speed_factor_with_setup": (setup_s + dense_s) / sep_s,
            "max_abs_diff_background": float(np.abs(dense_background - sep_background[0, 0]).max()),
            "note": dense_note,
        }
    ]

    rules = []
    for amplitude in (0.1, 0.15, 0.3):
        imgs = [ssd_image(size, 100 + seed, amplitude) for seed in range(seeds)]
        Xa = np.stack([im for im, _, _ in imgs])[:, None]
        truth_a = np.stack([b for _, b, _ in imgs])
        masks_a = np.stack([m for _, _, m in imgs])
        for gamma in ("otsu", "universal", 3.0):
            det = SSD(dims=2, gamma=gamma).fit(Xa)
            background, _ = det.decompose(Xa)
            rules.append(
                {
                    "defect_height": amplitude,
                    "gamma": str(gamma),
                    "lam": float(det.lam_[0]),
                    "pixel_auroc_residual": pixel_auroc(det.anomaly_map(Xa), masks_a),
                    "pixel_auroc_sparse": pixel_auroc(det.set_params(map_kind="sparse").anomaly_map(Xa), masks_a),
                    "background_rel_err": float(np.linalg.norm(background[:, 0] - truth_a) / np.linalg.norm(truth_a)),
                }
            )
    return quality, speed, rules


def ssd_timing_section(repeats: int = 5) -> list[dict]:
    """Scoring time of SSD (λ, σ fitted beforehand) on 128 signals × 4 channels × 256 points and on one 256 × 256
    image (median and max of ``repeats`` calls after a warm-up call)."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 256)
    signals = np.sin(2 * np.pi * (t * rng.uniform(1, 3, (128, 4, 1)) + rng.uniform(0, 1, (128, 4, 1))))
    signals += NOISE * rng.standard_normal(signals.shape)
    image = ssd_image(256, 0, amplitude=0.3)[0][None, None]
    rows = []
    for name, X, dims in (("1D: 128 x 4 ch x 256", signals, 1), ("2D: 1 x 1 ch x 256 x 256", image, 2)):
        det = SSD(dims=dims).fit(X)
        det.anomaly_map(X)
        seconds = [timed(det.anomaly_map, X)[1] for _ in range(repeats)]
        rows.append(
            {
                "input": name,
                "map_seconds_median": float(np.median(seconds)),
                "map_seconds_max": float(np.max(seconds)),
                "fit_seconds": timed(SSD(dims=dims).fit, X)[1],
            }
        )
    return rows


# ----------------------------------------------------------------------------------------------- forging
def forging_section(contaminations: list[float]) -> list[dict]:
    from rddpm_signals import datasets

    rows = []
    for c in contaminations:
        ds = datasets.load("forging", contamination=c, seed=0)
        for name, det in (("RPCA", RPCA(dims=1)), ("SSD", SSD(dims=1))):
            _, fit_s = timed(det.fit, ds.train_x)
            maps, map_s = timed(det.anomaly_map, ds.test_x)
            rows.append(
                {
                    "method": name,
                    "contamination": c,
                    "pixel_auroc": pixel_auroc(maps, ds.test_mask),
                    "pixel_auprc": pixel_auprc(maps, ds.test_mask),
                    "sample_auroc": sample_auroc(det.anomaly_score(ds.test_x), ds.test_label),
                    "fit_seconds": fit_s,
                    "map_seconds": map_s,
                    "detail": f"rank {det.rank_}, {det.n_iter_} it" if name == "RPCA" else f"lam {det.lam_.round(3)}",
                }
            )
            print(f"  forging {name} c={c}: pixel AUROC {rows[-1]['pixel_auroc']:.4f}", flush=True)
    return rows


# ----------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/baselines", help="output folder (CSV + baselines.md)")
    parser.add_argument("--rows", default="200,500,1000,2000,5000", help="RPCA timing: row counts")
    parser.add_argument("--cols", type=int, default=400, help="RPCA timing: column count")
    parser.add_argument("--size", type=int, default=256, help="SSD image size")
    parser.add_argument("--seeds", type=int, default=5, help="SSD images per setting")
    parser.add_argument("--dense-max-gb", type=float, default=2.0, help="largest dense Kronecker basis to form")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (threadpoolctl)")
    parser.add_argument("--forging", action="store_true", help="also run both baselines on the forging set")
    args = parser.parse_args(argv)
    out = Path(args.out)

    size, dense_size = args.size, args.size
    k_axis = SSD()._smoother((size,)).axes[0].B.shape[1]
    dense_note = f"dense basis {size * size} x {k_axis**2} fits in {args.dense_max_gb} GB"
    while (dense_size**2) * SSD()._smoother((dense_size,)).axes[0].B.shape[1] ** 2 * 8 > args.dense_max_gb * 2**30:
        dense_size //= 2
        dense_note = f"{size}x{size} dense basis exceeds {args.dense_max_gb} GB: compared at {dense_size}x{dense_size}"

    header = (
        f"Run {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()} / {os.cpu_count()} CPUs, "
        f"BLAS threads {args.blas_threads}, load average {os.getloadavg()[0]:.1f} at start "
        "(shared machine: timings are indicative)."
    )
    print(header, flush=True)
    sections = [
        f"# Baselines: RPCA and SSD\n\n{header}\n\nCommand: `python benchmarks/baselines.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`\n"
    ]
    with threadpool_limits(args.blas_threads):
        recovery, timing = rpca_section([int(r) for r in args.rows.split(",")], args.cols)
        quality, speed, rules = ssd_section(size, dense_size, dense_note, args.seeds)
        ssd_timing = ssd_timing_section()
        forging = forging_section([0.0, 0.1, 0.2, 0.3]) if args.forging else []

    parts = [
        ("rpca_recovery", recovery, "RPCA exact recovery (PCP by inexact ALM, λ = 1/√max(m, n), tol 1e-7)"),
        ("rpca_timing", timing, f"RPCA time vs rows ({args.cols} columns, rank 5, 5 % corruptions)"),
        ("ssd_quality", quality, "SSD on a smooth background + sparse defects + noise σ = 0.05"),
        ("ssd_separable_vs_dense", speed, "SSD: separable solve vs dense Kronecker solve (same λ, γ, stopping)"),
        ("ssd_timing", ssd_timing, "SSD scoring time (fitted λ and σ; median / max of 5 calls)"),
        ("ssd_gamma_rules", rules, f"SSD γ rules vs defect height ({size}x{size}, {args.seeds} images each)"),
    ]
    if forging:
        parts.append(("forging", forging, "RPCA and SSD on the forging set (test split, seed 0)"))
    for name, rows, title in parts:
        write_csv(out / f"{name}.csv", rows)
        sections.append(table(rows, title))
    text = "\n".join(sections)
    atomic_write_text(out / "baselines.md", text)
    print(text)


if __name__ == "__main__":
    main()
