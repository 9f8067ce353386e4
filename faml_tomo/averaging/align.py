"""Fast constrained alignment of a subtomogram to an average (paper §2.1).

The score of a rigid transform ``(R, t)`` (reference onto particle, the
convention of :mod:`faml_tomo.geometry`) is the Fourier-space correlation
restricted to the particle's observed components (eq. 1)::

    c(R, t) = Re sum_j w_j X_j conj((R A)_j) e^{2 pi i k_j.t / n}
              / sqrt(sum_j w_j |(R A)_j|^2  sum_j w_j |X_j|^2)

(``w`` the particle's wedge mask, sums over the full spectrum inside the shell
band ``r_min <= |k| <= r_max``, zero frequency excluded, i.e. a Pearson
correlation over the observed region).  Its translation-invariant upper bound
(eq. 2)::

    c~(R) = sum_k w |X| (R |A|) / sqrt(sum_k w (R |A|^2) sum_k w |X|^2)

is a ratio of two rotational correlations, evaluated for all rotations at
once on an Euler grid by :func:`.so3.so3_correlation` from shell expansions
computed once per particle (``w |X|``, ``w``) and once per average
(``|A|``, ``|A|^2``).  The distinct local maxima of ``c~`` (at most
``max_candidates``) are the candidate rotations; each gets the translation
maximising ``c(R, t)`` from a masked FFT cross-correlation (integer peak
within ``max_shift``, then a parabola per axis for sub-voxel precision) and its
exact score ``c(R, t)`` and squared distance
``sum_j w_j |X_j - (R_t A)_j|^2`` (the E-step needs it).  ``R A`` is sampled
by trilinear interpolation of the average's spectrum oversampled ``pad`` times.

Typical use::

    params = AlignParams()
    part = prepare_subtomogram(volume, tilt_range=(-60, 60), params=params)
    ref = prepare_reference(average, params=params)
    res = align(part, ref, params)       # res.rotations[0], res.shifts[0]: best
"""

import logging
from collections.abc import Sequence

import numpy as np

from ..errors import InputError
from .alignsetup import AlignParams, BandGeometry, band_geometry, check_volume, check_volumes
from .prepared import PreparedReference, PreparedSubtomogram, prepare_reference, prepare_subtomogram
from .so3 import find_peaks
from .symmetry import symmetry_group
from .translation import AlignmentResult, refine_rotation, rotation_scores, translation_search

logger = logging.getLogger(__name__)

__all__ = [
    "AlignParams",
    "BandGeometry",
    "band_geometry",
    "PreparedSubtomogram",
    "PreparedReference",
    "AlignmentResult",
    "prepare_subtomogram",
    "prepare_reference",
    "align",
    "fast_align",
    "check_volume",
    "check_volumes",
    "translation_search",
    "refine_rotation",
    "rotation_scores",
]


def align(
    part: PreparedSubtomogram, ref: PreparedReference, params: AlignParams | None = None
) -> AlignmentResult:
    """Candidate transforms of a prepared subtomogram against an average.

    Parameters
    ----------
    part : PreparedSubtomogram
    ref : PreparedReference
    params : AlignParams, optional

    Returns
    -------
    AlignmentResult
        Candidates sorted by the constrained score, best first.
    """
    params = params or AlignParams()
    if part.n != ref.n:
        raise InputError(f"subtomogram box {part.n} differs from average box {ref.n}")
    score = rotation_scores(part, ref, params)
    group = symmetry_group(params.symmetry) if params.symmetry != "C1" else None
    rots, rvals = find_peaks(score, params.max_candidates, params.min_separation_deg, group=group)
    shifts, scores, sq, rn2 = translation_search(part, ref, rots, params)
    if params.refine > 0:
        for j in np.argsort(-scores, kind="stable")[: params.refine]:
            out = refine_rotation(part, ref, rots[j], shifts[j], params, params.grid_step_deg())
            if out[2] > scores[j]:
                rots[j], shifts[j], scores[j], sq[j], rn2[j] = out
    order = np.argsort(-scores, kind="stable")
    return AlignmentResult(
        rotations=rots[order],
        shifts=shifts[order],
        scores=scores[order],
        rot_scores=rvals[order],
        sq_dist=sq[order],
        ref_norm2=rn2[order],
    )


def fast_align(
    subtomogram: np.ndarray,
    reference: np.ndarray,
    tilt_range: "float | Sequence[float]",
    params: AlignParams | None = None,
) -> AlignmentResult:
    """Align one subtomogram to one average (convenience wrapper).

    Parameters
    ----------
    subtomogram, reference : numpy.ndarray, shape (n, n, n)
    tilt_range : float or (float, float)
        The subtomogram's tilt range in degrees.
    params : AlignParams, optional

    Returns
    -------
    AlignmentResult
        ``rotations[0]``, ``shifts[0]`` is the best transform mapping the
        reference onto the subtomogram.
    """
    check_volumes([subtomogram, reference], name="volume")
    params = params or AlignParams()
    part = prepare_subtomogram(subtomogram, tilt_range, params)
    ref = prepare_reference(reference, params)
    return align(part, ref, params)
