"""The training loop for noise-prediction networks: AdamW, EMA, gradient clipping, bf16 autocast, a progress bar
with the running loss, and atomic checkpoints that a later call resumes from.

The loop knows nothing about anomaly detection; :class:`~rddpm_signals.detector.RobustDiffusion` drives it.

Several processes (``torchrun``, see :mod:`rddpm_signals.distributed`): one code path. Every process draws the same
epoch order, timesteps and noise for the whole global batch from the shared seeded generator and keeps its own rows
(:class:`~rddpm_signals.distributed.Shard`); the network is wrapped in DistributedDataParallel, which averages the
gradients; the loss takes its batch-level decisions over the gathered global batch. Rank 0 alone shows progress and
writes checkpoints (a resumed checkpoint is read by rank 0 and broadcast); every process ends with the same weights.

On CUDA the loop does not wait for the device every step: the loss is read back every :data:`READ_EVERY` steps (and
before each checkpoint and at the end). A non-finite loss is then found up to that many steps late, when updates
after it have been applied in memory: training still raises, and no checkpoint written after the bad step exists,
so the checkpoint on disk is good (and the detector's ``fit`` restores its earlier state). On the CPU each step's
loss is checked before its update, as before.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from ._io import atomic_torch_save
from .diffusion.noise import NoiseFn, gaussian_noise
from .diffusion.schedule import NoiseSchedule
from .distributed import Shard
from .losses import DiffusionLoss

__all__ = ["TrainConfig", "TrainResult", "Reweighter", "train", "autocast", "read_checkpoint"]

#: On CUDA, steps between reads of the loss from the device (see the module docstring).
READ_EVERY = 50

_CHECKPOINT_KEYS = ("net", "ema", "opt", "generator", "step", "order", "cursor", "history", "loss", "weights")


def read_checkpoint(path: Path, fingerprint: dict | None) -> dict:
    """A training checkpoint at ``path`` (read ``weights_only``: nothing is unpickled) whose fingerprint equals
    ``fingerprint``; otherwise a one-line ValueError naming what differs and how to start afresh."""
    fresh = "pass resume=False to start afresh, or another checkpoint_path"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means the same thing here
        raise ValueError(f"{str(path)!r} is not a training checkpoint ({type(err).__name__}): {fresh}") from None
    if not isinstance(state, dict) or any(k not in state for k in _CHECKPOINT_KEYS):
        raise ValueError(f"{str(path)!r} is not a training checkpoint of this package: {fresh}")
    saved = state.get("fingerprint")
    if fingerprint is not None and saved != fingerprint:
        if not saved:
            raise ValueError(f"the checkpoint at {str(path)!r} has no fingerprint (an older version wrote it): {fresh}")
        differ = sorted(k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k))
        shown = ", ".join(f"{k} ({saved.get(k, '-')} → {fingerprint.get(k, '-')})" for k in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise ValueError(f"the checkpoint at {str(path)!r} is of another run: {shown}{more} differ; {fresh}")
    return state


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 16
    lr: float = 2e-4
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float | None = 1.0
    precision: str = "fp32"  # "fp32" | "bf16" (autocast)
    t_max: int | None = None  # train on t in [0, t_max); None = the whole schedule
    warmup: int | None = None  # linear LR warm-up steps; None = min(100, steps // 10)
    checkpoint_path: str | None = None
    checkpoint_every: int = 500
    # what makes this run this run (data, every setting that changes training); a checkpoint of another run is
    # refused rather than resumed. ``resume=False``: ignore an existing checkpoint and start afresh.
    fingerprint: dict | None = None
    resume: bool = True
    verbose: bool = False
    description: str = "fit"
    # steps between reads of the loss from the device; None: 1 on the CPU (each loss checked before its update),
    # READ_EVERY on CUDA. A caller's ``on_step`` needs every loss at once, so it makes this 1.
    read_every: int | None = None


@dataclass
class TrainResult:
    ema: nn.Module
    history: list[float] = field(default_factory=list)  # loss per step
    weights: torch.Tensor | None = None  # the last per-element weights of a reweighter, (N, 1, …)


class Reweighter(Protocol):
    """Computes per-element loss weights for the whole training set from the current EMA network."""

    def due(self, step: int) -> bool: ...

    def __call__(self, ema: nn.Module) -> torch.Tensor: ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint must keep for a resumed run to report as an uninterrupted one."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` when ``precision == "bf16"``, a no-op context otherwise."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to 10 % of the base rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class _EMA:
    """Exponential moving average of a network's weights, updated with one fused call per step."""

    def __init__(self, net: nn.Module):
        self.module = copy.deepcopy(net).eval().requires_grad_(False)
        self._targets = list(self.module.parameters())
        self._sources = list(net.parameters())
        self._buffers = list(zip(self.module.buffers(), net.buffers(), strict=True))

    @torch.no_grad()
    def update(self, decay: float) -> None:
        torch._foreach_lerp_(self._targets, [p.detach() for p in self._sources], 1.0 - decay)
        for target, source in self._buffers:
            target.copy_(source)


