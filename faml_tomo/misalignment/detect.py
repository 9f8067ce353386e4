"""Misalignment detection on whole tomograms: boxes around the given
fiducial coordinates, both networks, one decision per tomogram.

Shared by ``faml-tomo detect-misalignment`` and ``ProtDetectMisalignment``.
Scores stay in input order, one per coordinate. A box that lies more than
``max_outside`` outside the tomogram (coordinates beyond the volume), holds
non-finite values or only a constant (an empty or zeroed region) is not
scored (NaN scores, the reason in ``excluded``); boxes reaching a little
past the border are padded and scored (their ``outside_fraction`` is
reported). A tomogram with fewer usable beads than
``min_beads`` is ``unclassified`` with the reason. Each decision is
explained by the spread of the bead scores and the beads that disagree
with it.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from .boxes import BoxSet, extract_boxes, target_sampling
from .decision import CRITERIA, UNCLASSIFIED, TomogramDecision, bead_verdicts, decide

logger = logging.getLogger(__name__)

__all__ = [
    "TRAINING_PIXEL_RANGE",
    "TRAINING_BEAD_RANGE",
    "MAX_OUTSIDE",
    "TomogramResult",
    "sampling_warnings",
    "score_tomogram",
    "check_parameters",
]

# A box more than half outside the tomogram is mostly padding: not scored
# (beads on the surfaces of a tightly cropped tomogram stay below it).
MAX_OUTSIDE = 0.5

# What the shipped networks were trained on (see faml_tomo/models/MODEL_CARD.md).
TRAINING_PIXEL_RANGE = (4.0, 20.0)  # Å/px
TRAINING_BEAD_RANGE = (50.0, 200.0)  # Å
TRAINING_BEAD_PX = (2.5, 50.0)  # bead diameter in tomogram pixels
TOLERANCE = 1.25  # "far" = beyond the range by this factor
# Measured on the independent forward model (MODEL_CARD.md), 8 specimens per
# cell: weak misalignment is missed more often at fine sampling without CTF
# correction (flagged 5/8 at 5 Å/px with 10 nm beads, 6/8 with 5 nm beads),
# and with 5 nm beads 1 of 32 aligned tomograms at 5-7 Å/px was flagged.
VALIDATED_MIN_BEAD = 75.0  # Å
WEAK_FINE_SAMPLING = 6.0  # Å/px


@dataclass
class TomogramResult:
    """Scores and decision of one tomogram.

    Attributes
    ----------
    name : str
    coords : numpy.ndarray, shape (n, 3)
        Coordinates ``(x, y, z)`` in tomogram voxels, input order.
    strong, weak : numpy.ndarray, shape (n,)
        Per-bead scores (1 = aligned).
    outside_fraction : numpy.ndarray, shape (n,)
        Part of each box that lay outside the tomogram (padded).
    decision : TomogramDecision
    box_sampling : float
        Å per box voxel (bead diameter / 16).
    scale : float
        Box voxel size in tomogram voxels.
    warnings : list of str
    boxes : numpy.ndarray, shape (n, 32, 32, 32), optional
        The normalised boxes (kept when asked for).
    excluded : list of str, length n
        Why each coordinate was not scored (``""`` when it was).
    verdict : list of str, length n
        Each scored bead's own verdict (``"aligned"``, ``"weak"``,
        ``"strong"``; ``""`` when not scored); beads whose verdict differs
        from the tomogram's label are the ones that disagree.
    """

    name: str
    coords: np.ndarray
    strong: np.ndarray
    weak: np.ndarray
    outside_fraction: np.ndarray
    decision: TomogramDecision
    box_sampling: float = float("nan")
    scale: float = float("nan")
    warnings: list = field(default_factory=list)
    boxes: Optional[np.ndarray] = None
    excluded: list = field(default_factory=list)
    verdict: list = field(default_factory=list)

    @property
    def used(self) -> np.ndarray:
        """Which coordinates were scored."""
        return (
            np.array([not e for e in self.excluded], bool)
            if self.excluded
            else np.isfinite(np.asarray(self.strong, float))
        )

    @property
    def disagree(self) -> np.ndarray:
        """Scored beads whose own verdict differs from the tomogram label."""
        return np.array([bool(v) and v != self.decision.label for v in self.verdict], bool)


def check_parameters(
    bead_diameter_A: float,
    criterion: str,
    strong_threshold: float,
    weak_threshold: float | None,
    min_beads: int = 1,
    max_outside: float = MAX_OUTSIDE,
) -> None:
    """Raise :class:`InputError` for unusable detection parameters."""
    if int(min_beads) != min_beads or min_beads < 1:
        raise InputError(f"minimum number of beads must be an integer >= 1, got {min_beads}")
    if not (np.isfinite(max_outside) and 0.0 <= max_outside < 1.0):
        raise InputError(f"largest outside fraction must lie in [0, 1), got {max_outside}")
    if not (np.isfinite(bead_diameter_A) and bead_diameter_A > 0):
        raise InputError(f"bead size must be > 0, got {bead_diameter_A} Å")
    if criterion not in CRITERIA:
        raise InputError(f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    for name, thr in (("strong threshold", strong_threshold), ("weak threshold", weak_threshold)):
        if thr is not None and not (np.isfinite(thr) and 0.0 <= thr <= 1.0):
            raise InputError(f"{name} must lie in [0, 1], got {thr}")


def sampling_warnings(sampling_rate: float, bead_diameter_A: float) -> list[str]:
    """Warnings when a tomogram / bead combination is far from what the
    networks were trained on (pixel size, bead size, resampling factor).

    Returns
    -------
    list of str
        Empty when within the training range (with a 25 % tolerance).
    """
    out = []
    px, bead = float(sampling_rate), float(bead_diameter_A)
    box = target_sampling(bead)
    lo, hi = TRAINING_PIXEL_RANGE
    if not lo / TOLERANCE <= px <= hi * TOLERANCE:
        out.append(
            f"pixel size {px:g} Å/px is far from the training range {lo:g}-{hi:g} "
            f"Å/px: scores may be unreliable"
        )
    blo, bhi = TRAINING_BEAD_RANGE
    if not blo / TOLERANCE <= bead <= bhi * TOLERANCE:
        out.append(
            f"bead size {bead / 10:g} nm is far from the training range "
            f"{blo / 10:g}-{bhi / 10:g} nm (boxes are sampled at {box:.2f} Å/voxel)"
        )
    if blo / TOLERANCE <= bead < VALIDATED_MIN_BEAD:
        out.append(
            f"beads of {bead / 10:g} nm: on independent test data with 5 nm beads "
            f"at 5-7 Å/px, 1 of 32 aligned tomograms was called misaligned (see the "
            f"model card); check flagged tomograms by eye"
        )
    if px < WEAK_FINE_SAMPLING:
        out.append(
            f"at {px:g} Å/px without CTF correction, weak misalignment was missed in "
            f"up to 3 of 8 independent test tomograms (see the model card): a tomogram "
            f"called aligned may still be weakly misaligned; phase-flipped "
            f"tomograms were all flagged"
        )
    plo, phi = TRAINING_BEAD_PX
    bead_px = bead / px
    if not plo / TOLERANCE <= bead_px <= phi * TOLERANCE:
        out.append(
            f"the bead spans {bead_px:.1f} px; after resampling to 16 px (x"
            f"{16 / bead_px:.2f}) this is far from the training range "
            f"{plo:g}-{phi:g} px: scores may be unreliable"
        )
    return out


def score_tomogram(
    name: str,
    tomogram: Any,
    coords: ArrayLike,
    sampling_rate: float,
    bead_diameter_A: float,
    scorer: Any,
    criterion: str = "mean",
    strong_threshold: float = 0.5,
    weak_threshold: float | None = None,
    keep_boxes: bool = False,
    min_beads: int = 1,
    max_outside: float = MAX_OUTSIDE,
) -> "TomogramResult":
    """Score the beads of one tomogram and classify it.

    Parameters
    ----------
    name : str
    tomogram : numpy.ndarray or memmap, shape (nz, ny, nx)
    coords : array_like, shape (n, 3)
        ``(x, y, z)`` voxels; may be empty (the tomogram is then
        unclassified).
    sampling_rate : float
        Å/voxel.
    bead_diameter_A : float
    scorer : MisalignmentScorer
        Or any object with ``score(boxes) -> (strong, weak)``.
    criterion, strong_threshold, weak_threshold
        See :func:`faml_tomo.misalignment.decide`.
    keep_boxes : bool
        Return the boxes in the result.
    min_beads : int
        Fewest usable beads to judge the tomogram (default 1).
    max_outside : float
        Boxes with a larger part outside the tomogram are not scored.

    Returns
    -------
    TomogramResult
    """
    check_parameters(
        bead_diameter_A, criterion, strong_threshold, weak_threshold, min_beads, max_outside
    )
    coords = np.asarray(coords, float).reshape(-1, 3)
    warns = sampling_warnings(sampling_rate, bead_diameter_A)
    empty = np.zeros(0, np.float32)
    if len(coords) == 0:
        dec = decide([], None, criterion, strong_threshold, weak_threshold)
        dec.message = f"{name}: {dec.message}"
        return TomogramResult(name, coords, empty, empty, empty, dec, warnings=warns)
    bs = extract_boxes(tomogram, coords, sampling_rate, bead_diameter_A)
    finite, outside, flat, excluded = _exclusions(bs, len(coords), max_outside)
    used = finite & ~outside & ~flat
    strong = np.full(len(coords), np.nan, np.float32)
    weak = np.full(len(coords), np.nan, np.float32)
    n_used, n_excl = int(used.sum()), int(len(coords) - used.sum())
    if n_used < min_beads:
        dec = _too_few_beads(n_used, len(coords), n_excl, min_beads, finite, outside, flat)
    else:
        s, w = scorer.score(bs.boxes[used], bs.scale)
        strong[used], weak[used] = s, w
        dec = decide(s, w, criterion, strong_threshold, weak_threshold)
        dec.n_excluded = n_excl
        dec.strong_spread = float(np.std(np.asarray(s, float)))
    verdict = bead_verdicts(strong, weak, strong_threshold, weak_threshold)
    if dec.label != UNCLASSIFIED:
        dec.n_disagree = int(np.sum((verdict != "") & (verdict != dec.label)))
    _add_notes(dec, bs, used, len(coords), n_excl)
    return TomogramResult(
        name,
        bs.coords,
        strong,
        weak,
        bs.outside_fraction,
        dec,
        bs.sampling,
        bs.scale,
        warns,
        bs.boxes if keep_boxes else None,
        excluded,
        list(verdict),
    )


def _exclusions(
    bs: BoxSet, n: int, max_outside: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Which of the ``n`` boxes hold only finite values, lie too far outside
    the tomogram, or hold only a constant; and why each is not scored
    (``""`` when it is)."""
    finite = np.all(np.isfinite(bs.boxes), axis=(1, 2, 3))
    outside = np.asarray(bs.outside_fraction) > max_outside
    # a constant box (an empty or zeroed region) has nothing to score
    flat = finite & (np.ptp(bs.boxes.reshape(n, -1), axis=1) <= 1e-6)
    excluded = [
        "non-finite values in the box"
        if not f
        else (
            f"{100 * o:.0f}% of the box outside the tomogram"
            if out
            else ("constant values in the box (no data)" if fl else "")
        )
        for f, o, out, fl in zip(finite, bs.outside_fraction, outside, flat)
    ]
    return finite, outside, flat, excluded


