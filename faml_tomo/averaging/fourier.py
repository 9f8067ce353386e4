"""Centred, orthonormal Fourier transforms of cubic boxes and their sampling.

Conventions used by the whole averaging package:

* The spectrum of a real volume ``v`` (``[z, y, x]``, centre voxel ``n // 2``)
  is ``rfftn(ifftshift(v), norm="ortho")``: frequencies are relative to the box
  centre, so a rotation about the centre rotates the spectrum and a shift ``t``
  (voxels, ``(x, y, z)``) multiplies it by ``exp(-2 pi i k.t / n)``.  The
  orthonormal scaling makes sums of ``|F|^2`` over the full spectrum equal
  real-space sums of squares (Parseval), so noise variances agree in both
  spaces.
* Half spectra have shape ``(n, n, n//2 + 1)``; a sum over the full spectrum is
  a sum over the half spectrum weighted by :func:`hermitian_weights`.
* Off-grid values come from trilinear interpolation in a spectrum oversampled
  ``pad`` times (the volume zero-padded to ``pad * n`` in real space), which is
  accurate for volumes supported in their box.
"""

import logging

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy import fft as sfft
from scipy import ndimage

logger = logging.getLogger(__name__)

__all__ = [
    "spectrum",
    "volume_from_spectrum",
    "half_frequencies",
    "hermitian_weights",
    "PaddedSpectrum",
    "oversampled_spectrum",
    "sample_spectrum",
    "WORKERS",
]

#: Threads given to scipy.fft (the process pool parallelises across particles).
WORKERS = 1


def spectrum(volume: np.ndarray) -> np.ndarray:
    """Centred orthonormal half spectrum of a real cubic volume.

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)

    Returns
    -------
    numpy.ndarray, complex128, shape (n, n, n//2 + 1)
    """
    return sfft.rfftn(
        sfft.ifftshift(np.asarray(volume, dtype=float)), norm="ortho", workers=WORKERS
    )


