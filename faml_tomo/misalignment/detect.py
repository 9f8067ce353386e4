"""Misalignment detection on whole tomograms: boxes around the given
fiducial coordinates, both networks, one decision per tomogram.

Shared by ``faml-tomo detect-misalignment`` and ``ProtDetectMisalignment``.
Scores stay in input order, one per coordinate: boxes reaching past the
border are padded (their ``outside_fraction`` is reported), never dropped.
A tomogram without coordinates is ``unclassified`` with a message.
"""
import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import InputError
from .boxes import extract_boxes, target_sampling
from .decision import CRITERIA, UNCLASSIFIED, TomogramDecision, decide

logger = logging.getLogger(__name__)

__all__ = ["TRAINING_PIXEL_RANGE", "TRAINING_BEAD_RANGE", "TomogramResult",
           "sampling_warnings", "score_tomogram", "check_parameters"]

# What the shipped networks were trained on (see faml_tomo/models/MODEL_CARD.md).
TRAINING_PIXEL_RANGE = (7.0, 20.0)         # Å/px
TRAINING_BEAD_RANGE = (50.0, 150.0)        # Å
TRAINING_BEAD_PX = (2.5, 21.5)             # bead diameter in tomogram pixels
TOLERANCE = 1.25                           # "far" = beyond the range by this factor


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


def check_parameters(bead_diameter_A, criterion, strong_threshold, weak_threshold):
    """Raise :class:`InputError` for unusable detection parameters."""
    if not (np.isfinite(bead_diameter_A) and bead_diameter_A > 0):
        raise InputError(f"bead size must be > 0, got {bead_diameter_A} Å")
    if criterion not in CRITERIA:
        raise InputError(f"criterion must be one of {', '.join(CRITERIA)}, got "
                         f"{criterion!r}")
    for name, thr in (("strong threshold", strong_threshold),
                      ("weak threshold", weak_threshold)):
        if thr is not None and not (np.isfinite(thr) and 0.0 <= thr <= 1.0):
            raise InputError(f"{name} must lie in [0, 1], got {thr}")


def sampling_warnings(sampling_rate, bead_diameter_A):
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
        out.append(f"pixel size {px:g} Å/px is far from the training range {lo:g}-{hi:g} "
                   f"Å/px: scores may be unreliable")
    blo, bhi = TRAINING_BEAD_RANGE
    if not blo / TOLERANCE <= bead <= bhi * TOLERANCE:
        out.append(f"bead size {bead / 10:g} nm is far from the training range "
                   f"{blo / 10:g}-{bhi / 10:g} nm (boxes are sampled at {box:.2f} Å/voxel)")
    plo, phi = TRAINING_BEAD_PX
    bead_px = bead / px
    if not plo / TOLERANCE <= bead_px <= phi * TOLERANCE:
        out.append(f"the bead spans {bead_px:.1f} px; after resampling to 16 px (x"
                   f"{16 / bead_px:.2f}) this is far from the training range "
                   f"{plo:g}-{phi:g} px: scores may be unreliable")
    return out


def score_tomogram(name, tomogram, coords, sampling_rate, bead_diameter_A, scorer,
                   criterion="mean", strong_threshold=0.5, weak_threshold=None,
                   keep_boxes=False):
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

    Returns
    -------
    TomogramResult
    """
    check_parameters(bead_diameter_A, criterion, strong_threshold, weak_threshold)
    coords = np.asarray(coords, float).reshape(-1, 3)
    warns = sampling_warnings(sampling_rate, bead_diameter_A)
    empty = np.zeros(0, np.float32)
    if len(coords) == 0:
        dec = decide([], None, criterion, strong_threshold, weak_threshold)
        dec.message = f"{name}: {dec.message}"
        return TomogramResult(name, coords, empty, empty, empty, dec, warnings=warns)
    bs = extract_boxes(tomogram, coords, sampling_rate, bead_diameter_A)
    strong, weak = scorer.score(bs.boxes)
    dec = decide(strong, weak, criterion, strong_threshold, weak_threshold)
    n_out = int(np.count_nonzero(bs.outside_fraction > 0))
    if n_out:
        note = (f"{n_out} of {len(coords)} boxes reach past the tomogram border "
                f"(padded, kept)")
        dec.message = f"{dec.message}; {note}" if dec.message else note
    return TomogramResult(name, bs.coords, np.asarray(strong, np.float32),
                          np.asarray(weak, np.float32), bs.outside_fraction, dec,
                          bs.sampling, bs.scale, warns,
                          bs.boxes if keep_boxes else None)


def unclassified(name, message):
    """A result for a tomogram that could not be judged."""
    empty = np.zeros(0, np.float32)
    return TomogramResult(name, np.zeros((0, 3)), empty, empty, empty,
                          TomogramDecision(UNCLASSIFIED, message=message))
