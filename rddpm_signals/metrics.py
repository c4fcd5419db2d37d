"""Anomaly-detection metrics on maps ``(N, L)`` / ``(N, H, W)`` and per-sample scores ``(N,)``.

Pixel metrics pool every grid point of every sample (as in MVTec-AD evaluations). scikit-learn does the curves.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

__all__ = ["pixel_auroc", "pixel_auprc", "aupro", "f1_max", "sample_auroc", "evaluate"]


def _pixels(maps: object, masks: object) -> tuple[np.ndarray, np.ndarray]:
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks)
    if maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must have the same shape")
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps contain NaN or infinite values")
    truth = masks.astype(bool).ravel()
    if truth.all() or not truth.any():
        raise ValueError("masks must contain both anomalous and normal points for a pixel metric")
    return maps.ravel(), truth


def pixel_auroc(maps: object, masks: object) -> float:
    """Area under the ROC curve of every grid point's score against its mask label."""
    scores, truth = _pixels(maps, masks)
    return float(roc_auc_score(truth, scores))


def pixel_auprc(maps: object, masks: object) -> float:
    """Average precision (area under the precision-recall curve) over every grid point."""
    scores, truth = _pixels(maps, masks)
    return float(average_precision_score(truth, scores))


def f1_max(maps: object, masks: object) -> float:
    """The best F1 over all thresholds of the pooled grid-point scores."""
    scores, truth = _pixels(maps, masks)
    precision, recall, _ = precision_recall_curve(truth, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(f1.max())


def sample_auroc(scores: object, labels: object) -> float:
    """ROC AUC of per-sample scores ``(N,)`` against 0/1 labels ``(N,)``."""
    scores, labels = np.asarray(scores, dtype=np.float64).ravel(), np.asarray(labels).ravel()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    labels = labels.astype(int)
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must have the same length")
    if len(np.unique(labels)) != 2:
        raise ValueError("labels must contain both normal (0) and anomalous (1) samples")
    return float(roc_auc_score(labels, scores))


def aupro(maps: object, masks: object, fpr_limit: float = 0.3) -> float:
    """Normalised area under the per-region-overlap curve up to ``fpr_limit`` (Bergmann et al., MVTec-AD).

    Regions are the connected components of each sample's mask. At a threshold, PRO is the mean over all regions
    of the share of the region's points above the threshold, and FPR the share of normal points above it. The
    curve is integrated over FPR in ``[0, fpr_limit]`` and divided by ``fpr_limit`` (1 = perfect).
    """
    if not 0 < fpr_limit <= 1:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit}")
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks).astype(bool)
    scores, truth = _pixels(maps, masks)

    weights = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    for i in range(masks.shape[0]):
        # Diagonal neighbours join one region (8-connectivity in 2D), as in the MVTec-AD evaluation.
        labels, count = ndimage.label(masks[i], structure=np.ones((3,) * masks[i].ndim))
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())
        region_weight = np.where(labels > 0, 1.0 / sizes[labels], 0.0)
        weights[i] = region_weight
        n_regions += count
    weights = weights.ravel() / n_regions

    order = np.argsort(-scores, kind="stable")
    s, w, normal = scores[order], weights[order], (~truth[order]).astype(np.float64)
    # Points with tied scores pass a threshold together: keep the last index of each run of equal scores.
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    fpr = np.r_[0.0, np.cumsum(normal)[last] / normal.sum()]
    pro = np.r_[0.0, np.cumsum(w)[last]]

    cut = np.searchsorted(fpr, fpr_limit, side="right")
    x, y = fpr[:cut], pro[:cut]
    if cut < fpr.size:
        # Interpolate the curve at exactly fpr_limit.
        x0, x1, y0, y1 = fpr[cut - 1], fpr[cut], pro[cut - 1], pro[cut]
        y_lim = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0) if x1 > x0 else y1
        x, y = np.r_[x, fpr_limit], np.r_[y, y_lim]
    return float(np.trapezoid(y, x) / fpr_limit)


def evaluate(maps: object, masks: object, scores: object | None = None, labels: object | None = None) -> dict:
    """Every metric that the inputs allow, as a dict of floats."""
    out = {
        "pixel_auroc": pixel_auroc(maps, masks),
        "pixel_auprc": pixel_auprc(maps, masks),
        "aupro": aupro(maps, masks),
        "f1_max": f1_max(maps, masks),
    }
    if scores is not None and labels is not None:
        out["sample_auroc"] = sample_auroc(scores, labels)
    return out
