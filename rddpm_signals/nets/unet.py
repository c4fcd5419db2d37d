"""One noise-prediction UNet for 1D signals and 2D images.

``UNet(dims=1)`` takes ``(B, C, L)``; ``UNet(dims=2)`` takes ``(B, C, H, W)``. Any length or size works: the input is
padded (reflect where possible) to a multiple of ``2 ** (levels - 1)`` and the output is cropped back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["UNet", "timestep_embedding"]


def _conv(dims: int, *args, **kwargs) -> nn.Module:
    if dims == 1:
        return nn.Conv1d(*args, **kwargs)
    if dims == 2:
        return nn.Conv2d(*args, **kwargs)
    raise ValueError(f"dims must be 1 or 2, got {dims}")


def _norm(channels: int) -> nn.GroupNorm:
    # At least 4 channels a group, so that a 1×1 map of a single sample still normalises.
    groups = min(32, max(1, channels // 4))
    while channels % groups:
        groups -= 1
    return nn.GroupNorm(groups, channels)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer or real timesteps ``t`` ``(B,)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, with the time embedding added between the two convolutions."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0):
        super().__init__()
        self.dims = dims
        self.in_layers = nn.Sequential(_norm(in_ch), nn.SiLU(), _conv(dims, in_ch, out_ch, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch))
        self.out_layers = nn.Sequential(
            _norm(out_ch), nn.SiLU(), nn.Dropout(dropout), _conv(dims, out_ch, out_ch, 3, padding=1)
        )
        nn.init.zeros_(self.out_layers[-1].weight)
        nn.init.zeros_(self.out_layers[-1].bias)
        self.skip = nn.Identity() if in_ch == out_ch else _conv(dims, in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        h = h + self.emb(emb).reshape(*h.shape[:2], *([1] * self.dims))
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention over every position of a ``(B, C, …)`` feature map."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        while channels % heads:
            heads -= 1
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = rearrange(self.norm(x), "b c ... -> b (...) c")
        q, k, v = rearrange(self.qkv(h), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        h = rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)")
        return x + rearrange(self.proj(h), "b n c -> b c n").reshape(shape)


class Downsample(nn.Module):
    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = _conv(dims, channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dims: int, channels: int):
        super().__init__()
        self.conv = _conv(dims, channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """Noise-prediction UNet.

    Parameters
    ----------
    dims: 1 for ``(B, C, L)`` signals, 2 for ``(B, C, H, W)`` images.
    in_channels, out_channels: input channels; output channels (default: same as input).
    channels: base width; level ``i`` has ``channels * channel_mult[i]`` features.
    channel_mult: one multiplier per resolution level; ``len(channel_mult) - 1`` downsamplings.
    num_res_blocks: residual blocks per level on the way down (one more on the way up).
    attention: self-attention at the lowest resolution.
    dropout: dropout inside residual blocks.
    """

    def __init__(
        self,
        dims: int = 2,
        in_channels: int = 1,
        out_channels: int | None = None,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 1,
        attention: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        if not channel_mult or num_res_blocks < 1 or channels < 1:
            raise ValueError("channel_mult must be non-empty, num_res_blocks and channels >= 1")
        self.dims = dims
        self.channels = channels
        self.multiple = 2 ** (len(channel_mult) - 1)
        out_channels = in_channels if out_channels is None else out_channels
        emb_dim = 4 * channels
        self.time_embed = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        self.input_conv = _conv(dims, in_channels, channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels, ch = [channels], channels
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(dims, ch, channels * mult, emb_dim, dropout))
                ch = channels * mult
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(Downsample(dims, ch))
                skip_channels.append(ch)

        self.mid1 = ResBlock(dims, ch, ch, emb_dim, dropout)
        self.mid_attn = Attention(ch) if attention else nn.Identity()
        self.mid2 = ResBlock(dims, ch, ch, emb_dim, dropout)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                self.up.append(ResBlock(dims, ch + skip_channels.pop(), channels * mult, emb_dim, dropout))
                ch = channels * mult
                if level and i == num_res_blocks:
                    self.up.append(Upsample(dims, ch))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), _conv(dims, ch, out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        sizes = tuple(x.shape[2:])
        pads: list[int] = []
        for n in reversed(sizes):  # F.pad lists the last dimension first
            pads += [0, (-n) % self.multiple]
        if not any(pads):
            return x, sizes
        mode = "reflect" if all(p < n for p, n in zip(pads[1::2], reversed(sizes), strict=True)) else "replicate"
        return F.pad(x, pads, mode=mode), sizes

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, C, L)`` or ``(B, C, H, W)``; ``t``: ``(B,)`` timesteps. Returns the shape of ``x``."""
        if x.ndim != self.dims + 2:
            raise ValueError(f"UNet(dims={self.dims}) expects a {self.dims + 2}-D input, got shape {tuple(x.shape)}")
        h, sizes = self._pad(x)
        emb = self.time_embed(timestep_embedding(t, self.channels))
        h = self.input_conv(h)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        h = self.out(h)
        index = (slice(None), slice(None), *(slice(0, n) for n in sizes))
        return h[index]
