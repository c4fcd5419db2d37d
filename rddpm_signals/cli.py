"""Command line: ``rddpm-signals fit | score | report | example | benchmark | demo``.

From a folder of recordings to flagged defects::

    rddpm-signals fit train/ --adapter waveform --method rddpm --out press.model
    rddpm-signals score press.model new/ --out result.nc --segments segments.csv
    rddpm-signals report result.nc --out report/

PATH arguments are files, folders (searched recursively; names starting with ``_`` or ``.`` are skipped) or glob
patterns. Recognised files: WAV / FLAC / OGG, CSV (a time column, then one column per channel), NPY / NPZ,
PNG / JPEG / TIFF / BMP, netCDF.

``score --executor ray`` scores the files as Ray tasks (a local Ray, ``--ray-address`` or ``$RAY_ADDRESS``) and
writes the same outputs; it needs ``pip install 'rddpm-signals[ray]'``.

Exit codes: 0 ran; 1 records were flagged and ``--fail-on-flag`` was given; 2 bad input or usage (one line on
stderr, nothing written); 3 an internal error (one line; ``--debug`` shows the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .executors import EXECUTORS

if TYPE_CHECKING:
    import numpy as np

EXIT_OK, EXIT_FLAGGED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

__all__ = ["main", "EXIT_OK", "EXIT_FLAGGED", "EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_INTERRUPTED"]


class CLIError(ValueError):
    """A problem with the user's input, reported as one line and exit code 2."""


# ---------------------------------------------------------------------------------------------------- options
#: adapter options: flag → (constructor parameter, type, help); only the ones the chosen adapter takes apply
_ADAPTER_OPTIONS: dict[str, tuple[str, Any, str]] = {
    "--sample-rate": ("sample_rate", float, "model sample rate in Hz (waveform, spectrogram; NPY files need it)"),
    "--resample": ("resample", None, "resample records at other rates (waveform, spectrogram)"),
    "--window": ("window", int, "samples per model window (waveform; xarray along time); default whole records"),
    "--hop": ("hop", int, "samples between window starts (default: the window, no overlap)"),
    "--n-fft": ("n_fft", int, "FFT size (spectrogram)"),
    "--hop-length": ("hop_length", int, "samples between spectrogram frames (spectrogram)"),
    "--n-mels": ("n_mels", int, "mel bands; 0 for the linear STFT (spectrogram)"),
    "--f-min": ("f_min", float, "lowest frequency in Hz (spectrogram)"),
    "--f-max": ("f_max", float, "highest frequency in Hz (spectrogram)"),
    "--window-frames": ("window_frames", int, "frames per model window (spectrogram)"),
    "--hop-frames": ("hop_frames", int, "frames between windows (spectrogram)"),
    "--size": ("size", int, "resize images to SIZE x SIZE pixels (image)"),
    "--tile": ("tile", int, "cut images into TILE x TILE patches (image)"),
    "--stride": ("stride", int, "pixels between tiles (image; default: the tile)"),
    "--color": ("color", str, "auto | grey | rgb (image)"),
}

#: RobustDiffusion options exposed as flags (the rest through --method rddpm:key=value)
_DETECTOR_OPTIONS: dict[str, type] = {
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
    "n_reconstructions": int,
}


