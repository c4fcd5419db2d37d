"""RobustDiffusion: a DDPM trained with a robust noise-prediction loss, used as an anomaly detector.

Fitting learns a robust per-channel normalisation (median / IQR: the training data are contaminated) and trains a
UNet on the normalised samples. Scoring noises each sample part-way (``t0`` forward steps), denoises it back to a
"healthy" reconstruction ``x̂`` and maps ``|x - x̂|`` (in normalised units, averaged over channels).

Plain DDPM is ``RobustDiffusion(loss="mse")``; AnoDDPM is ``RobustDiffusion(loss="mse", noise="simplex")``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ._validation import check_fitted, resolve_device
from .base import BaseDetector, smooth_maps
from .diffusion.noise import make_noise_fn
from .diffusion.sampler import SAMPLERS, reconstruct
from .diffusion.schedule import NoiseSchedule
from .losses import make_loss
from .nets.unet import UNet
from .training import TrainConfig, atomic_torch_save, autocast, train

__all__ = ["RobustDiffusion", "robust_center_scale"]

FORMAT_VERSION = 1
# Offsets that keep the random streams of initialisation, training and scoring apart for one random_state.
_TRAIN_STREAM, _SCORE_STREAM = 1, 2


def robust_center_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel median and robust standard deviation (IQR / 1.349) of ``X`` ``(N, C, …)`` → two ``(C,)`` arrays.

    A channel whose IQR is zero (e.g. mostly constant) falls back to its MAD, then its standard deviation, then 1.
    """
    flat = np.moveaxis(X, 1, 0).reshape(X.shape[1], -1).astype(np.float64)
    center = np.median(flat, axis=1)
    q75, q25 = np.percentile(flat, [75, 25], axis=1)
    scale = (q75 - q25) / 1.349
    mad = 1.4826 * np.median(np.abs(flat - center[:, None]), axis=1)
    std = flat.std(axis=1)
    for fallback in (mad, std, np.ones_like(scale)):
        scale = np.where(scale > 1e-12, scale, fallback)
    return center.astype(np.float32), scale.astype(np.float32)


def _seed(random_state: int | None, stream: int) -> int:
    return (0 if random_state is None else int(random_state)) * 1000003 + stream


