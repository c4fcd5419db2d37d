"""From command-line path arguments to what an adapter reads: files, folders and globs → paths → items.

- :func:`expand_paths` turns ``PATH...`` arguments (files, folders searched recursively, glob patterns) into one
  ordered list of data files. Inside folders and globs, names that start with ``_`` or ``.`` are skipped (ground
  truth such as ``_truth.csv``, temporary files of an interrupted write, hidden folders); a file named on its own is
  always taken.
- :func:`read_record` reads one audio / CSV / NPY / NPZ file into an :class:`adapters.Record`.
- :func:`read_items` gives the items an adapter takes for a list of paths (Records, image paths, DataArrays).
- :func:`auto_adapter` picks the adapter from the files' kinds; :func:`resolve_adapter` finds an adapter class by
  registered name, entry point (group ``rddpm_signals.adapters``) or ``"module:Class"``.
- :func:`cli_message` rewrites an adapter's error for the command line (file names for record numbers,
  ``--option`` for ``option=...``).

A CSV record is a header line, then one row per sample: a time column first (``time``, ``t``, ``time_s``,
``seconds``, … or any numeric first column) and one column per channel. The sample rate comes from the time column
(samples over its span; a rate within 0.1 % of a whole number of Hz is rounded to it, so files written with rounded
times agree on one rate). When the first header is not a time-like name and a ``sample_rate`` is given, every column
is a channel.
"""

from __future__ import annotations

import glob
import importlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMATS",
    "ADAPTER_KINDS",
    "TIME_COLUMNS",
    "expand_paths",
    "kind_of",
    "read_record",
    "read_items",
    "auto_adapter",
    "resolve_adapter",
    "cli_message",
]

FORMATS: dict[str, str] = {
    ".wav": "audio",
    ".flac": "audio",
    ".ogg": "audio",
    ".csv": "csv",
    ".npy": "array",
    ".npz": "array",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tif": "image",
    ".tiff": "image",
    ".bmp": "image",
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".netcdf": "netcdf",
}
#: the adapter that reads each kind of file when none is named
ADAPTER_KINDS: dict[str, str] = {"audio": "waveform", "csv": "waveform", "array": "waveform", "image": "image"}
ADAPTER_KINDS["netcdf"] = "xarray"
#: first-column headers read as a time axis in seconds (compared in lower case)
TIME_COLUMNS = ("time", "t", "time_s", "times", "seconds", "second", "sec", "secs", "s", "time (s)", "time[s]")
_GLOB_CHARS = re.compile(r"[*?\[]")
_IRREGULAR = 0.1  # largest relative deviation of one time step from the median step
_RECORD_KINDS = ("audio", "csv", "array")
_REQUIRED = ("fit", "to_tensor", "masks_to_grid", "to_signal")
ENTRY_POINT_GROUP = "rddpm_signals.adapters"


def _extensions() -> str:
    return " ".join(sorted(FORMATS))


def _a(word: str) -> str:
    """``word`` with its indefinite article: "an image", "a netcdf"."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def kind_of(path: str | os.PathLike) -> str:
    """The kind of data file ``path`` holds, from its extension: audio, csv, array, image or netcdf."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"{str(path)!r} has an unrecognised extension {suffix or '(none)'!r}: pass files ending in {_extensions()}"
        )
    return FORMATS[suffix]


def _skipped(relative: Path) -> bool:
    return any(part.startswith(("_", ".")) for part in relative.parts)


def _folder_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        for name in files:
            if not name.startswith(("_", ".")) and Path(name).suffix.lower() in FORMATS:
                found.append(Path(root) / name)
    return sorted(found)