def _value(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _adapter(name: str, args: argparse.Namespace, paths: list[Path]) -> tuple[Any, str]:
    """The adapter instance the options describe, and its name."""
    from . import files

    if name == "auto":
        name = files.auto_adapter(paths)
    cls = files.resolve_adapter(name)
    accepted = set(cls().get_params()) if hasattr(cls, "get_params") else set()
    params: dict[str, Any] = {}
    for flag, (param, _, _) in _ADAPTER_OPTIONS.items():
        value = getattr(args, param)
        if value is None or value is False:
            continue
        if param not in accepted:
            raise CLIError(f"{flag} does not apply to the {name} adapter: leave it out or pick another --adapter")
        params[param] = None if (param == "n_mels" and value == 0) else value
    if param_pairs := args.adapter_option:
        for pair in param_pairs:
            key, eq, value = pair.partition("=")
            if not eq or not key:
                raise CLIError(f"bad --adapter-option {pair!r}: write KEY=VALUE")
            if accepted and key not in accepted:
                raise CLIError(f"the {name} adapter has no option {key!r}: use one of {sorted(accepted)}")
            params[key] = _value(value)
    try:
        return cls(**params), name
    except TypeError as err:
        raise CLIError(f"bad options for the {name} adapter ({err})") from None


def _detector_params(args: argparse.Namespace) -> dict:
    """Detector constructor values given as flags; only those given (the rest keep the method's defaults)."""
    from .methods import parse_method

    spec = parse_method(args.method)
    params = {name: getattr(args, name) for name in _DETECTOR_OPTIONS if getattr(args, name) is not None}
    if params and not spec.is_diffusion:
        flags = ", ".join("--" + k.replace("_", "-") for k in params)
        raise CLIError(f"{flags} apply to diffusion methods only, not {spec.base!r}: leave them out")
    if spec.is_diffusion:
        params.update(
            random_state=args.seed,
            verbose=not args.quiet and sys.stderr.isatty(),
            checkpoint_path=args.checkpoint,
        )
        if args.device is not None:
            params["device"] = args.device
    return params


def _check_output(path: str, what: str) -> Path:
    """Fail before any long work when ``path`` cannot be written: a scratch file is created and removed in the
    nearest existing folder on its way (missing folders are created only when the output is written)."""
    import tempfile

    out = Path(path)
    if out.is_dir():
        raise CLIError(f"{what} {path!r} is a folder: pass a file name")
    probe = out.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(str(probe))
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".rddpm-write-check."):
            pass
    except OSError as err:
        raise CLIError(
            f"cannot write {what} {path!r}: {str(probe)!r} is not a writable folder ({type(err).__name__})"
        ) from None
    return out


def _check_device(device: str | None) -> None:
    if device is None or device in ("auto", "cpu"):
        return
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {device}: no CUDA device on this machine: pass --device cpu or auto")


def _check_executor(args: argparse.Namespace) -> None:
    """Fail before any work when ``--executor ray`` cannot run (Ray not installed) or ``--ray-address`` is idle."""
    if args.executor == "ray":
        from .executors import import_ray

        import_ray()
    elif args.ray_address:
        raise CLIError("--ray-address applies to --executor ray only: add --executor ray or leave it out")


def _paths(specs: list[str]) -> list[Path]:
    from . import files

    return files.expand_paths(specs)


def _info(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, flush=True)


# ---------------------------------------------------------------------------------------------------- commands
def _cmd_fit(args: argparse.Namespace) -> int:
    from . import files
    from .model import AnomalyModel

    out = _check_output(args.out, "model file")
    _check_device(args.device)
    paths = _paths(args.paths)
    adapter, adapter_name = _adapter(args.adapter, args, paths)
    params = _detector_params(args)
    model = AnomalyModel(
        adapter,
        args.method,
        threshold=args.threshold,
        k=args.k,
        contamination=args.contamination,
        detector_params=params,
        map_k=args.map_k,
        calibration=args.calibration,
    )
    items = files.read_items(paths, type(adapter), **_reader_options(args))
    _info(args, f"fitting {args.method} on {len(items)} file(s) with the {adapter_name} adapter …")
    start = time.perf_counter()
    try:
        model.fit(items)
    except ValueError as err:
        raise CLIError(files.cli_message(err, paths)) from None
    model.save(out)
    n_cal = (
        "the training samples (too few to hold any out)"
        if model.in_sample_
        else (f"{len(model.calibration_scores_)} held-out sample(s)")
    )
    _info(
        args,
        f"fitted on {model.n_fit_samples_} model sample(s) from {len(items)} file(s) in "
        f"{time.perf_counter() - start:.0f} s; thresholds from {n_cal}: {model.thresholds_.describe()}; saved to {out}",
    )
    history = getattr(model.detector_, "clean_history_", None)
    if history is not None and len(history):
        _info(args, _cleaning_summary(history))
    return EXIT_OK


