"""Gold fiducial detection in tomograms ("peak high contrast").

Pure compute (numpy/scipy, no Scipion): the algorithm of de Isidro-Gómez et
al. (2024) §2.3, processed slice by slice so that memory-mapped tomograms
larger than memory can be searched (:func:`peak_high_contrast`,
:func:`peak_high_contrast_file`).

Where this implementation departs from the reference program (Xmipp's
``image_peak_high_contrast``), it follows what the paper means:

* band-pass edges of width ``0.5 / d`` around the pass band
  ``[1 / (1.1 d), 1 / (0.9 d)]`` (the reference's width depends on the
  slice size and is left uninitialised);
* 2D components that are not round enough (a bead fused with protein) are
  thresholded again deeper, and round cores kept;
* the mirror correlation is computed on the paper's ``V_i``, a cube of two
  bead diameters; duplicates (closer than 1.5 diameters) are resolved by
  score, averaging only coordinates of the same object;
* the radial-profile Mahalanobis filter estimates the bead population
  robustly (from the darkest profiles, reweighted), never takes its spread
  as smaller than the background's or than a 20% amplitude spread of gold,
  removes only profiles fainter than the beads, and reads the threshold as
  standard deviations of a 1D Gaussian (2 -> 2.49 in the 2D PCA space);
* relaxed mode does what it is meant to (the reference inverts it);
* an added contrast gate, ``min_contrast``: gold is far darker than
  biological matter, which keeps tomograms without gold empty;
* added searches for beads a misaligned tilt series smeared: at larger
  bead sizes, then for lobes and arcs grouped per bead, then for streaks
  along the tilt axis (:mod:`~faml_tomo.fiducials.smeared`), when too few
  round beads are found.

Examples
--------
>>> from faml_tomo.fiducials import PeakHighContrastParams, peak_high_contrast
>>> res = peak_high_contrast(tomo, sampling_rate=10.0,                # doctest: +SKIP
...                          params=PeakHighContrastParams(bead_diameter_nm=10))
>>> res.coordinates.shape, res.scores.shape                        # doctest: +SKIP
((42, 3), (42,))
"""

from .evaluate import match_points
from .params import MIN_BEAD_PX, PeakHighContrastParams, PeakHighContrastResult
from .border import box_inside
from .pipeline import peak_high_contrast, peak_high_contrast_file

__all__ = [
    "PeakHighContrastParams",
    "PeakHighContrastResult",
    "peak_high_contrast",
    "peak_high_contrast_file",
    "box_inside",
    "match_points",
    "MIN_BEAD_PX",
]