def expand_paths(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """``PATH...`` arguments → the data files they name, unique, in argument order (sorted within a folder / glob).

    Each spec is a file (any recognised extension, see :data:`FORMATS`), a folder (searched recursively for
    recognised files) or a glob pattern (``*``, ``?``, ``[…]``; ``**`` matches folders recursively). Names starting
    with ``_`` or ``.`` are skipped inside folders and globs.
    """
    if isinstance(specs, str | os.PathLike):
        specs = [specs]
    if not specs:
        raise ValueError("no input paths given: pass files, folders or glob patterns")
    out: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        spec_str = os.fspath(spec)
        path = Path(spec_str).expanduser()
        if path.is_file():
            kind_of(path)
            found = [path]
        elif path.is_dir():
            found = _folder_files(path)
            if not found:
                raise ValueError(
                    f"folder {spec_str!r} holds no recognised data file: put files ending in {_extensions()} in it"
                )
        elif _GLOB_CHARS.search(spec_str):
            found = []
            for match in sorted(glob.glob(os.path.expanduser(spec_str), recursive=True)):
                m = Path(match)
                if m.is_dir():
                    found.extend(_folder_files(m))
                elif m.suffix.lower() in FORMATS and not m.name.startswith(("_", ".")):
                    found.append(m)
            if not found:
                raise ValueError(
                    f"glob {spec_str!r} matches no recognised data file: check the pattern (files ending in "
                    f"{_extensions()})"
                )
        else:
            raise ValueError(f"{spec_str!r} does not exist: check the path")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


# ------------------------------------------------------------------------------------------------------ records
def _rate_from_times(times: np.ndarray, name: str, path: Path) -> float:
    """The sample rate (Hz) of a time column in seconds; refuses a non-increasing or irregular one."""
    if len(times) < 2:
        raise ValueError(f"{str(path)!r} has fewer than two rows: a record needs at least two samples")
    steps = np.diff(times)
    if not (steps > 0).all():
        row = int(np.argmax(steps <= 0)) + 2
        raise ValueError(
            f"the time column {name!r} of {str(path)!r} does not increase (at data row {row}): sort the rows, or "
            "if the first column is a channel pass a sample rate (--sample-rate)"
        )
    median = float(np.median(steps))
    worst = float(np.max(np.abs(steps / median - 1.0)))
    if worst > _IRREGULAR:
        raise ValueError(
            f"the time column {name!r} of {str(path)!r} is irregular (steps from {steps.min():.6g} to "
            f"{steps.max():.6g} s): resample the file to a fixed rate"
        )
    rate = (len(times) - 1) / float(times[-1] - times[0])
    whole = round(rate)
    if whole >= 1 and abs(rate - whole) <= 1e-3 * rate:
        return float(whole)
    return float(f"{rate:.6g}")


def _check_rate(sample_rate: Any, path: Path) -> float:
    try:
        rate = float(sample_rate)
    except (TypeError, ValueError):
        rate = float("nan")
    if not (np.isfinite(rate) and rate > 0):
        raise ValueError(f"sample rate {sample_rate!r} for {str(path)!r} is not a positive number of Hz")
    return rate


def _finite(data: np.ndarray, path: Path) -> np.ndarray:
    if not np.isfinite(data).all():
        bad = int(data.size - np.count_nonzero(np.isfinite(data)))
        raise ValueError(f"{str(path)!r} holds {bad} empty, NaN or infinite values: fill or drop them first")
    return data


def _read_csv(path: Path, sample_rate: float | None):
    import pandas as pd

    from adapters import Record

    try:
        table = pd.read_csv(path, sep=None, engine="python") if _sniff(path) else pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"could not read {str(path)!r} as CSV ({type(err).__name__}: {err}): check the file") from None
    headers = [str(c).strip() for c in table.columns]
    if not headers:
        raise ValueError(f"{str(path)!r} has no columns: write a header line, then time and channel columns")
    numeric = pd.api.types.is_numeric_dtype
    non_numeric = [h for h, dtype in zip(headers, table.dtypes, strict=True) if not numeric(dtype)]
    if non_numeric:
        raise ValueError(
            f"columns {non_numeric} of {str(path)!r} are not numeric: write numbers only below the header line"
        )
    values = table.to_numpy(dtype=np.float64)
    time_like = headers[0].lower() in TIME_COLUMNS
    if not time_like and sample_rate is not None:
        rate, channels, data = _check_rate(sample_rate, path), headers, values.T
    else:
        if len(headers) < 2:
            raise ValueError(
                f"{str(path)!r} has a single column {headers[0]!r}: add channel columns after the time column, or "
                "pass a sample rate (--sample-rate) to read it as one channel"
            )
        times = _finite(values[:, 0], path)
        rate, channels, data = _rate_from_times(times, headers[0], path), headers[1:], values[:, 1:].T
    return Record(np.ascontiguousarray(_finite(data, path)), rate, str(path), tuple(channels))