def train(
    net: nn.Module,
    data: torch.Tensor,
    schedule: NoiseSchedule,
    loss_fn: DiffusionLoss,
    noise_fn: NoiseFn,
    config: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
    on_step: Callable[[int, float], None] | None = None,
    reweighter: Reweighter | None = None,
) -> TrainResult:
    """Train ``net`` to predict the noise added to ``data`` ``(N, C, …)`` (already normalised, on the CPU).

    Batches are drawn without replacement within an epoch from ``generator``; timesteps uniformly from
    ``[0, t_max)``. If ``config.checkpoint_path`` holds a checkpoint of this run, training resumes from it.
    ``reweighter``, when given, is asked before every step whether new per-element loss weights are due; if so it
    computes them from the EMA network (``(N, 1, …)``, 0 = ignore that training point), e.g. for self-cleaning.
    Returns the EMA copy of the network (in eval mode), the loss history and the last weights.
    """
    n = data.shape[0]
    if n == 0:
        raise ValueError("no training samples: pass at least one sample to fit")
    t_max = schedule.num_steps if config.t_max is None else int(config.t_max)
    if not 1 <= t_max <= schedule.num_steps:
        raise ValueError(f"t_max must lie in [1, {schedule.num_steps}], got {config.t_max}")
    warmup = min(100, config.steps // 10) if config.warmup is None else config.warmup
    batch = min(config.batch_size, n)
    shard = _batch_shard(batch)
    main = shard is None or shard.rank == 0  # the one process that shows progress and writes checkpoints

    net = net.to(device).train()
    ema_tracker = _EMA(net)
    ema = ema_tracker.module
    params = list(net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)
    history: list[float] = []
    weights: torch.Tensor | None = None
    start, order, cursor = 0, torch.randperm(n, generator=generator), 0
    noise_generator = _noise_generator(generator, device, noise_fn)

    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    state = _resumed_state(ckpt, config, shard)
    if state is not None:
        net.load_state_dict(state["net"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        generator.set_state(state["generator"])
        if noise_generator is not generator and "noise_generator" in state:
            noise_generator.set_state(state["noise_generator"])
        start, order, cursor = int(state["step"]), state["order"], int(state["cursor"])
        history = state["history"].tolist()
        loss_fn.load_state_dict(state["loss"])
        weights = state["weights"] if state["weights"].numel() else None
        if reweighter is not None and "reweighter" in state:  # checkpoints written before it was kept lack it
            reweighter.load_state_dict(state["reweighter"])

    def save_checkpoint(step: int) -> None:
        atomic_torch_save(
            {
                "net": net.state_dict(),
                "ema": ema.state_dict(),
                "opt": opt.state_dict(),
                "generator": generator.get_state(),
                **({} if noise_generator is generator else {"noise_generator": noise_generator.get_state()}),
                "step": step,
                "order": order,
                "cursor": cursor,
                "history": torch.tensor(history, dtype=torch.float64),
                "loss": loss_fn.state_dict(),
                "weights": torch.empty(0) if weights is None else weights,
                **({} if reweighter is None else {"reweighter": reweighter.state_dict()}),
                "fingerprint": config.fingerprint or {},
            },
            ckpt,
        )

    model = net if shard is None else _data_parallel(net, device)
    loss_fn.shard = shard
    saved_step = start  # the step of the checkpoint on disk (0: none yet)
    bar = tqdm(range(start, config.steps), desc=config.description, disable=not (config.verbose and main), leave=False)
    log = _LossLog(history, bar, on_step, _read_every(config, device, on_step))
    try:
        for step in bar:
            if reweighter is not None and reweighter.due(step):
                weights = reweighter(ema)
            if cursor + batch > n:
                order, cursor = torch.randperm(n, generator=generator), 0
            idx = order[cursor : cursor + batch]
            cursor += batch
            # The whole global batch's timesteps and noise are drawn on every process, in the one-process order,
            # and each keeps its own rows: the run then equals the one-process run up to float reduction order.
            t = torch.randint(0, t_max, (batch,), generator=generator)
            noise = noise_fn((batch, *data.shape[1:]), noise_generator)
            if shard is not None:
                idx, t, noise = shard.local(idx), shard.local(t), shard.local(noise)
            x0, t, noise = _to_device(data[idx], device), _to_device(t, device), _to_device(noise, device)
            x_t = schedule.q_sample(x0, t, noise)

            for group in opt.param_groups:
                group["lr"] = config.lr * _lr_factor(step, config.steps, warmup)
            with autocast(device, config.precision):
                pred = model(x_t, t)
            w = None if weights is None else _to_device(weights[idx], device)
            out = loss_fn(pred.float(), noise, t, weight=w)
            value = log.check(step, out.loss if out.batch_loss is None else out.batch_loss, saved_step, ckpt)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(params, config.grad_clip, foreach=True)
            opt.step()
            # EMA warm-up: early on, follow the weights closely so a short run is not averaged with its random init.
            ema_tracker.update(min(config.ema_decay, (1 + step) / (10 + step)))

            log.record(step, value)
            if ckpt is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
                log.flush(saved_step, ckpt)  # never a checkpoint after a non-finite loss not yet read
                if main:
                    save_checkpoint(step + 1)
                saved_step = step + 1
        log.flush(saved_step, ckpt)
    finally:
        loss_fn.shard = None
    bar.close()
    return TrainResult(ema=ema.eval(), history=history, weights=weights)


def _read_every(config: TrainConfig, device: torch.device, on_step: Callable | None) -> int:
    if on_step is not None:
        return 1
    if config.read_every is not None:
        if config.read_every < 1:
            raise ValueError(f"read_every must be >= 1 (steps), got {config.read_every}")
        return int(config.read_every)
    return READ_EVERY if device.type == "cuda" else 1


def _noise_generator(generator: torch.Generator, device: torch.device, noise_fn: NoiseFn) -> torch.Generator:
    """Where the training noise is drawn: ``generator`` itself (the CPU, and any noise but Gaussian), or on CUDA a
    generator on the device, seeded once from ``generator``, so Gaussian noise is made where it is used instead of
    being copied over every step. CPU runs draw nothing extra and stay bit-identical; CUDA runs are reproducible
    among themselves (same seed, same GPU model) but draw other numbers than a CPU run."""
    if device.type != "cuda" or noise_fn is not gaussian_noise:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device).manual_seed(seed)


def _batch_shard(batch: int) -> Shard | None:
    """This process's share of each global batch of ``batch`` rows; ``None`` in one process."""
    shard = Shard.current()
    if shard is not None and batch < shard.world:
        raise ValueError(
            f"the batch of {batch} samples cannot be shared by {shard.world} processes: raise batch_size (and the "
            "number of training samples) to at least the number of processes, or start fewer"
        )
    return None if shard is None else shard.of(batch)


def _data_parallel(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` wrapped in DistributedDataParallel (its gradients are averaged over the processes in ``backward``)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` (on the CPU) on ``device``; for CUDA through pinned memory, copied without waiting."""
    if device.type == "cuda":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _resumed_state(ckpt: Path | None, config: TrainConfig, shard: Shard | None) -> dict | None:
    """The checkpoint to resume from, or ``None``. With several processes rank 0 reads it and broadcasts it (the
    other machines need not see rank 0's disk); a refused checkpoint raises the same error on every process."""
    wanted = ckpt is not None and ckpt.exists() and config.resume
    if shard is None:
        return read_checkpoint(ckpt, config.fingerprint) if wanted else None
    found: dict | str | None = None
    if shard.rank == 0 and wanted:
        try:
            found = read_checkpoint(ckpt, config.fingerprint)
        except ValueError as err:
            found = str(err)
    found = shard.broadcast(found)
    if isinstance(found, str):
        raise ValueError(found)
    return found


def _non_finite(value: float, step: int, when: str, saved_step: int | None, ckpt: Path | None) -> FloatingPointError:
    """The one-line error for a non-finite training loss at ``step``; ``when`` says when it was found."""
    last = f"; the checkpoint (step {saved_step}) is intact" if ckpt is not None and saved_step else ""
    return FloatingPointError(
        f"training loss became {value} at step {step} ({when}){last}: lower lr, or check the input for NaN / huge "
        "values"
    )


class _LossLog:
    """The loss history and the progress bar, fed one step at a time. ``every`` = 1 (the CPU, or a caller that
    wants ``on_step``): each loss is read as it is computed and checked before its update. ``every`` > 1 (CUDA):
    losses stay on the device and are read ``every`` steps at once (one wait instead of ``every``)."""

    def __init__(self, history: list[float], bar: tqdm, on_step: Callable[[int, float], None] | None, every: int):
        self.history, self.bar, self.on_step, self.every = history, bar, on_step, every
        self.pending: list[tuple[int, torch.Tensor]] = []
        self.running: float | None = None

    def check(self, step: int, loss: torch.Tensor, saved_step: int, ckpt: Path | None) -> float | torch.Tensor:
        """This step's loss (a float, checked) when read every step; else the detached device scalar."""
        if self.every > 1:
            return loss.detach()
        value = float(loss.detach())
        if not math.isfinite(value):  # before the update: the weights, the EMA and the last checkpoint stay good
            raise _non_finite(value, step, "not applied", saved_step, ckpt)
        return value

    def record(self, step: int, value: float | torch.Tensor) -> None:
        if self.every == 1:
            self._append(step, float(value))
            return
        self.pending.append((step, value))  # type: ignore[arg-type]
        if len(self.pending) >= self.every:
            self.flush(None, None)

    def flush(self, saved_step: int | None, ckpt: Path | None) -> None:
        """Read the losses still on the device; raise if one of them is not finite."""
        if not self.pending:
            return
        steps = [s for s, _ in self.pending]
        values = torch.stack([v for _, v in self.pending]).tolist()
        self.pending = []
        for step, value in zip(steps, values, strict=True):
            if not math.isfinite(value):
                when = (
                    f"found at step {steps[-1]}: on CUDA the loss is read every {self.every} steps, and this fit's "
                    "weights are discarded"
                )
                raise _non_finite(value, step, when, saved_step, ckpt)
            self._append(step, value)

    def _append(self, step: int, value: float) -> None:
        self.history.append(value)
        self.running = value if self.running is None else 0.98 * self.running + 0.02 * value
        self.bar.set_postfix(loss=f"{self.running:.4f}")
        if self.on_step is not None:
            self.on_step(step, value)
