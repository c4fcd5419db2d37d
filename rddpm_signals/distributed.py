"""Training on several processes: ``torchrun --nproc_per_node=N`` on one machine, or across machines.

Nothing here does anything unless the process was launched by ``torchrun`` (``WORLD_SIZE`` > 1) or the caller
initialised a ``torch.distributed`` process group of more than one process: then :func:`prepare` sets the process
group up (gloo on the CPU, nccl on CUDA) and :meth:`Shard.current` tells the training loop which rows of each global
batch are this process's. In every other case :meth:`Shard.current` is ``None`` and training is the one-process
loop, unchanged.

A :class:`Shard` splits ``total`` rows (a global batch, or the training set when self-cleaning scores it) into
contiguous shares, one per rank in rank order, the first ``total % world`` ranks one row longer; :meth:`Shard.gather`
puts the shares back together in that order (every rank gets the whole), so a decision taken on the gathered rows
(LTS trimming, the residual scale, the self-cleaning flags) is the one-process decision.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.distributed as dist

from ._validation import resolve_device as _resolve_device

__all__ = ["launched", "prepare", "resolve_device", "Shard", "is_main_process"]


def launched() -> bool:
    """Whether this process was started by ``torchrun`` as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(device: str | torch.device) -> torch.device:
    """Like :func:`rddpm_signals._validation.resolve_device`, except that under ``torchrun`` with CUDA present
    ``"auto"`` and ``"cuda"`` mean this process's GPU, ``cuda:LOCAL_RANK`` (made the current CUDA device)."""
    if launched() and isinstance(device, str) and device in ("auto", "cuda") and torch.cuda.is_available():
        chosen = torch.device("cuda", _local_rank())
        torch.cuda.set_device(chosen)
        return chosen
    return _resolve_device(device)


def prepare(device: str | torch.device) -> torch.device:
    """The device to train on; under ``torchrun`` also initialise the default process group if nobody has (nccl
    for a CUDA device, gloo otherwise; rendezvous from torchrun's ``MASTER_ADDR`` / ``MASTER_PORT`` environment).
    A group this function creates is destroyed at interpreter exit."""
    chosen = resolve_device(device)
    if launched() and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
        atexit.register(_destroy)
    return chosen


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True in a single process and on rank 0 of a process group: the one process that writes."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


@dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` training processes, and (``total``) the number of rows being split.

    ``comm``: the device collectives run on (CUDA for nccl, the CPU for gloo).
    """

    rank: int
    world: int
    comm: torch.device
    total: int = 0

    @classmethod
    def current(cls) -> Shard | None:
        """The shard of this process in the default process group; ``None`` when there is no group of two or more
        processes (the one-process path)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        nccl = dist.get_backend() == "nccl"
        comm = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        return cls(dist.get_rank(), dist.get_world_size(), comm)

    def of(self, total: int) -> Shard:
        """The same shard splitting ``total`` rows."""
        return replace(self, total=int(total))

    @property
    def sizes(self) -> list[int]:
        """Rows of each rank's share of ``total``, in rank order."""
        q, extra = divmod(self.total, self.world)
        return [q + (r < extra) for r in range(self.world)]

    @property
    def rows(self) -> slice:
        """This rank's rows of ``total``: a contiguous slice."""
        sizes = self.sizes
        start = sum(sizes[: self.rank])
        return slice(start, start + sizes[self.rank])

    def local(self, whole: torch.Tensor) -> torch.Tensor:
        """This rank's rows of ``whole`` ``(total, …)`` → ``(share, …)``."""
        return whole[self.rows]

    def gather(self, part: torch.Tensor) -> torch.Tensor:
        """Every rank's share ``(share, …)`` put together in rank order → ``(total, …)`` on ``part``'s device, the
        same on every rank. Not differentiable: pass detached tensors."""
        sizes = self.sizes
        if part.shape[0] != sizes[self.rank]:
            raise ValueError(f"rank {self.rank} holds {part.shape[0]} rows, its share of {self.total} is {sizes}")
        width = max(sizes)
        padded = part.detach().to(self.comm)
        if padded.shape[0] < width:
            padded = torch.cat([padded, padded.new_zeros((width - padded.shape[0], *padded.shape[1:]))])
        pieces = [torch.empty_like(padded) for _ in range(self.world)]
        dist.all_gather(pieces, padded.contiguous())
        return torch.cat([p[:n] for p, n in zip(pieces, sizes, strict=True)]).to(part.device)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` (any picklable value) on every rank."""
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self.comm)
        return box[0]
