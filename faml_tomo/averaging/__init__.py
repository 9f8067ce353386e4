"""FAML subtomogram averaging and classification (pure compute, no Scipion).

Zhao, Zeng, Guo & Xu, "An integration of fast alignment and maximum-likelihood
methods for electron subtomogram averaging and classification" (FAML), §2:

* :mod:`.wedge` - missing-wedge masks of a tilt range about Y (part 1).
* :mod:`.fourier` - centred orthonormal spectra, oversampled interpolation.
* :mod:`.sph`, :mod:`.so3` - spherical-harmonic expansion of Fourier shells and
  the rotational correlation over all ZYZ Euler angles by one FFT.
* :mod:`.align` - the constrained, translation-invariant score (eqs. 1-2),
  candidate rotations at its local maxima, FFT translation search and
  sub-voxel / off-grid refinement (part 2).
* :mod:`.voronoi` - Monte-Carlo Voronoi weights on SO(3) x R^3 (part 3).
* :mod:`.em` - EM with log-space posteriors (eqs. 10-15), §2.4 initialisation,
  checkpoint and resume (part 4) and the FA comparator (part 5).
* :mod:`.parallel` - serial, process-pool and MPI execution over fixed chunks
  of subtomograms (identical results), streaming from MRC files (part 6).
* :mod:`.testing` - procedural phantoms and simple simulated subtomograms.

Conventions are those of :mod:`faml_tomo.geometry`: volumes ``[z, y, x]``,
rotations act on ``(x, y, z)``, a transform ``(R, t)`` maps the average onto
the subtomogram, ``t`` in voxels.

Example
-------
>>> from faml_tomo.averaging import classify                   # doctest: +SKIP
>>> res = classify(volumes, tilt_range=(-60, 60), n_classes=2, seed=1)
>>> res.averages.shape, res.classes, res.euler_angles()
"""

from .align import (
    AlignmentResult,
    AlignParams,
    PreparedReference,
    PreparedSubtomogram,
    align,
    fast_align,
    prepare_reference,
    prepare_subtomogram,
)
from .em import ClassificationResult, EMParams, EMState, classify, estep_chunk, prepare_data
from .parallel import VolumeFiles
from .voronoi import haar_rotations, voronoi_weights
from .wedge import apply_wedge, check_tilt_range, wedge_mask, wedge_observed

__all__ = [
    "AlignParams",
    "AlignmentResult",
    "PreparedSubtomogram",
    "PreparedReference",
    "prepare_subtomogram",
    "prepare_reference",
    "align",
    "fast_align",
    "EMParams",
    "EMState",
    "ClassificationResult",
    "classify",
    "prepare_data",
    "estep_chunk",
    "VolumeFiles",
    "voronoi_weights",
    "haar_rotations",
    "wedge_mask",
    "wedge_observed",
    "apply_wedge",
    "check_tilt_range",
]