def _cleaning_summary(history: np.ndarray) -> str:
    """One line on what self-cleaning did, from a detector's ``clean_history_`` ``(rounds, 4)``."""
    rounds = ", ".join(f"{100 * share:.0f} %" for share in history[:, 2])
    text = f"self-cleaning left out {100 * history[-1, 2]:.0f} % of the training points (per round: {rounds})"
    dropped = int(history[-1, 3])
    return text + (f", {dropped} sample(s) whole in the last round" if dropped else "")


def _units(modality: str, results: list) -> tuple[str, str]:
    """The units of a map's main (last) and second axis: fixed per adapter; for labelled (xarray) data the
    coordinates' own ``units`` attributes, and seconds for an axis named ``time`` without one."""
    fixed = {"waveform": ("s", ""), "spectrogram": ("s", "Hz"), "image": ("px", "px")}
    if modality in fixed or not results:
        return fixed.get(modality, ("", ""))
    anomaly = results[0].anomaly

    def unit(dim: str) -> str:
        attrs = anomaly[dim].attrs if dim in anomaly.coords else {}
        return str(attrs.get("units", "s" if dim == "time" else ""))

    dims = anomaly.dims
    return (unit(dims[-1]) if dims else "", unit(dims[-2]) if len(dims) > 1 else "")


def _reader_options(args: argparse.Namespace) -> dict:
    options = {}
    if getattr(args, "sample_rate", None) is not None:
        options["sample_rate"] = args.sample_rate
    if getattr(args, "variable", None) is not None:
        options["variable"] = args.variable
    return options


def _cmd_score(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from . import __version__, files
    from .model import AnomalyModel, results_dataset
    from .results import summary_lines, write_result, write_segments_csv

    out = _check_output(args.out, "result file")
    seg_out = _check_output(args.segments, "segments file") if args.segments else None
    _check_device(args.device)
    _check_executor(args)
    model = AnomalyModel.load(args.model, device=args.device)
    thresholds = model.thresholds_for(
        method=args.threshold,
        k=args.k,
        contamination=args.contamination,
        score=args.score_threshold,
        map=args.map_threshold,
        map_k=args.map_k,
    )
    paths = _paths(args.paths)
    sample_rate = getattr(model.adapter_, "sample_rate_", None)
    reader = {"sample_rate": sample_rate} if sample_rate is not None else {}
    if args.variable is not None:
        reader["variable"] = args.variable
    adapter_class = type(model.adapter_)
    options = {"chunk_windows": args.chunk_windows, "keep_signal": not args.no_signal, "segments_in": args.segments_in}
    bar = tqdm(total=len(paths), desc="score", unit="file", disable=args.quiet or not sys.stderr.isatty())
    try:
        if args.executor == "ray":  # each file a Ray task; the results come back in the order of the files
            from .executors import score_files_ray

            results = score_files_ray(
                args.model, paths, reader, thresholds, options, args.device, args.ray_address, lambda _: bar.update()
            )
        else:
            # one file at a time: an archive is never held in memory whole
            items = (files.read_items([path], adapter_class, **reader)[0] for path in paths)
            results = list(model.score_items(items, thresholds, **options, progress=lambda _: bar.update()))
    except ValueError as err:
        raise CLIError(files.cli_message(err, paths)) from None
    finally:
        bar.close()
    main_unit, second_unit = _units(model.modality_, results)
    table, groups = results_dataset(
        results,
        thresholds,
        {
            "modality": model.modality_,
            "main_unit": main_unit,
            "second_unit": second_unit,
            "signal_units": "dB" if model.modality_ == "spectrogram" else "",
            "model": str(args.model),
            "method": model.method_label,
            "adapter": type(model.adapter_).__name__,
            "rddpm_signals_version": __version__,
        },
    )
    write_result(out, table, groups)
    if seg_out is not None:
        write_segments_csv(seg_out, table)
    if not args.quiet:
        print("\n".join(summary_lines(table, top=args.top)))
        print(f"results written to {out}" + (f" and {seg_out}" if seg_out else ""))
    flagged = bool(table["flagged"].values.any())
    return EXIT_FLAGGED if (flagged and args.fail_on_flag) else EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"report folder {args.out!r} is a file: pass a folder")
    _check_output(str(out / "index.html"), "report folder")
    index = write_report(args.result, out, which="all" if args.all else "flagged", top=args.top)
    _info(args, f"report written to {index}")
    return EXIT_OK


