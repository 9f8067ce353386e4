"""Scoring detections against known bead positions (tests, benchmarks)."""

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

__all__ = ["match_points"]


def match_points(
    found: ArrayLike, truth: ArrayLike, max_distance: float, valid: ArrayLike | None = None
) -> dict:
    """One-to-one matching of detections to true positions.

    Parameters
    ----------
    found : array_like, shape (n, 3)
        Detected ``(x, y, z)``.
    truth : array_like, shape (m, 3)
        True ``(x, y, z)``.
    max_distance : float
        A detection farther than this from its true bead is a false positive.
    valid : array_like of bool, shape (m,), optional
        True positions that count for recall (e.g. those whose box lies
        inside the tomogram).  A detection matched to a position outside
        that set is neither a true nor a false positive: where a bead at the
        edge of the valid region falls is a matter of rounding.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn`` counts (over valid positions); ``recall``,
        ``precision`` (``tp / (tp + fp)``); ``rms`` position error of the
        valid matched pairs (voxels, NaN if none); ``pairs`` (k, 2) indices
        (found, truth) of those pairs.
    """
    found = np.asarray(found, float).reshape(-1, 3)
    truth = np.asarray(truth, float).reshape(-1, 3)
    valid = np.ones(len(truth), bool) if valid is None else np.asarray(valid, bool)
    pairs = np.zeros((0, 2), int)
    if len(found) and len(truth):
        dist = cdist(found, truth)
        cost = np.where(dist <= max_distance, dist, 1e6)
        r, c = linear_sum_assignment(cost)
        ok = dist[r, c] <= max_distance
        pairs = np.column_stack([r[ok], c[ok]])
    fp = len(found) - len(pairs)
    pairs = pairs[valid[pairs[:, 1]]]
    tp = len(pairs)
    n_valid = int(valid.sum())
    err = np.linalg.norm(found[pairs[:, 0]] - truth[pairs[:, 1]], axis=1) if tp else np.zeros(0)
    return {
        "tp": tp,
        "fp": fp,
        "fn": n_valid - tp,
        "recall": tp / n_valid if n_valid else 1.0,
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "rms": float(np.sqrt(np.mean(err**2))) if tp else float("nan"),
        "pairs": pairs,
    }
