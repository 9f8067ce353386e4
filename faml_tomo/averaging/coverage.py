"""Fourier coverage of class averages: how much of the band few subtomograms
observed (the missing wedge left unfilled in the average's frame).

Every subtomogram misses a wedge; an average fills it only if its members'
orientations spread their wedges.  With the rotations about one axis of a
preferred orientation, or with a symmetric particle in C1 (each member may
sit at any symmetry mate, and EM favours the mates whose wedges fall where
the average is already strong), the estimated poses can pile the wedges on
one another: the average keeps a hole that its true poses would have filled.
Measured (``benchmarks/bench_faml_snr.py``, 3j9i proteasome, D7, rotations
about Y with ±40°, SNR 0.1): every pose right to 10° up to a symmetry mate,
yet 26 % of the band seen by < 5 % of the subtomograms (true poses: none
below 28 %), and the average correlates 0.81 with the truth instead of 0.99.
"""

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["GAP_LEVEL", "GAP_WARN", "class_coverage", "coverage_gaps", "gap_message"]

GAP_LEVEL = 0.1  # a component seen by less than this fraction of a class is a gap
GAP_WARN = 0.05  # warn when gaps exceed this fraction of the band


def class_coverage(wsum: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Fraction of each class's subtomograms that observed each band component.

    Parameters
    ----------
    wsum : numpy.ndarray, shape (K, M)
        Posterior-weighted count of the subtomograms that observed each band
        component, in the frame of the class average (E-step sums).
    gamma : numpy.ndarray, shape (K,)
        Class masses (subtomograms).

    Returns
    -------
    numpy.ndarray, float32, shape (K, M)
        In ``[0, 1]``; NaN for an empty class.
    """
    wsum = np.atleast_2d(np.asarray(wsum, float))
    gamma = np.asarray(gamma, float).reshape(-1)
    out = np.full(wsum.shape, np.nan)
    ok = gamma > 1e-12
    out[ok] = np.clip(wsum[ok] / gamma[ok, None], 0.0, 1.0)
    return out.astype(np.float32)


def coverage_gaps(coverage: np.ndarray, geom: Any, level: float = GAP_LEVEL) -> np.ndarray:
    """Fraction of each class's band that few of its subtomograms observed.

    Parameters
    ----------
    coverage : numpy.ndarray, shape (K, M)
        :func:`class_coverage`.
    geom : BandGeometry
        Band points ``M`` (:func:`.align.band_geometry`), Hermitian weights.
    level : float
        A component observed by less than this fraction of the class counts
        as a gap.

    Returns
    -------
    numpy.ndarray, shape (K,)
        Fraction of the band's components (Hermitian-weighted) in gaps; NaN
        for an empty class.
    """
    cov = np.atleast_2d(np.asarray(coverage, float))
    herm = np.asarray(geom.herm, float)
    out = np.full(len(cov), np.nan)
    for k, c in enumerate(cov):
        if np.all(np.isfinite(c)):
            out[k] = float(np.sum(herm * (c < level)) / np.sum(herm))
    return out


def gap_message(gaps: ArrayLike, warn: float = GAP_WARN, level: float = GAP_LEVEL) -> str | None:
    """A warning for the classes whose gaps exceed ``warn`` (None if none)."""
    bad = [(k + 1, g) for k, g in enumerate(np.asarray(gaps, float)) if g > warn]
    if not bad:
        return None
    which = ", ".join(f"class {k}: {100 * g:.0f} %" for k, g in bad)
    return (
        f"the missing wedge is not filled in the average ({which} of the band seen "
        f"by fewer than {100 * level:.0f} % of the class's subtomograms): the poses "
        f"piled up their wedges.  A symmetric particle run in C1 does this (give its "
        f"point group); with a preferred orientation, more tilt range or more "
        f"particles of other views help"
    )