def _too_few_beads(
    n_used: int,
    n_coords: int,
    n_excl: int,
    min_beads: int,
    finite: np.ndarray,
    outside: np.ndarray,
    flat: np.ndarray,
) -> TomogramDecision:
    """The unclassified decision of a tomogram with fewer usable beads than
    ``min_beads``, with the reasons the others were not scored."""
    why = []
    if np.any(~finite):
        why.append(f"{int(np.sum(~finite))} with non-finite values")
    if np.any(outside & finite):
        why.append(f"{int(np.sum(outside & finite))} outside the tomogram")
    if np.any(flat & ~outside):
        why.append(f"{int(np.sum(flat & ~outside))} in regions of constant values")
    return TomogramDecision(
        UNCLASSIFIED,
        n_excluded=n_excl,
        message=f"{n_used} usable bead(s) of {n_coords} (at least {min_beads} "
        f"needed){': ' + ', '.join(why) if why else ''}",
    )


def _add_notes(
    dec: TomogramDecision, bs: BoxSet, used: np.ndarray, n_coords: int, n_excl: int
) -> None:
    """Append to the decision's message the boxes padded past the border
    and, for a classified tomogram, the coordinates not scored."""
    notes = []
    n_pad = int(np.count_nonzero((np.asarray(bs.outside_fraction) > 0) & used))
    if n_pad:
        notes.append(f"{n_pad} of {n_coords} boxes reach past the tomogram border (padded, scored)")
    if n_excl and dec.label != UNCLASSIFIED:
        notes.append(
            f"{n_excl} of {n_coords} coordinates not scored (outside the "
            f"tomogram, non-finite or constant values)"
        )
    if notes:
        dec.message = "; ".join([dec.message] + notes if dec.message else notes)


def unclassified(name: str, message: str) -> "TomogramResult":
    """A result for a tomogram that could not be judged."""
    empty = np.zeros(0, np.float32)
    return TomogramResult(
        name, np.zeros((0, 3)), empty, empty, empty, TomogramDecision(UNCLASSIFIED, message=message)
    )
