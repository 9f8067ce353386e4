"""Subtomograms and averages expanded once for the fast alignment
(:mod:`.align`): observed band values, shell expansions, padded spectra."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as sfft

from ..errors import InputError
from .alignsetup import AlignParams, band_geometry
from .fourier import WORKERS, PaddedSpectrum, spectrum
from .sph import expand_shells, shell_layout
from .wedge import check_tilt_range, wedge_observed

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class PreparedSubtomogram:
    """A subtomogram expanded once for alignment and EM.

    Attributes
    ----------
    n : int
        Box size.
    tilt_range : tuple of float
        Its tilt range in degrees.
    observed : numpy.ndarray of int, shape (M,)
        Positions (into :attr:`BandGeometry.index`) of the observed
        band components.
    values : numpy.ndarray, complex, shape (M,)
        Spectrum ``X`` at those components.
    norm2 : float
        ``sum_j w_j |X_j|^2`` over the full spectrum.
    n_obs : float
        Number of observed full-spectrum components ``J_i^o``.
    coeffs : numpy.ndarray, complex64, shape (2, R, ncoef)
        Shell expansions of ``w |X|`` (shell mean removed if asked) and ``w``.
    index : int
        Position in its data set (seeds and ordering).
    """

    n: int
    tilt_range: tuple
    observed: np.ndarray
    values: np.ndarray
    norm2: float
    n_obs: float
    coeffs: np.ndarray
    index: int = 0

    def nbytes(self) -> int:
        """Memory held, in bytes."""
        return self.observed.nbytes + self.values.nbytes + self.coeffs.nbytes


@dataclass(eq=False)
class PreparedReference:
    """An average expanded once per iteration for alignment.

    Attributes
    ----------
    n : int
        Box size.
    band_values : numpy.ndarray, complex, shape (M_band,)
        Spectrum ``A`` at the band points of :func:`band_geometry`.
    padded : PaddedSpectrum
        Oversampled spectrum for interpolation.
    coeffs : numpy.ndarray, complex, shape (2, R, ncoef)
        Shell expansions of ``|A|`` and ``|A|^2``.
    """

    n: int
    band_values: np.ndarray
    padded: PaddedSpectrum
    coeffs: np.ndarray


def _full_centred(half_vals, geom, fill=0.0):
    """Full centred cube ``[kz, ky, kx]`` of an even real function known at
    the band points of a half spectrum."""
    n = geom.n
    cube = np.full((n, n, n), fill, dtype=float)
    k = geom.freq.astype(int)
    c = n // 2
    cube[k[:, 2] + c, k[:, 1] + c, k[:, 0] + c] = half_vals
    # Mirror (even function): the band excludes |k| = n/2, so -k stays in range.
    cube[-k[:, 2] + c, -k[:, 1] + c, -k[:, 0] + c] = half_vals
    return cube


def prepare_subtomogram(
    volume: ArrayLike,
    tilt_range: float | Sequence[float],
    params: AlignParams | None = None,
    index: int = 0,
    spec: np.ndarray | None = None,
    observed: ArrayLike | None = None,
) -> "PreparedSubtomogram":
    """Expand one subtomogram (once; reused by every iteration).

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
        The subtomogram ``[z, y, x]``.
    tilt_range : float or (float, float)
        Its tilt range in degrees (missing wedge about Y).
    params : AlignParams, optional
    index : int
        Its position in the data set.
    spec : numpy.ndarray, optional
        Its :func:`.fourier.spectrum`, if already computed.
    observed : numpy.ndarray of bool, shape (M,), optional
        Which band points (:func:`band_geometry`) were observed, instead of
        the wedge of ``tilt_range`` (e.g. the covered part of an average).

    Returns
    -------
    PreparedSubtomogram
    """
    params = params or AlignParams()
    vol = np.asarray(volume, dtype=float)
    n = vol.shape[0]
    tilt = check_tilt_range(tilt_range)
    r_min, r_max = params.band(n)
    geom = band_geometry(n, r_min, r_max)
    layout = shell_layout(n, params.lmax, r_min, r_max)
    if spec is None:
        spec = spectrum(vol)
    f = geom.freq
    if observed is None:
        obs = wedge_observed(f[:, 0], f[:, 1], f[:, 2], tilt)
    else:
        obs = np.asarray(observed, bool).reshape(-1)
        if obs.shape != (len(geom.index),):
            raise InputError(f"observed: {obs.size} values for {len(geom.index)} band points")
    observed = np.flatnonzero(obs)
    vals = spec.reshape(-1)[geom.index[observed]]
    herm = geom.herm[observed]
    mag = np.zeros(len(geom.index))
    mag[observed] = np.abs(vals)
    if params.shell_mean:
        # Mean |X| over the observed part of each integer shell.
        shell = np.rint(np.linalg.norm(f, axis=1)).astype(int)
        num = np.bincount(shell[observed], weights=herm * mag[observed], minlength=n)
        den = np.bincount(shell[observed], weights=herm, minlength=n)
        mean = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        mag[observed] -= mean[shell[observed]]
    cubes = np.stack([_full_centred(mag, geom), _full_centred(obs.astype(float), geom)])
    # Compact storage: the expansions only steer the rotation search.
    coeffs = expand_shells(cubes, layout).astype(np.complex64)
    observed = observed.astype(np.int32)
    return PreparedSubtomogram(
        n=n,
        tilt_range=tilt,
        observed=observed,
        values=vals,
        norm2=float(np.sum(herm * np.abs(vals) ** 2)),
        n_obs=float(herm.sum()),
        coeffs=coeffs,
        index=int(index),
    )


def prepare_reference(
    volume: ArrayLike | None = None,
    params: AlignParams | None = None,
    spec: np.ndarray | None = None,
    n: int | None = None,
) -> "PreparedReference":
    """Expand an average for alignment (once per average and iteration).

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n), optional
        The average in real space; or give ``spec`` and ``n``.
    params : AlignParams, optional
    spec : numpy.ndarray, complex, shape (n, n, n//2 + 1), optional
        Its centred half spectrum; components outside the band are ignored.
    n : int, optional
        Box size when only ``spec`` is given.

    Returns
    -------
    PreparedReference
    """
    params = params or AlignParams()
    if spec is None:
        vol = np.asarray(volume, dtype=float)
        n = vol.shape[0]
        spec = spectrum(vol)
    if n is None:
        raise TypeError("prepare_reference: give n with spec")
    r_min, r_max = params.band(n)
    geom = band_geometry(n, r_min, r_max)
    layout = shell_layout(n, params.lmax, r_min, r_max)
    band_vals = spec.reshape(-1)[geom.index]
    # Band-limited copy for interpolation (outside the band does not exist).
    half = np.zeros(n * n * (n // 2 + 1), dtype=complex)
    half[geom.index] = band_vals
    vol_band = sfft.fftshift(
        sfft.irfftn(half.reshape(n, n, n // 2 + 1), s=(n, n, n), norm="ortho", workers=WORKERS)
    )
    padded = PaddedSpectrum(vol_band, pad=params.pad)
    mag = np.abs(band_vals)
    cubes = np.stack([_full_centred(mag, geom), _full_centred(mag**2, geom)])
    coeffs = expand_shells(cubes, layout)
    return PreparedReference(n=n, band_values=band_vals, padded=padded, coeffs=coeffs)
