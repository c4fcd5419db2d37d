"""Command line: ``rddpm-signals fit | score | demo | benchmark | plot``.

Data arguments accept a ``.npy`` array ``(N, C, L)`` / ``(N, C, H, W)``, an ``.npz`` file (key ``x``, or its only
array), or a built-in dataset as ``dataset:NAME`` (training split) / ``dataset:NAME:test`` (test split).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .base import quantile_scores
from .losses import LOSSES

__all__ = ["main", "read_samples"]


def read_samples(spec: str, contamination: float = 0.2, seed: int = 0) -> tuple[np.ndarray, int | None]:
    """Read the samples named by ``spec``; returns ``(X, dims)`` where ``dims`` is known only for built-in data."""
    if spec.startswith("dataset:"):
        from . import datasets

        parts = spec.split(":")
        data = datasets.load(parts[1], contamination=contamination, seed=seed)
        split = parts[2] if len(parts) > 2 else "train"
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r} in {spec!r}: use dataset:NAME:train or dataset:NAME:test")
        return (data.train_x if split == "train" else data.test_x), data.dims
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"no data file at {spec!r}: pass a .npy/.npz file or dataset:NAME")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if "x" in z.files:
                return z["x"], None
            if len(z.files) == 1:
                return z[z.files[0]], None
            raise ValueError(f"{spec!r} holds {z.files}: store the samples under the key 'x'")
    raise ValueError(f"unsupported data file {spec!r}: use .npy, .npz or dataset:NAME")


def _infer_dims(X: np.ndarray, dims: int | None, given: int | None) -> int:
    if given is not None:
        return given
    if dims is not None:
        return dims
    if X.ndim in (3, 4):
        return X.ndim - 2
    raise ValueError(f"cannot infer dims from an array of shape {X.shape}: pass --dims 1 or --dims 2")


#: RobustDiffusion parameters that ``fit`` exposes as options (name → type).
_FIT_OPTIONS = {
    "loss": str,
    "delta": float,
    "trim": float,
    "channels": int,
    "train_steps": int,
    "batch_size": int,
    "lr": float,
    "t0": int,
    "reverse_steps": int,
    "sampler": str,
    "noise": str,
    "precision": str,
    "map_smoothing": float,
    "device": str,
}


def _cmd_fit(args: argparse.Namespace) -> int:
    from .detector import RobustDiffusion

    X, known = read_samples(args.data, args.contamination, args.seed)
    # Options left unset fall through to RobustDiffusion's own defaults.
    params = {name: getattr(args, name) for name in _FIT_OPTIONS if getattr(args, name) is not None}
    params.update(
        dims=_infer_dims(X, known, args.dims),
        random_state=args.seed,
        checkpoint_path=args.checkpoint,
        verbose=not args.quiet,
    )
    det = RobustDiffusion(**params).fit(X)
    det.save(args.out)
    print(f"fitted on {X.shape}; final loss {det.loss_history_[-100:].mean():.4f}; saved to {args.out}")
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from .detector import RobustDiffusion

    det = RobustDiffusion.load(args.model, device=args.device)
    X, _ = read_samples(args.data, args.contamination, args.seed)
    maps = det.anomaly_map(X)
    scores = quantile_scores(maps, det.score_quantile)
    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, maps=maps, scores=scores)
    order = np.argsort(-scores)[: min(5, len(scores))]
    print(f"scored {len(scores)} samples; maps {maps.shape} and scores written to {args.out}")
    print("highest scores: " + ", ".join(f"#{i}: {scores[i]:.3f}" for i in order))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(contamination=args.contamination, seed=args.seed, out=args.out)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, _ = read_samples(args.data, args.contamination, args.seed)
    with np.load(args.maps, allow_pickle=False) as z:
        if "maps" not in z.files:
            raise ValueError(f"{args.maps!r} has no 'maps' array: pass the .npz written by 'rddpm-signals score'")
        maps, scores = z["maps"], z["scores"]
    if maps.shape[0] != X.shape[0] or maps.shape[1:] != X.shape[2:]:
        raise ValueError(f"maps {maps.shape} do not match the data {X.shape}: score the same data first")
    picks = args.samples if args.samples else list(np.argsort(-scores)[:3])
    fig, axes = plt.subplots(len(picks), 2, figsize=(9, 2.2 * len(picks)), squeeze=False)
    for (ax_x, ax_m), i in zip(axes, picks, strict=True):
        if X.ndim == 3:
            ax_x.plot(X[i].T, lw=0.7)
            ax_m.plot(maps[i], color="C3", lw=0.8)
        else:
            ax_x.imshow(X[i].mean(axis=0), cmap="gray")
            ax_m.imshow(maps[i], cmap="magma")
        ax_x.set_ylabel(f"#{i} score {scores[i]:.2f}", fontsize=8)
    axes[0, 0].set_title("input")
    axes[0, 1].set_title("anomaly map")
    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    print(f"plotted samples {[int(i) for i in picks]} to {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rddpm-signals", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def data_options(q: argparse.ArgumentParser) -> None:
        q.add_argument("--contamination", type=float, default=0.2, help="for dataset:NAME (default 0.2)")
        q.add_argument("--seed", type=int, default=0, help="data and model seed (default 0)")

    fit = sub.add_parser("fit", help="train a detector on (possibly contaminated) samples and save it")
    fit.add_argument("data", help=".npy / .npz file or dataset:NAME")
    fit.add_argument("--out", required=True, help="where to save the fitted detector (.pt)")
    fit.add_argument("--dims", type=int, choices=(1, 2), help="1 for (N, C, L), 2 for (N, C, H, W); inferred")
    fit.add_argument("--loss", choices=sorted(LOSSES), help="default: RobustDiffusion's")
    for name, kind in _FIT_OPTIONS.items():
        if name != "loss":
            fit.add_argument(f"--{name.replace('_', '-')}", type=kind, help="default: RobustDiffusion's")
    fit.add_argument("--checkpoint", default=None, help="checkpoint file to write and resume from")
    fit.add_argument("--quiet", action="store_true", help="no progress bar")
    data_options(fit)
    fit.set_defaults(run=_cmd_fit)

    score = sub.add_parser("score", help="anomaly maps and scores of samples with a saved detector")
    score.add_argument("model", help="a detector saved by 'fit'")
    score.add_argument("data", help=".npy / .npz file or dataset:NAME[:test]")
    score.add_argument("--out", required=True, help="output .npz with 'maps' and 'scores'")
    score.add_argument("--device", default=None, help="override the saved device")
    data_options(score)
    score.set_defaults(run=_cmd_score)

    plot = sub.add_parser("plot", help="plot inputs beside their anomaly maps (highest scores by default)")
    plot.add_argument("maps", help="the .npz written by 'score'")
    plot.add_argument("data", help="the data that was scored")
    plot.add_argument("--out", required=True, help="output .png")
    plot.add_argument("--samples", type=lambda t: [int(v) for v in t.split(",")], help="e.g. 0,5,9")
    data_options(plot)
    plot.set_defaults(run=_cmd_plot)

    sub.add_parser(
        "benchmark", help="run benchmarks/run.py's harness; options after 'benchmark' go to it", add_help=False
    )

    demo = sub.add_parser("demo", help="robust against plain (MSE) diffusion on contaminated forging strokes (~3 min)")
    demo.add_argument("--out", default="results/demo", help="folder for demo.md / demo.csv")
    data_options(demo)
    demo.set_defaults(run=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["benchmark"]:
        from .harness import main as benchmark_main

        return benchmark_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:
        print(f"rddpm-signals {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
