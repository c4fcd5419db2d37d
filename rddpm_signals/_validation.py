"""Input checks shared by every detector: one clear ValueError naming the problem and the fix."""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = ["check_samples", "check_fitted", "resolve_device", "is_count"]


def is_count(value: object, least: int) -> bool:
    """An integer (not a bool) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def check_samples(X: object, dims: int, name: str = "X", n_channels: int | None = None) -> np.ndarray:
    """Return ``X`` as a float32 array ``(N, C, L)`` (``dims=1``) or ``(N, C, H, W)`` (``dims=2``).

    Raises ``ValueError`` for a wrong rank, an empty array, non-numeric or non-finite values, or a channel
    count different from ``n_channels`` (the one seen in ``fit``).
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name} could not be read as an array ({err}): pass a numpy array or torch tensor") from None
    layout = "(N, C, L)" if dims == 1 else "(N, C, H, W)"
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}: pass a float array shaped {layout}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {arr.dtype}: pass the magnitude (np.abs) or the real part")
    if arr.ndim != dims + 2:
        hint = f" add a channel axis with {name}[:, None]" if arr.ndim == dims + 1 else f" reshape it to {layout}"
        raise ValueError(f"{name} must be {dims + 2}-D {layout} for dims={dims}, got shape {arr.shape}:{hint}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): pass at least one sample with a non-empty grid")
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite values: impute or drop those samples first")
    if n_channels is not None and arr.shape[1] != n_channels:
        raise ValueError(
            f"{name} has {arr.shape[1]} channels but the detector was fitted on {n_channels}: "
            "pass data with the fitted channel layout"
        )
    return arr


def check_fitted(estimator: object, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise RuntimeError(f"this {type(estimator).__name__} is not fitted yet: call fit(X) first")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r} ({err}): use 'auto', 'cpu' or 'cuda'") from None
