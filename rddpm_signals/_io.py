"""Atomic file writes: write to a temporary file beside the target, then rename, so no reader ever sees a
half-written file and an interrupted write leaves the old file (or none) in place. Also the markdown tables that
the benchmarks and reports print."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_torch_save",
    "markdown_row",
    "markdown_table",
    "write_table_and_rows",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is flushed to disk and renamed to ``path`` with the
    permissions a new file gets under the umask (0644 by default, not mkstemp's 0600), on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp, folder=False)
        os.replace(tmp, path)
        _fsync(path.parent, folder=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: str | os.PathLike, folder: bool) -> None:
    """Flush a file (or a folder's entry list) to disk. A file's failure (a full disk: ENOSPC) is raised; a folder
    that cannot be opened or synced (some file systems refuse) is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def markdown_row(cells: Iterable[object]) -> str:
    """One markdown table line, ``| a | b |``: the cells converted with ``str()`` and joined by ``" | "``."""
    return "| " + " | ".join(map(str, cells)) + " |"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table: the ``header`` line, the separator ``|---|---|`` (one ``---|`` per column), then one
    :func:`markdown_row` per row; lines joined by ``"\\n"``, with no trailing newline."""
    return "\n".join([markdown_row(header), "|" + "---|" * len(header), *map(markdown_row, rows)])


def write_table_and_rows(folder: str | os.PathLike, stem: str, table: str, rows: list[dict]) -> None:
    """A benchmark's outputs: ``folder/stem.md`` (the printed markdown ``table``) and ``folder/stem.json``
    (``rows``), each written atomically; ``folder`` is created."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{stem}.md", table + "\n")
    atomic_write_text(folder / f"{stem}.json", json.dumps(rows, indent=1) + "\n")


def atomic_torch_save(obj: object, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
