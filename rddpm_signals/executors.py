"""Where independent jobs run: on this machine (the default) or as Ray tasks on a local or remote Ray cluster.

Two kinds of job are independent and run this way: the cells of a benchmark sweep (``benchmarks/run.py --executor
ray``, see :mod:`rddpm_signals.harness.run`) and the files of a scoring run (``rddpm-signals score ... --executor
ray``). Either way the driver — the process that was started — gathers the results in submission order and writes
every output itself, exactly as the local executor writes it; the Ray tasks only compute.

Ray is optional (``pip install 'rddpm-signals[ray]'``) and imported only here, only when the Ray executor is asked
for: ``import rddpm_signals`` never imports it.

Which Ray: ``address`` (``--ray-address``, e.g. ``ray://head:10001`` or ``10.0.0.5:6379``), else the cluster in the
``RAY_ADDRESS`` environment variable, else a local Ray started for the run with one CPU per task slot and shut down
at its end. A Ray already initialised in this process (a notebook, a test) is used as it is and left running.

Every task runs with one torch thread, as the local executor's workers do: tasks that share a machine do not
oversubscribe its cores, and floating-point results do not depend on the thread count, so a Ray run gives the same
numbers as a local one.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = [
    "EXECUTORS",
    "RAY_INSTALL",
    "import_ray",
    "ray_session",
    "gather",
    "single_thread",
    "score_files_ray",
]

#: the executors ``--executor`` takes: ``local`` (this machine; the default) and ``ray``
EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'rddpm-signals[ray]'"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ValueError that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise ValueError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """A connected ``ray`` module for the body of the ``with``.

    ``address``: the cluster to join (else ``RAY_ADDRESS``, else a local Ray with ``num_cpus`` CPUs, default the
    machine's, started here and shut down on exit). A Ray initialised before the call is used and left running.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    options: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        options.update(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False)
    try:
        ray.init(address=address, **options)
    except (ConnectionError, TimeoutError) as err:
        message = " ".join(str(err).split())
        raise ValueError(
            f"could not connect to Ray at {address!r} ({type(err).__name__}: {message}): check the address "
            "(--ray-address or RAY_ADDRESS), or leave both unset to start a local Ray"
        ) from None
    try:
        yield ray
    finally:
        ray.shutdown()


def gather(ray: Any, refs: Sequence[Any], on_done: Callable[[int, Any], None] | None = None) -> list:
    """The values of ``refs`` in the order of ``refs``; ``on_done(i, value)`` as each task finishes (any order).

    A task that raised re-raises its own exception here (a ValueError stays a ValueError, with its one-line
    message), not Ray's wrapper with the worker's traceback. A fetched task's reference is dropped at once, so Ray
    can free what only the returned value still uses (pass a list built for the call, not one the caller keeps).
    """
    index = {ref: i for i, ref in enumerate(refs)}
    values: list[Any] = [None] * len(index)
    waiting = list(index)
    del refs
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1)
        for ref in done:
            i = index.pop(ref)
            try:
                values[i] = ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, Exception):
                    raise cause from None
                raise
            if on_done is not None:
                on_done(i, values[i])
        del done, ref
    return values


def single_thread() -> None:
    """One torch thread in this process (each task holds one CPU): no oversubscription, and results that do not
    depend on how many threads a machine has."""
    import torch

    torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------------- scoring
_MODELS: dict[tuple[str, str | None], Any] = {}  # per worker process: (model object id, device) → loaded model


def _worker_model(box: list, device: str | None) -> Any:
    """The model whose file bytes ``box[0]`` (an object ref) holds, loaded once per worker process and device."""
    from .model import AnomalyModel

    ray = import_ray()
    key = (box[0].hex(), device)
    if key not in _MODELS:
        _MODELS.clear()  # one model at a time: a worker of a long-lived cluster does not pile models up
        with tempfile.TemporaryDirectory(prefix="rddpm-model-") as folder:
            path = Path(folder) / "worker.model"
            path.write_bytes(ray.get(box[0]))
            _MODELS[key] = AnomalyModel.load(path, device=device)
    return _MODELS[key]


def _score_file(box: list, device: str | None, path: str, reader: dict, thresholds: Any, options: dict) -> Any:
    """One file scored on a Ray worker → its :class:`rddpm_signals.model.RecordResult`, as the local path scores
    it: the same reader, the same ``score_items`` on a one-item list."""
    from . import files

    single_thread()
    model = _worker_model(box, device)
    item = files.read_items([path], type(model.adapter_), **reader)[0]
    return next(iter(model.score_items([item], thresholds, **options)))


def score_files_ray(
    model_path: str | os.PathLike,
    paths: Sequence[os.PathLike | str],
    reader: dict,
    thresholds: Any,
    options: dict,
    device: str | None = None,
    address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list:
    """Score each of ``paths`` in a Ray task → their ``RecordResult`` objects, in the order of ``paths``.

    The model file is read once here and shared through the object store (a worker loads it once); ``reader`` and
    ``options`` are the keyword arguments of :func:`rddpm_signals.files.read_items` and
    :meth:`rddpm_signals.model.AnomalyModel.score_items`. The workers read the files: on a cluster, pass paths that
    every node reads under the same name (a shared folder). ``progress(i)`` is called as file ``i`` finishes.
    """
    blob = Path(model_path).read_bytes()
    with ray_session(address) as ray:
        task = ray.remote(num_cpus=1)(_score_file)
        box = [ray.put(blob)]  # in a list: the task gets the reference, and loads the model only when it is new
        on_done = None if progress is None else (lambda i, _: progress(i))
        return gather(ray, [task.remote(box, device, str(p), reader, thresholds, options) for p in paths], on_done)