def _cmd_example(args: argparse.Namespace) -> int:
    from .examples import example_command

    return example_command(args) or EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(contamination=args.contamination, seed=args.seed, out=args.out)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- parser
def _common(q: argparse.ArgumentParser) -> None:
    q.add_argument("--quiet", action="store_true", help="print nothing but errors; no progress bars")
    q.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def _threshold_options(q: argparse.ArgumentParser, at_fit: bool) -> None:
    from .thresholds import DEFAULT_K

    g = q.add_argument_group("thresholds (label-free)")
    g.add_argument(
        "--threshold",
        choices=("mad", "quantile"),
        default="mad" if at_fit else None,
        help="mad: median + k·MAD of the calibration scores (default); quantile: their (1 − contamination) quantile; "
        "the map threshold is the same value unless --map-k is given" + ("" if at_fit else " (default: the model's)"),
    )
    g.add_argument(
        "--k", type=float, default=DEFAULT_K if at_fit else None, help=f"MAD multiple (default {DEFAULT_K:g})"
    )
    g.add_argument(
        "--map-k",
        type=float,
        help="set the map threshold apart: median + MAP_K·MAD of the calibration map values (default: = score "
        "threshold)",
    )
    g.add_argument("--contamination", type=float, help="prior share of defective samples, for --threshold quantile")
    if at_fit:
        g.add_argument(
            "--calibration",
            type=float,
            default=0.2,
            metavar="SHARE",
            help="share of the training files held out of the fit; the thresholds come from their scores (default "
            "0.2; 0 = from the training files themselves, which a network that fitted them can score too low)",
        )