def _generator(random_state: int | None, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(_seed(random_state, stream))


class RobustDiffusion(BaseDetector):
    """Robust denoising diffusion anomaly detector for ``(N, C, L)`` signals (``dims=1``) or ``(N, C, H, W)``
    images (``dims=2``).

    Parameters
    ----------
    dims: 1 or 2.
    loss: ``"mse" | "l1" | "huber" | "pseudo_huber" | "lts"`` — the noise-prediction loss.
    delta: Huber threshold δ (also the pseudo-Huber ``c``), in units of the noise (unit variance).
    trim: LTS share of samples dropped from each batch.
    channels, channel_mult, num_res_blocks, attention: UNet width, levels, depth, mid-level attention.
    timesteps, schedule: length and kind (``"linear" | "cosine"``) of the noise schedule.
    train_steps, batch_size, lr, weight_decay, ema_decay, grad_clip: the optimisation (AdamW, EMA weights are
        used for scoring).
    precision: ``"fp32"`` or ``"bf16"`` (autocast, for training and scoring).
    train_t_max: train only on timesteps below this (``None``: the whole schedule). Scoring never uses
        ``t >= t0``, so ``train_t_max`` a little above ``t0`` spends the training budget where it is used.
    t0: forward steps of the partial diffusion at scoring time (``0 … timesteps``).
    reverse_steps: reverse steps back from ``t0`` (``None``: all ``t0`` of them).
    sampler: ``"ddpm"`` (ancestral) or ``"ddim"``; eta: DDIM stochasticity (0 = deterministic).
    noise: ``"gaussian"`` or ``"simplex"`` (AnoDDPM), for training and scoring alike.
    n_reconstructions: reconstructions averaged into each map.
    map_smoothing: Gaussian σ (in samples / pixels) applied to each map; 0 = none.
    score_quantile: ``anomaly_score`` is this quantile of each map (1 = max).
    scoring_batch_size: samples per batch when scoring.
    device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, …
    random_state: seed of initialisation, batch order and scoring noise; same seed → same maps.
    verbose: show a progress bar with the running loss during ``fit``.
    checkpoint_path: if set, ``fit`` checkpoints there and resumes from an existing checkpoint.

    Fitted attributes: ``net_`` (EMA UNet), ``center_`` / ``scale_`` ``(C,)``, ``n_channels_``,
    ``loss_history_`` ``(train_steps,)``, ``device_``.
    """

    def __init__(
        self,
        dims: int = 1,
        loss: str = "huber",
        delta: float = 1.0,
        trim: float = 0.2,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = True,
        timesteps: int = 1000,
        schedule: str = "linear",
        train_steps: int = 2000,
        batch_size: int = 16,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        ema_decay: float = 0.995,
        grad_clip: float | None = 1.0,
        precision: str = "fp32",
        train_t_max: int | None = None,
        t0: int = 100,
        reverse_steps: int | None = None,
        sampler: str = "ddpm",
        eta: float = 0.0,
        noise: str = "gaussian",
        n_reconstructions: int = 1,
        map_smoothing: float = 0.0,
        score_quantile: float = 0.99,
        scoring_batch_size: int = 64,
        device: str = "auto",
        random_state: int | None = 0,
        verbose: bool = True,
        checkpoint_path: str | None = None,
    ):
        self.dims = dims
        self.loss = loss
        self.delta = delta
        self.trim = trim
        self.channels = channels
        self.channel_mult = channel_mult
        self.num_res_blocks = num_res_blocks
        self.attention = attention
        self.timesteps = timesteps
        self.schedule = schedule
        self.train_steps = train_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.ema_decay = ema_decay
        self.grad_clip = grad_clip
        self.precision = precision
        self.train_t_max = train_t_max
        self.t0 = t0
        self.reverse_steps = reverse_steps
        self.sampler = sampler
        self.eta = eta
        self.noise = noise
        self.n_reconstructions = n_reconstructions
        self.map_smoothing = map_smoothing
        self.score_quantile = score_quantile
        self.scoring_batch_size = scoring_batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_path = checkpoint_path

    # ----------------------------------------------------------------------------------------------- building
    def _check_params(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}: use one of {SAMPLERS}")
        if not 0 <= self.t0 <= self.timesteps:
            raise ValueError(f"t0 must lie in [0, timesteps={self.timesteps}], got {self.t0}")
        if self.train_steps < 1 or self.batch_size < 1:
            raise ValueError("train_steps and batch_size must be >= 1")
        if self.n_reconstructions < 1:
            raise ValueError(f"n_reconstructions must be >= 1, got {self.n_reconstructions}")
        if self.train_t_max is not None and self.train_t_max < self.t0:
            raise ValueError(
                f"train_t_max={self.train_t_max} is below t0={self.t0}: the model would be scored on timesteps it "
                "never saw; raise train_t_max or leave it None"
            )
        make_noise_fn(self.noise)

    def _make_net(self, n_channels: int) -> UNet:
        return UNet(
            dims=self.dims,
            in_channels=n_channels,
            channels=self.channels,
            channel_mult=tuple(self.channel_mult),
            num_res_blocks=self.num_res_blocks,
            attention=self.attention,
        )

    def _schedule(self) -> NoiseSchedule:
        return NoiseSchedule.create(self.schedule, self.timesteps)

    def _normalise(self, X: np.ndarray) -> torch.Tensor:
        shape = (1, -1) + (1,) * self.dims
        return torch.from_numpy((X - self.center_.reshape(shape)) / self.scale_.reshape(shape))

    def _denormalise(self, Z: torch.Tensor) -> np.ndarray:
        shape = (1, -1) + (1,) * self.dims
        return Z.numpy() * self.scale_.reshape(shape) + self.center_.reshape(shape)

    # ----------------------------------------------------------------------------------------------- fitting
    def fit(self, X: object, y: object = None) -> RobustDiffusion:
        """Train on ``X`` ``(N, C, L)`` or ``(N, C, H, W)`` (which may hold unlabelled defects). Returns ``self``."""
        self._check_params()
        X = self._check_X(X, fitted=False)
        loss_fn = make_loss(self.loss, delta=self.delta, trim=self.trim)
        self.device_ = resolve_device(self.device)
        self.center_, self.scale_ = robust_center_scale(X)
        self.n_channels_ = int(X.shape[1])
        data = self._normalise(X)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_seed(self.random_state, 0))
            net = self._make_net(self.n_channels_)
        config = TrainConfig(
            steps=self.train_steps,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            ema_decay=self.ema_decay,
            grad_clip=self.grad_clip,
            precision=self.precision,
            t_max=self.train_t_max,
            checkpoint_path=self.checkpoint_path,
            verbose=self.verbose,
            description=f"fit {self.loss}",
        )
        result = train(
            net,
            data,
            self._schedule(),
            loss_fn,
            make_noise_fn(self.noise),
            config,
            _generator(self.random_state, _TRAIN_STREAM),
            self.device_,
        )
        self.net_ = result.ema
        self.loss_history_ = np.asarray(result.history, dtype=np.float64)
        return self

    # ----------------------------------------------------------------------------------------------- scoring
    def _eps_model(self):
        check_fitted(self, "net_")
        net, device, precision = self.net_, self.device_, self.precision

        def eps_model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with autocast(device, precision):
                return net(x_t, t).float()

        return eps_model

    def _reconstruct_normalised(self, Z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Reconstruct normalised ``Z`` ``(B, C, …)`` on the CPU; returns a CPU tensor of the same shape."""
        out = reconstruct(
            self._eps_model(),
            Z.to(self.device_),
            self._schedule(),
            self.t0,
            sampler=self.sampler,
            reverse_steps=self.reverse_steps,
            eta=self.eta,
            noise_fn=make_noise_fn(self.noise),
            generator=generator,
        )
        return out.float().cpu()

    def _batches(self, n: int):
        step = max(1, int(self.scoring_batch_size))
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    @torch.no_grad()
    def reconstruct(self, X: object) -> np.ndarray:
        """The "healthy" reconstruction of ``X``, same shape and units as ``X``."""
        X = self._check_X(X, fitted=True)
        Z = self._normalise(X)
        generator = _generator(self.random_state, _SCORE_STREAM)
        parts = [self._reconstruct_normalised(Z[s], generator) for s in self._batches(len(Z))]
        return self._denormalise(torch.cat(parts)).astype(np.float32)

    @torch.no_grad()
    def anomaly_map(self, X: object) -> np.ndarray:
        """``|x - x̂|`` in normalised units, averaged over channels (and reconstructions): ``(N, L)`` or
        ``(N, H, W)``, higher = more anomalous."""
        X = self._check_X(X, fitted=True)
        Z = self._normalise(X)
        generator = _generator(self.random_state, _SCORE_STREAM)
        maps = []
        for s in self._batches(len(Z)):
            acc = torch.zeros((Z[s].shape[0], *Z.shape[2:]))
            for _ in range(self.n_reconstructions):
                acc += (Z[s] - self._reconstruct_normalised(Z[s], generator)).abs().mean(dim=1)
            maps.append(acc / self.n_reconstructions)
        return smooth_maps(torch.cat(maps).numpy().astype(np.float64), self.map_smoothing)

    # ----------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write parameters, EMA weights and normalisation to ``path`` (atomically)."""
        check_fitted(self, "net_")
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in self.get_params().items()}
        atomic_torch_save(
            {
                "format_version": FORMAT_VERSION,
                "params": params,
                "state_dict": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
                "center": torch.from_numpy(self.center_),
                "scale": torch.from_numpy(self.scale_),
                "n_channels": self.n_channels_,
                "loss_history": torch.from_numpy(self.loss_history_),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | None = None) -> RobustDiffusion:
        """Load a detector written by :meth:`save` (``torch.load(weights_only=True)``); ``device`` overrides the
        saved one."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"no saved detector at {str(path)!r}: check the path")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure means the same thing to the user
            raise ValueError(f"{str(path)!r} is not a RobustDiffusion file ({type(err).__name__}): re-save it") from None
        if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{str(path)!r} is not a RobustDiffusion file of format {FORMAT_VERSION}: re-save it")
        params = dict(state["params"])
        params["checkpoint_path"] = None
        if device is not None:
            params["device"] = device
        det = cls(**params)
        det.center_ = state["center"].numpy()
        det.scale_ = state["scale"].numpy()
        det.n_channels_ = int(state["n_channels"])
        det.loss_history_ = state["loss_history"].numpy()
        det.device_ = resolve_device(det.device)
        net = det._make_net(det.n_channels_)
        net.load_state_dict(state["state_dict"])
        det.net_ = net.to(det.device_).eval().requires_grad_(False)
        return det
