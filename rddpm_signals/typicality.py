"""A whole-sample score from a fitted diffusion model's own denoising error (opt-in; issue 12).

The map score (:meth:`RobustDiffusion.anomaly_score`) sees a sample through its worst pixels. A sample of another
kind — a different part, object or regime, with nothing local wrong in it — can be reconstructed as easily as a
normal one and never stand out there. The network's noise-prediction error at several noise levels is what a
diffusion model's likelihood bound is built from, and it does see such samples — but not always as *harder*:
samples simpler than the normal ones are denoised *more* easily (the familiar failure of likelihoods on simpler
inputs; measured below chance on ``whole_sample``, docs/RESULTS.md §18). So the score is two-sided, a typicality
test: for each ``t`` the error is a robust z-score against the training samples' errors, and a sample's score is
the mean of ``|z|`` over the levels.

Per sample and level: ``e_t(x) = mean((ε̂(x_t, t) − ε)²)`` over the sample's ``(C, …grid)``, averaged over
``draws`` noise draws. The noise is drawn from the sample's own seed and the network sees fixed-size blocks on
the CPU (as in :mod:`rddpm_signals.scoring`), so a sample's score does not depend on the batch it is scored in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ._robust import median_mad
from ._validation import check_fitted
from .scoring import fixed_rows, sample_seeds

__all__ = ["DenoisingTypicality", "typicality_score", "ALTERNATIVES"]

#: The default noise levels, as fractions of the detector's ``timesteps``.
DEFAULT_LEVELS = (0.05, 0.1, 0.2, 0.4, 0.7)
#: Offsets the scoring seed so the typicality noise is not the reconstruction noise.
_TYPICALITY_STREAM = 7919


#: ``alternative`` values: the mean of ``|z|`` over levels (either direction is atypical) or of ``z`` (only a
#: *larger* error than the training samples' is).
ALTERNATIVES = ("two-sided", "greater")


def _check_alternative(alternative: str) -> None:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"unknown alternative {alternative!r}: use one of {ALTERNATIVES}")


def typicality_score(z: np.ndarray, alternative: str = "two-sided") -> np.ndarray:
    """Per-sample score ``(N,)`` from per-level robust z-scores ``(N, levels)``: the mean of ``|z|``
    (``"two-sided"``) or of ``z`` (``"greater"``)."""
    _check_alternative(alternative)
    return (np.abs(z) if alternative == "two-sided" else np.asarray(z)).mean(axis=1)


class DenoisingTypicality:
    """Two-sided denoising-error typicality of samples under a fitted :class:`~rddpm_signals.RobustDiffusion`.

    Parameters
    ----------
    timesteps: the noise levels ``t`` (each in ``[1, detector.timesteps)``); ``None``: 5, 10, 20, 40 and 70 % of
        the detector's ``timesteps`` (50, 100, 200, 400, 700 for the default 1000).
    draws: noise draws per sample and level.
    batch_size: samples per batch (memory only; scores do not depend on it).
    alternative: ``"two-sided"`` (the mean of ``|z|``: a sample denoised unusually easily is atypical too) or
        ``"greater"`` (the mean of ``z``: only an unusually *large* error is). Which holds depends on the fit:
        on the default's fits of ``whole_sample`` the other kinds are denoised more easily and ``"greater"``
        ranks them below chance; on fits whose cleaning holds out no normal points
        (``clean_rule="test", clean_samples="two_sided"``) ``"greater"`` ranked them above an IsolationForest on
        the raw pixels on all ten whole-sample fits measured, five of them fresh fits scored against a rule
        written beforehand (docs/RESULTS.md §20).

    Fitted attributes: ``center_``, ``scale_`` ``(len(timesteps),)`` — median and 1.4826 · MAD of the training
    samples' errors at each level; ``train_scores_`` ``(N,)`` — the training samples' own scores (what
    :meth:`score` gives for ``X``, without a second pass; the reference to put a test score on a robust z scale);
    ``detector_`` — the detector whose network is used.

    Example::

        det = RobustDiffusion().fit(X_train)
        typ = DenoisingTypicality().fit(det, X_train)
        scores = typ.score(X_test)          # (N,), higher = less like the training bulk
    """

    def __init__(
        self,
        timesteps: Sequence[int] | None = None,
        draws: int = 2,
        batch_size: int = 32,
        alternative: str = "two-sided",
    ):
        self.timesteps = timesteps
        self.draws = draws
        self.batch_size = batch_size
        self.alternative = alternative

    def _check_params(self, detector: object) -> list[int]:
        if self.timesteps is None:
            ts = [max(1, round(f * detector.timesteps)) for f in DEFAULT_LEVELS]
        else:
            ts = [int(t) for t in self.timesteps]
        if not ts:
            raise ValueError("timesteps is empty: pass at least one noise level, e.g. (100, 400)")
        bad = [t for t in ts if not 1 <= t < detector.timesteps]
        if bad:
            raise ValueError(
                f"timesteps {bad} lie outside [1, {detector.timesteps}): pick levels the model was trained on"
            )
        if int(self.draws) < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        _check_alternative(self.alternative)  # before the denoising pass, not after it
        return ts

    def fit(self, detector: object, X: object) -> DenoisingTypicality:
        """Learn the training samples' error levels. ``detector``: a fitted RobustDiffusion; ``X``: its training
        samples ``(N, C, …grid)`` (or any samples taken as the normal bulk; outliers among them do not move the
        median and MAD). Returns ``self``."""
        check_fitted(detector, "net_")
        ts = self._check_params(detector)
        errors = _errors(detector, X, ts, int(self.draws), int(self.batch_size))
        centre, scale = np.transpose([median_mad(errors[:, j]) for j in range(len(ts))])
        train_scores = typicality_score((errors - centre) / scale, self.alternative)
        # all together, so a failed fit leaves nothing half-set
        self.center_, self.scale_, self.train_scores_, self.detector_ = centre, scale, train_scores, detector
        return self

    def errors(self, X: object) -> np.ndarray:
        """Per-sample, per-level robust z-scores of the denoising error ``(N, len(timesteps))``."""
        check_fitted(self, "center_")
        ts = self._check_params(self.detector_)
        raw = _errors(self.detector_, X, ts, int(self.draws), int(self.batch_size))
        return (raw - self.center_) / self.scale_

    def score(self, X: object) -> np.ndarray:
        """Per-sample typicality score ``(N,)``: the mean over levels of ``|z|`` (``"greater"``: of ``z``); higher =
        less like the bulk."""
        return typicality_score(self.errors(X), self.alternative)


@torch.no_grad()
def _errors(detector: object, X: object, ts: list[int], draws: int, batch_size: int) -> np.ndarray:
    """``(N, len(ts))``: each sample's mean squared noise-prediction error at each level, mean over ``draws``."""
    Z = detector._normalise(detector._check_X(X))
    schedule = detector._schedule()
    eps_model = detector._eps_model(detector.net_)
    if detector.device_.type == "cpu":
        eps_model = fixed_rows(eps_model)
    seeds = sample_seeds(Z, _TYPICALITY_STREAM + int(detector.random_state or 0))
    out = np.zeros((len(Z), len(ts)))
    for start in range(0, len(Z), batch_size):
        z = Z[start : start + batch_size]
        generators = [torch.Generator().manual_seed(s) for s in seeds[start : start + batch_size]]
        for j, t in enumerate(ts):
            total = torch.zeros(len(z), dtype=torch.float64)
            for _ in range(draws):
                noise = torch.stack([torch.randn(z.shape[1:], generator=g) for g in generators])
                level = torch.full((len(z),), t, dtype=torch.long)
                x_t = schedule.q_sample(z, level, noise).to(detector.device_)
                eps = eps_model(x_t, level.to(detector.device_)).cpu()
                total += ((eps - noise) ** 2).reshape(len(z), -1).mean(dim=1).double()
            out[start : start + len(z), j] = (total / draws).numpy()
    return out