def _sniff(path: Path) -> bool:
    """True when the header line is not comma-separated (semicolons, tabs): let pandas guess the separator."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.readline()
    except OSError:
        return False
    return "," not in head and any(sep in head for sep in (";", "\t", " "))


def _read_array(path: Path, sample_rate: float | None):
    from adapters import Record

    rate = sample_rate
    try:
        if path.suffix.lower() == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as loaded:
                keys = list(loaded.files)
                arrays = [k for k in keys if k != "sample_rate"]
                if "x" in keys:
                    data = loaded["x"]
                elif len(arrays) == 1:
                    data = loaded[arrays[0]]
                else:
                    raise ValueError(f"it holds arrays {keys}: name the record 'x'")
                if "sample_rate" in keys:
                    stored = np.asarray(loaded["sample_rate"])
                    if stored.size != 1:
                        raise ValueError(f"its 'sample_rate' has shape {stored.shape}: store one number")
                    rate = float(stored.reshape(()))
    except (OSError, ValueError, EOFError, KeyError, TypeError) as err:
        raise ValueError(f"could not read {str(path)!r} as a numpy array ({err}): check the file") from None
    if data.dtype == object or not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ValueError(f"{str(path)!r} holds {data.dtype} values: store real numbers")
    if data.ndim not in (1, 2):
        raise ValueError(f"{str(path)!r} holds an array of shape {data.shape}: store (samples,) or (channels, samples)")
    if rate is None:
        raise ValueError(
            f"{str(path)!r} carries no sample rate: pass one (--sample-rate HZ), or store it as 'sample_rate' in an "
            ".npz file"
        )
    data = _finite(np.asarray(data, dtype=np.float64), path)
    return Record(data if data.ndim == 2 else data[None], sample_rate=_check_rate(rate, path), source=str(path))


def read_record(path: str | os.PathLike, sample_rate: float | None = None):
    """Read one audio, CSV, NPY or NPZ file → :class:`adapters.Record` with ``data`` ``(C, L)``: float64, except
    audio whose samples float32 holds exactly (16/24-bit PCM, 32-bit float, …), read as float32 — half the memory
    of a long recording, the same values (:func:`adapters.read_audio`).

    Audio (soundfile) brings its own rate; a CSV its time column's rate (``sample_rate`` is then ignored);
    NPY files need ``sample_rate``; NPZ files hold the record as ``x`` (or their only array) and may store
    ``sample_rate``. ``record.source`` is the path; a CSV's channel headers go to ``record.channels``.
    """
    import adapters

    path = Path(path)
    kind = kind_of(path)
    if kind not in _RECORD_KINDS:
        raise ValueError(
            f"{str(path)!r} is {_a(kind)} file, not a record: read it with the {ADAPTER_KINDS[kind]} adapter"
        )
    if not path.is_file():
        raise ValueError(f"{str(path)!r} does not exist: check the path")
    if kind == "audio":
        return adapters.read_audio(path)
    if kind == "csv":
        return _read_csv(path, sample_rate)
    return _read_array(path, sample_rate)


def _adapter_family(adapter: str | type) -> str:
    """How an adapter takes files: "record", "image", "xarray" or "path" (a custom adapter reads paths itself)."""
    import adapters
    from adapters.waveform import AudioInput

    cls = adapter if isinstance(adapter, type) else None
    if cls is None:
        if adapter in ("waveform", "spectrogram"):
            return "record"
        if adapter in ("image", "xarray"):
            return adapter
        cls = resolve_adapter(adapter)
    if issubclass(cls, AudioInput):
        return "record"
    if issubclass(cls, adapters.ImageAdapter):
        return "image"
    if issubclass(cls, adapters.XarrayAdapter):
        return "xarray"
    return "path"


def _check_image(path: Path) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"could not read {str(path)!r} as an image ({err}): check the file") from None
    return str(path)


def _read_netcdf(path: Path, variable: str | None) -> Any:
    import adapters

    data = adapters.read_netcdf(path, variable)
    if variable is None and len(data.data_vars) == 1:
        data = data[next(iter(data.data_vars))]
    data.attrs["source"] = str(path)  # the record's name in results, as a waveform Record's source
    return data


def read_items(paths: Sequence[str | os.PathLike], adapter_name: str | type, **reader_options: Any) -> list:
    """The items to hand ``adapter_name``'s adapter for ``paths`` (one per path, in order).

    Waveform / spectrogram adapters get :class:`adapters.Record` objects (``reader_options``: ``sample_rate`` for
    files that carry none); the image adapter gets the path strings (each checked to open as an image); the xarray
    adapter gets one DataArray per file (``reader_options``: ``variable``; a file with several variables gives a
    Dataset, whose variables the adapter takes as channels); any other adapter gets the path strings. A file the
    adapter cannot take, or a corrupt one, is a ValueError naming the file.
    """
    family = _adapter_family(adapter_name)
    name = adapter_name.__name__ if isinstance(adapter_name, type) else adapter_name
    unknown = set(reader_options) - {"sample_rate", "variable"}
    if unknown:
        raise ValueError(f"unknown reader options {sorted(unknown)}: use sample_rate or variable")
    items = []
    for p in paths:
        path = Path(p)
        kind = kind_of(path)
        if family == "path":
            items.append(str(path))
            continue
        wanted = {"record": _RECORD_KINDS, "image": ("image",), "xarray": ("netcdf",)}[family]
        if kind not in wanted:
            raise ValueError(
                f"{str(path)!r} is {_a(kind)} file but the {name} adapter reads {'/'.join(wanted)} files: pass "
                f"--adapter {ADAPTER_KINDS[kind]} or leave the file out"
            )
        if not path.is_file():
            raise ValueError(f"{str(path)!r} does not exist: check the path")
        try:
            if family == "record":
                items.append(read_record(path, reader_options.get("sample_rate")))
            elif family == "image":
                items.append(_check_image(path))
            else:
                items.append(_read_netcdf(path, reader_options.get("variable")))
        except ValueError:
            raise
        except (OSError, RuntimeError, KeyError, TypeError, EOFError, MemoryError) as err:
            raise ValueError(
                f"could not read {str(path)!r} as {kind} ({type(err).__name__}: {err}): check the file"
            ) from None
    return items


def auto_adapter(paths: Sequence[str | os.PathLike]) -> str:
    """The adapter that reads every file of ``paths``: "waveform" (audio, CSV, NPY / NPZ), "image" or "xarray"."""
    if not paths:
        raise ValueError("no input files: pass files, folders or glob patterns")
    by_adapter: dict[str, str] = {}
    for p in paths:
        by_adapter.setdefault(ADAPTER_KINDS[kind_of(p)], str(p))
    if len(by_adapter) > 1:
        examples = ", ".join(f"{a}: {p!r}" for a, p in by_adapter.items())
        raise ValueError(f"the files need different adapters ({examples}): pass --adapter NAME or split the files")
    return next(iter(by_adapter))


# ------------------------------------------------------------------------------------------------------ adapters
def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _check_class(obj: Any, name: str) -> type:
    if not isinstance(obj, type):
        raise ValueError(f"{name!r} is a {type(obj).__name__}, not an adapter class: name a class")
    missing = [m for m in _REQUIRED if not callable(getattr(obj, m, None))]
    if missing:
        raise ValueError(f"{name!r} lacks {', '.join(missing)}: an adapter class defines {', '.join(_REQUIRED)}")
    return obj


def resolve_adapter(name: str) -> type:
    """The adapter class for ``name``: a registered name (``adapters.get``), an entry point of group
    ``rddpm_signals.adapters``, or ``"module:Class"`` (the module is imported; nothing is instantiated)."""
    import adapters

    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"adapter name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name in adapters.available():
        return adapters.get(name)
    points = _entry_points()
    if name in points:
        try:
            obj = points[name].load()
        except Exception as err:  # a third-party plugin may fail in any way on import
            raise ValueError(f"adapter entry point {name!r} failed to load ({type(err).__name__}: {err})") from None
        return _check_class(obj, name)
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except Exception as err:  # ImportError, or whatever the module raises while importing
            raise ValueError(
                f"could not import module {module_name!r} for adapter {name!r} ({type(err).__name__}: {err}): check "
                "the module is on the Python path"
            ) from None
        for part in attr.split("."):
            if not part or not hasattr(obj, part):
                raise ValueError(f"module {module_name!r} has no {attr!r}: check the class name in {name!r}")
            obj = getattr(obj, part)
        return _check_class(obj, name)
    names = sorted(set(adapters.available()) | set(points))
    raise ValueError(f"unknown adapter {name!r}: use one of {names}, or 'module:Class' for your own")


# ------------------------------------------------------------------------------------------------------ messages
_OPTION = re.compile(r"\b([a-z][a-z0-9_]*)=(?:\.\.\.|True)(?:\s*\((\w+)\))?")
_NUMBERED = re.compile(r"\b(record|image) (\d+)\b")


def cli_message(message: str | BaseException, paths: Sequence[str | os.PathLike] | None = None) -> str:
    """An adapter's error message for the command line, on one line: ``record 3`` / ``image 3`` become the file's
    name (when ``paths`` lists the files in the order they were passed) and ``option=...`` / ``option=True``
    become ``--option`` (``sample_rate=... (Hz)`` → ``--sample-rate HZ``)."""
    text = " ".join(str(message).split())
    if paths is not None:
        names = [str(p) for p in paths]

        def named(m: re.Match) -> str:
            i = int(m.group(2))
            return f"{m.group(1)} {names[i]!r}" if i < len(names) else m.group(0)

        text = _NUMBERED.sub(named, text)

    def option(m: re.Match) -> str:
        flag = "--" + m.group(1).replace("_", "-")
        if m.group(0).split("=", 1)[1].startswith("True"):
            return flag
        return f"{flag} {(m.group(2) or 'VALUE').upper()}"

    return _OPTION.sub(option, text)
