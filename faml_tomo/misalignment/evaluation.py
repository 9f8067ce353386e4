"""Evaluation of the trained misalignment networks on simulated boxes: scores
in batches, tomogram-level scores and decisions, confusion matrices, the
flagged fraction per misalignment kind and per resampling scale."""

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..models.network import scale_feature
from .dataset import ALIGNED_ID, CLASSES, KINDS, STRONG_ID, WEAK_ID
from .decision import decide

logger = logging.getLogger(__name__)

__all__ = ["predict", "tomogram_scores", "confusion", "evaluate", "SCALE_BINS"]


def predict(model: Any, boxes: np.ndarray, scale: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Scores of float16/float32 boxes ``(n, 32, 32, 32)`` whose voxel size
    is ``scale`` tomogram pixels (a number or one per box)."""
    out = np.empty(len(boxes), np.float32)
    feature = scale_feature(scale, len(boxes))
    for s in range(0, len(boxes), batch_size):
        x = boxes[s : s + batch_size].astype(np.float32)[..., None]
        out[s : s + len(x)] = model([x, feature[s : s + len(x)]], training=False).numpy()[:, 0]
    return out


def tomogram_scores(
    tomogram_ids: np.ndarray, labels: np.ndarray, strong: np.ndarray, weak: np.ndarray | None
) -> dict:
    """Per-tomogram mean scores.

    Returns
    -------
    dict with arrays ``tomogram``, ``label`` (true class id), ``strong``,
    ``weak`` (mean scores) and ``n`` (boxes).
    """
    ids = np.unique(tomogram_ids)
    lab = np.array([labels[tomogram_ids == t][0] for t in ids])
    s = np.array([strong[tomogram_ids == t].mean() for t in ids])
    w = (
        np.array([weak[tomogram_ids == t].mean() for t in ids])
        if weak is not None
        else np.full(len(ids), np.nan)
    )
    n = np.array([np.sum(tomogram_ids == t) for t in ids])
    return {"tomogram": ids, "label": lab, "strong": s, "weak": w, "n": n}


def confusion(true_ids: Sequence, predicted_labels: Sequence) -> np.ndarray:
    """3 x 3 confusion matrix, rows real (aligned, weak, strong), columns
    predicted (aligned, weak, strong)."""
    m = np.zeros((3, 3), int)
    for t, p in zip(true_ids, predicted_labels):
        if p in CLASSES:
            m[int(t), CLASSES.index(p)] += 1
    return m


# box voxel size in tomogram pixels: the bins of the per-scale report
SCALE_BINS = (0.0, 0.4, 0.7, 1.0, 1.5, np.inf)


def _by_scale(data, s, w, strong_threshold, weak_threshold):
    """Box-level rates per box-scale bin (the classes are defined in
    tomogram pixels, so fine sampling is where a scale-blind network fails)."""

    def rate(sel, ok):
        return float(np.mean(ok[sel])) if np.any(sel) else float("nan")

    out = {}
    scale = data.scale
    for lo, hi in zip(SCALE_BINS[:-1], SCALE_BINS[1:]):
        m = (scale >= lo) & (scale < hi)
        a, k, st = (m & (data.label == c) for c in (ALIGNED_ID, WEAK_ID, STRONG_ID))
        out[f"{lo:g}-{hi:g}"] = {
            "n": int(m.sum()),
            "aligned_kept_by_weak": rate(a, w > weak_threshold),
            "weak_flagged_by_weak": rate(k, w <= weak_threshold),
            "strong_flagged_by_strong": rate(st, s <= strong_threshold),
        }
    return out


def evaluate(
    strong_model: Any,
    weak_model: Any,
    data: Any,
    weak_threshold: float = 0.5,
    strong_threshold: float = 0.5,
) -> tuple[dict, dict]:
    """Box- and tomogram-level metrics of both networks on ``data``."""
    s = predict(strong_model, data.boxes, data.scale)
    w = predict(weak_model, data.boxes, data.scale) if weak_model is not None else None
    out = {
        "n_boxes": int(len(data)),
        "boxes_per_class": {c: int(np.sum(data.label == i)) for i, c in enumerate(CLASSES)},
    }
    st = data.label == STRONG_ID
    out["box_strong_flagged_strong"] = float(np.mean(s[st] <= strong_threshold))
    out["box_strong_kept_aligned"] = float(np.mean(s[data.label == ALIGNED_ID] > 0.5))
    out["box_strong_kept_weak"] = float(np.mean(s[data.label == WEAK_ID] > 0.5))
    if w is not None:
        out["box_weak_aligned_kept"] = float(np.mean(w[data.label == ALIGNED_ID] > 0.5))
        out["box_weak_weak_flagged"] = float(np.mean(w[data.label == WEAK_ID] <= 0.5))
    per_kind = {}
    for k in np.unique(data.kind[st]):
        sel = st & (data.kind == k)
        per_kind[KINDS[k]] = float(np.mean(s[sel] <= strong_threshold))
    out["box_strong_flagged_by_kind"] = per_kind
    if w is not None:
        out["box_by_scale"] = _by_scale(data, s, w, strong_threshold, weak_threshold)
    ts = tomogram_scores(data.tomogram, data.label, s, w)
    labels = [
        decide([a], None if np.isnan(b) else [b], "mean", strong_threshold, weak_threshold).label
        for a, b in zip(ts["strong"], ts["weak"])
    ]
    cm = confusion(ts["label"], labels)
    out["tomograms"] = int(len(labels))
    out["confusion_rows_real_aligned_weak_strong"] = cm.tolist()
    n_strong = max(cm[2].sum(), 1)
    n_aligned = max(cm[0].sum(), 1)
    out["tomo_strong_flagged"] = float(cm[2, 2] / n_strong)
    out["tomo_strong_flagged_strong_or_weak"] = float((cm[2, 1] + cm[2, 2]) / n_strong)
    out["tomo_aligned_kept"] = float(cm[0, 0] / n_aligned)
    out["tomo_aligned_not_strong"] = float((cm[0, 0] + cm[0, 1]) / n_aligned)
    out["tomo_weak_not_strong"] = float((cm[1, 0] + cm[1, 1]) / max(cm[1].sum(), 1))
    out["weak_threshold"] = weak_threshold
    return out, {"strong": s, "weak": w, "tomograms": ts}
