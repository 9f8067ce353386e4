"""Tomogram-level decision from per-bead network scores.

Scores are the networks' probabilities that a bead box comes from an
aligned tomogram (1 = aligned).  The strong network decides first; the weak
network only separates aligned from weakly misaligned tomograms among those
the strong network kept.  Without a weak threshold, the tomograms are only
split into strongly misaligned and the rest (the published reference code
instead sends aligned tomograms to the strong set in that case).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError

ALIGNED, WEAK, STRONG, UNCLASSIFIED = "aligned", "weak", "strong", "unclassified"
CRITERIA = ("mean", "votes")

__all__ = [
    "ALIGNED",
    "WEAK",
    "STRONG",
    "UNCLASSIFIED",
    "CRITERIA",
    "TomogramDecision",
    "aggregate",
    "decide",
    "bead_verdicts",
]


@dataclass
class TomogramDecision:
    """Decision for one tomogram.

    Attributes
    ----------
    label : str
        ``"aligned"``, ``"weak"``, ``"strong"`` or ``"unclassified"``.
    strong_score, weak_score : float
        Aggregated scores (mean score, or fraction of aligned votes); NaN
        when not computed.
    n_beads : int
        Number of bead scores used.
    message : str
        Why the tomogram is unclassified, or other remarks.
    strong_spread : float
        Standard deviation of the used beads' strong scores (how much the
        beads agree; NaN without beads).
    n_disagree : int
        Used beads whose own verdict (their scores against the same
        thresholds) differs from the tomogram's label.
    n_excluded : int
        Coordinates not scored (box outside the tomogram or non-finite).
    """

    label: str
    strong_score: float = float("nan")
    weak_score: float = float("nan")
    n_beads: int = 0
    message: str = field(default="")
    strong_spread: float = float("nan")
    n_disagree: int = 0
    n_excluded: int = 0


def aggregate(
    scores: "np.ndarray | Sequence[float]", criterion: str = "mean", threshold: float = 0.5
) -> float:
    """Aggregate bead scores into one tomogram score.

    ``"mean"``: the mean score.  ``"votes"``: the fraction of beads whose
    score is above ``threshold`` (each bead votes aligned or misaligned), so
    the same threshold applies to both criteria.
    """
    scores = np.asarray(scores, dtype=float)
    if criterion == "mean":
        return float(scores.mean())
    if criterion == "votes":
        # a vote of exactly 0.5 against 0.5 is a tie: counted misaligned
        return float(np.mean(scores > threshold))
    raise InputError(f"criterion must be one of {CRITERIA}, got {criterion!r}")


def decide(
    strong_scores: "np.ndarray | Sequence[float]",
    weak_scores: "np.ndarray | Sequence[float] | None" = None,
    criterion: str = "mean",
    strong_threshold: float = 0.5,
    weak_threshold: float | None = None,
) -> "TomogramDecision":
    """Classify one tomogram from its bead scores.

    Parameters
    ----------
    strong_scores : array_like, shape (n,)
        Strong-network scores of the tomogram's beads.
    weak_scores : array_like, shape (n,), optional
        Weak-network scores of the same beads.
    criterion : {"mean", "votes"}
    strong_threshold : float
        Tomograms whose aggregated strong score is <= this are strongly
        misaligned (0.5).
    weak_threshold : float, optional
        If given, tomograms kept by the strong network with an aggregated weak
        score <= this are weakly misaligned, the others aligned.  If None,
        every tomogram kept by the strong network is labelled aligned (that
        is, "not strongly misaligned"); its weak score is still reported so
        users can sort by it.

    Returns
    -------
    TomogramDecision
    """
    for name, thr in (("strong threshold", strong_threshold), ("weak threshold", weak_threshold)):
        if thr is not None and not 0.0 <= thr <= 1.0:
            raise InputError(f"{name} must lie in [0, 1], got {thr}")
    strong = np.asarray(strong_scores, dtype=float).ravel()
    if strong.size == 0:
        return TomogramDecision(
            UNCLASSIFIED,
            message="no fiducial coordinates for this tomogram: cannot judge its alignment",
        )
    s = aggregate(strong, criterion, strong_threshold)
    w = float("nan")
    if weak_scores is not None and len(weak_scores):
        weak = np.asarray(weak_scores, dtype=float).ravel()
        if weak.shape != strong.shape:
            raise InputError(f"{weak.size} weak scores for {strong.size} strong scores")
        w = aggregate(weak, criterion, 0.5 if weak_threshold is None else weak_threshold)
    if s <= strong_threshold:
        return TomogramDecision(STRONG, s, w, strong.size)
    if weak_threshold is None:
        return TomogramDecision(
            ALIGNED, s, w, strong.size, message="no weak threshold: not strongly misaligned"
        )
    if np.isnan(w):
        raise InputError("a weak threshold was given but no weak scores")
    label = ALIGNED if w > weak_threshold else WEAK
    return TomogramDecision(label, s, w, strong.size)


def bead_verdicts(
    strong_scores: ArrayLike,
    weak_scores: ArrayLike | None = None,
    strong_threshold: float = 0.5,
    weak_threshold: float | None = None,
) -> np.ndarray:
    """Each bead's own verdict with the tomogram thresholds: ``"strong"``
    when its strong score is <= ``strong_threshold``, else ``"weak"`` when a
    weak threshold is given and its weak score is <= it, else
    ``"aligned"``; ``""`` for beads without a score (NaN)."""
    s = np.asarray(strong_scores, float).ravel()
    w = np.full(s.shape, np.nan) if weak_scores is None else np.asarray(weak_scores, float).ravel()
    out = np.where(s <= strong_threshold, STRONG, ALIGNED).astype(object)
    if weak_threshold is not None:
        out[(s > strong_threshold) & (w <= weak_threshold)] = WEAK
    out[~np.isfinite(s)] = ""
    return out.astype(str)