def _parser() -> argparse.ArgumentParser:
    from .methods import METHODS

    p = argparse.ArgumentParser(
        prog="rddpm-signals",
        description="Find and outline defects in signals without a clean training set.",
        epilog="Exit codes: 0 ran; 1 flagged (score --fail-on-flag); 2 bad input; 3 internal error; 130 interrupted.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser("fit", help="train a model on a folder of (possibly defective) recordings")
    fit.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (recursive) or glob patterns")
    fit.add_argument("--out", required=True, help="the model file to write (e.g. press.model)")
    fit.add_argument(
        "--adapter",
        default="auto",
        help="waveform | spectrogram | image | xarray | auto (from the file types) | a registered name | module:Class",
    )
    fit.add_argument(
        "--method",
        default="rddpm",
        help=f"one of {', '.join(METHODS)}, optionally with constructor overrides: 'rddpm:train_steps=500,t0=50'",
    )
    ad = fit.add_argument_group("adapter options (those the adapter takes)")
    for flag, (param, kind, text) in _ADAPTER_OPTIONS.items():
        if kind is None:
            ad.add_argument(flag, dest=param, action="store_true", help=text)
        else:
            ad.add_argument(flag, dest=param, type=kind, help=text)
    ad.add_argument("--variable", help="the netCDF variable to read (xarray)")
    ad.add_argument("--adapter-option", action="append", metavar="KEY=VALUE", help="any other adapter parameter")
    det = fit.add_argument_group("diffusion options (default: the method's)")
    for name, kind in _DETECTOR_OPTIONS.items():
        det.add_argument("--" + name.replace("_", "-"), dest=name, type=kind)
    det.add_argument("--checkpoint", help="checkpoint file to write during training and resume from")
    fit.add_argument("--device", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    fit.add_argument("--seed", type=int, default=0, help="model seed (default 0)")
    _threshold_options(fit, at_fit=True)
    _common(fit)
    fit.set_defaults(run=_cmd_fit)

    score = sub.add_parser("score", help="score recordings with a fitted model → netCDF result (+ CSV of segments)")
    score.add_argument("model", help="the model file written by 'fit'")
    score.add_argument("paths", nargs="+", metavar="PATH", help="files, folders (recursive) or glob patterns")
    score.add_argument("--out", required=True, help="the result file to write (netCDF, e.g. result.nc)")
    score.add_argument("--segments", help="also write the flagged segments as CSV")
    score.add_argument("--score-threshold", type=float, help="flag records whose score is above this value")
    score.add_argument("--map-threshold", type=float, help="segments are where the map is above this value")
    score.add_argument(
        "--segments-in",
        choices=("flagged", "all"),
        default="flagged",
        help="report segments in flagged records only (default) or in every record",
    )
    _threshold_options(score, at_fit=False)
    score.add_argument("--fail-on-flag", action="store_true", help="exit with code 1 when any record is flagged")
    score.add_argument("--no-signal", action="store_true", help="leave the input signals out of the result file")
    score.add_argument("--chunk-windows", type=int, default=256, help="windows per chunk on long records (256)")
    score.add_argument("--variable", help="the netCDF variable to read (xarray)")
    score.add_argument("--device", help="override the model's device")
    score.add_argument("--top", type=int, default=10, help="records listed in the summary (10)")
    score.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="local",
        help="local: score the files one by one in this process (default); ray: each file a Ray task on a Ray "
        "cluster, outputs identical and written here (pip install 'rddpm-signals[ray]')",
    )
    score.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="with --executor ray: the cluster to join, e.g. ray://head:10001 (default: $RAY_ADDRESS, else a local "
        "Ray on this machine's CPUs); its workers read the PATHs, so use paths every node sees",
    )
    _common(score)
    score.set_defaults(run=_cmd_score)

    for name in ("report", "plot"):
        rep = sub.add_parser(
            name, help="pictures of the flagged records and an index page" + (" (= report)" if name == "plot" else "")
        )
        rep.add_argument("result", help="the result file written by 'score'")
        rep.add_argument("--out", required=True, help="the folder to write index.html and the PNGs to")
        rep.add_argument("--all", action="store_true", help="a picture of every record, not only the flagged ones")
        rep.add_argument("--top", type=int, help="at most this many records, highest scores first")
        _common(rep)
        rep.set_defaults(run=_cmd_report)

    ex = sub.add_parser("example", help="write example recordings (a folder of forging strokes) to try the CLI on")
    from .examples import add_example_arguments

    add_example_arguments(ex)
    _common(ex)
    ex.set_defaults(run=_cmd_example)

    sub.add_parser(
        "benchmark", help="run benchmarks/run.py's harness; options after 'benchmark' go to it", add_help=False
    )

    demo = sub.add_parser("demo", help="robust against plain (MSE) diffusion on contaminated forging strokes (~3 min)")
    demo.add_argument("--out", default="results/demo", help="folder for demo.md / demo.csv")
    demo.add_argument("--contamination", type=float, default=0.2, help="share of defective training strokes (0.2)")
    demo.add_argument("--seed", type=int, default=0)
    _common(demo)
    demo.set_defaults(run=_cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["benchmark"]:
        from .harness import main as benchmark_main

        return benchmark_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print(f"rddpm-signals {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as err:  # CLIError is a ValueError; OSError: unreadable or unwritable files
        if args.debug:
            raise
        from .files import cli_message

        print(f"rddpm-signals {args.command}: error: {cli_message(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:  # noqa: BLE001 - a traceback shown to a CLI user is a bug; --debug shows it
        if args.debug:
            raise
        message = " ".join(str(err).split())
        print(
            f"rddpm-signals {args.command}: internal error ({type(err).__name__}: {message}); rerun with --debug "
            "for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
