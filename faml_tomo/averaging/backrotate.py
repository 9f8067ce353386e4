"""Subtomograms moved back into the frame of the averages: the observed
components of each subtomogram at a rigid transform, sampled at the band
points of the reference frame, and their wedge-compensated sums."""

from collections.abc import Container, Sequence

import numpy as np
from numpy.typing import ArrayLike

from .alignsetup import BandGeometry
from .fourier import PaddedSpectrum, volume_from_spectrum
from .prepared import PreparedSubtomogram
from .wedge import wedge_observed

__all__ = ["padded_observed", "back_rotate", "hard_sums"]


def padded_observed(part: PreparedSubtomogram, geom: BandGeometry, pad: int) -> PaddedSpectrum:
    """Oversampled spectrum of the subtomogram's observed band (``w X``)."""
    n = part.n
    half = np.zeros(n * n * (n // 2 + 1), dtype=complex)
    half[geom.index[part.observed]] = part.values
    return PaddedSpectrum(volume_from_spectrum(half.reshape(n, n, n // 2 + 1), n), pad)


def back_rotate(
    part: PreparedSubtomogram,
    padded: PaddedSpectrum,
    rotation: ArrayLike,
    shift: np.ndarray,
    geom: BandGeometry,
) -> tuple[np.ndarray, np.ndarray]:
    """``R^-1 (w X)`` and ``R^-1 w`` at the band points of the reference frame.

    Returns
    -------
    values : numpy.ndarray, complex, shape (M,)
    mask : numpy.ndarray, bool, shape (M,)
        Band points the subtomogram observed at this transform.
    """
    q = geom.freq @ np.asarray(rotation).T  # R k' per row
    mask = wedge_observed(q[:, 0], q[:, 1], q[:, 2], part.tilt_range)
    vals = padded.sample(q)
    vals *= np.exp((2j * np.pi / part.n) * (q @ shift))
    vals *= mask
    return vals, mask


def hard_sums(
    parts: Sequence[PreparedSubtomogram],
    members: Container[int],
    rotations: np.ndarray,
    shifts: np.ndarray,
    geom: BandGeometry,
    pad: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the back-rotated observed components (and their counts) of
    the subtomograms in ``members`` at the given transforms (a chunk
    function for the runners of :mod:`.parallel`)."""
    m = len(geom.index)
    num = np.zeros(m, dtype=complex)
    cnt = np.zeros(m)
    for p in parts:
        if p.index in members:
            vals, mask = back_rotate(
                p, padded_observed(p, geom, pad), rotations[p.index], shifts[p.index], geom
            )
            num += vals
            cnt += mask
    return num, cnt