def volume_from_spectrum(spec: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`spectrum`: real volume of shape ``(n, n, n)``."""
    return sfft.fftshift(sfft.irfftn(spec, s=(n, n, n), norm="ortho", workers=WORKERS))


def half_frequencies(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer frequencies ``(kz, ky, kx)`` of the half spectrum, broadcastable
    to ``(n, n, n//2 + 1)``."""
    k = np.fft.fftfreq(n, 1.0 / n)
    kx = np.fft.rfftfreq(n, 1.0 / n)
    return k[:, None, None], k[None, :, None], kx[None, None, :]


def hermitian_weights(n: int) -> np.ndarray:
    """Multiplicity of each half-spectrum column in the full spectrum.

    Returns
    -------
    numpy.ndarray, shape (n//2 + 1,)
        1 for ``kx = 0`` (and ``kx = n/2`` when ``n`` is even), else 2.
    """
    w = np.full(n // 2 + 1, 2.0)
    w[0] = 1.0
    if n % 2 == 0:
        w[-1] = 1.0
    return w


class PaddedSpectrum:
    """Half spectrum of a volume oversampled ``pad`` times, for fast
    trilinear sampling at off-grid frequencies.

    Stored as one contiguous complex64 array with the ky and kz axes
    centred, so that interpolation needs no wrap-around; each sample gathers
    its 8 neighbours and weighs them in double precision in a compiled loop
    (:mod:`.kernels`; the same values as ``ndimage.map_coordinates`` on
    separate real and imaginary planes to 1e-12).  Its value at padded index
    ``pad * k`` equals ``spectrum(volume)[k]``.

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
        Real volume ``[z, y, x]``, centre voxel ``n // 2``.
    pad : int
        Oversampling factor (2 is enough for trilinear interpolation).
    """

    def __init__(self, volume: ArrayLike, pad: int = 2) -> None:
        vol = np.asarray(volume, dtype=float)
        n = vol.shape[0]
        m = pad * n
        big = np.zeros((m, m, m))
        o = m // 2 - n // 2  # keeps the centre voxel on the centre
        big[o : o + n, o : o + n, o : o + n] = vol
        out = sfft.rfftn(sfft.ifftshift(big), workers=WORKERS)
        out = sfft.fftshift(out, axes=(0, 1)) * (1.0 / np.sqrt(float(n) ** 3))
        self.n = n
        self.pad = int(pad)
        self.data = np.ascontiguousarray(out, dtype=np.complex64)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    def sample(self, q: ArrayLike) -> np.ndarray:
        """Trilinear samples at frequencies ``q``.

        Parameters
        ----------
        q : numpy.ndarray, shape (M, 3)
            Frequencies ``(kx, ky, kz)`` in units of the original box, with
            ``|q| < n / 2`` (beyond, the edge of the padded grid is used).

        Returns
        -------
        numpy.ndarray, complex128, shape (M,)
            Uses ``F(-q) = conj(F(q))`` for ``qx < 0``.
        """
        from .kernels import sample_points

        q = np.ascontiguousarray(q, dtype=float).reshape(-1, 3)
        return sample_points(self.data, float(self.pad), q)

    def sample_rotated(self, freq: ArrayLike, rotations: ArrayLike) -> np.ndarray:
        """Samples at ``R^T k`` for each rotation ``R`` (the average turned by
        ``R``, seen at frequencies ``k``), without forming the points.

        Parameters
        ----------
        freq : numpy.ndarray, shape (M, 3)
            Frequencies ``k = (kx, ky, kz)``.
        rotations : numpy.ndarray, shape (C, 3, 3)

        Returns
        -------
        numpy.ndarray, complex128, shape (C, M)
            Row ``c`` equals ``sample(freq @ rotations[c])``.
        """
        from .kernels import sample_rotated

        return sample_rotated(
            self.data,
            float(self.pad),
            np.ascontiguousarray(freq, dtype=float),
            np.ascontiguousarray(rotations, dtype=float).reshape(-1, 3, 3),
        )


def oversampled_spectrum(
    volume: ArrayLike, pad: int = 2, dtype: DTypeLike = np.complex64
) -> np.ndarray:
    """Half spectrum of ``volume`` zero-padded to ``pad * n`` (unshifted layout).

    Scaled so that its value at padded index ``pad * k`` equals
    ``spectrum(volume)[k]``.  :class:`PaddedSpectrum` is the faster form used
    for sampling; this plain array is kept for :func:`sample_spectrum`.

    Returns
    -------
    numpy.ndarray, shape (pad n, pad n, pad n // 2 + 1)
    """
    vol = np.asarray(volume, dtype=float)
    n = vol.shape[0]
    m = pad * n
    big = np.zeros((m, m, m))
    o = m // 2 - n // 2
    big[o : o + n, o : o + n, o : o + n] = vol
    out = sfft.rfftn(sfft.ifftshift(big), workers=WORKERS)
    out *= 1.0 / np.sqrt(float(n) ** 3)
    return out.astype(dtype, copy=False)


def sample_spectrum(padded: np.ndarray, pad: float, q: ArrayLike) -> np.ndarray:
    """Trilinear samples of an oversampled half spectrum at off-grid points.

    Parameters
    ----------
    padded : numpy.ndarray, shape (m, m, m//2 + 1)
        Output of :func:`oversampled_spectrum` (``m = pad * n``).
    pad : int
        Its oversampling factor.
    q : numpy.ndarray, shape (M, 3)
        Frequencies ``(kx, ky, kz)`` in units of the original box; ``|q|``
        must stay below ``n / 2``.

    Returns
    -------
    numpy.ndarray, complex, shape (M,)
        Interpolated spectrum, using ``F(-q) = conj(F(q))`` for ``qx < 0``.
    """
    q = np.asarray(q, dtype=float)
    flip = q[:, 0] < 0
    sgn = np.where(flip, -float(pad), float(pad))[:, None]
    c = q * sgn
    # grid-wrap implements the periodic (unshifted) ky, kz axes; kx >= 0 here.
    vals = ndimage.map_coordinates(
        padded, [c[:, 2], c[:, 1], c[:, 0]], order=1, mode="grid-wrap", prefilter=False
    )
    np.conjugate(vals, out=vals, where=flip)
    return vals
