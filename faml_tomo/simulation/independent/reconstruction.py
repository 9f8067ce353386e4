"""Filtered back-projection of the independent model, through Fourier space
(:func:`~.fourier_slice.fourier_backproject`), with the usual filters and a
SIRT-like filter.

Filters act along the image rows (perpendicular to the tilt axis) on the
zero-padded images, at frequency ``f`` in cycles/pixel:

* ``ramp``: the exact discrete ramp (spatial-domain construction, non-zero
  DC term) ``~|f|``;
* ``hann``: ramp x ``(1 + cos(2 pi f)) / 2``;
* ``shepp-logan``: ramp x ``sinc(f)``;
* ``cosine``: ramp x ``cos(pi f)``;
* ``sirt``: the filter that makes back-projection imitate ``k`` Landweber
  (SIRT) iterations (Zeng 2012). With ``A^T A ~ n / (pi |f|)`` and the
  relaxation that converges the lowest frequency ``f0 = 1 / Nx`` in one
  step, ``H_k(f) = |f| (1 - (1 - f0 / |f|)**k)``: the ramp at low
  frequency, flat (``k f0``) above ``~k f0``.

Images are weighted by the angular interval they stand for, so a full
range of tilts reproduces the volume's values.
"""

import logging

import numpy as np

from ...errors import InputError
from .fourier_slice import fourier_backproject, padded_sizes
from .tilt_scheme import angular_weights

logger = logging.getLogger(__name__)

__all__ = ["FILTERS", "reconstruction_filter", "reconstruct"]

FILTERS = ("ramp", "hann", "shepp-logan", "cosine", "sirt")


def _discrete_ramp(n: int) -> np.ndarray:
    """Ramp response at ``rfftfreq(n)`` from the band-limited spatial
    kernel (``h[0] = 1/4``, ``h[odd m] = -1 / (pi m)**2``)."""
    m = np.arange(n)
    m = np.minimum(m, n - m)
    h = np.zeros(n)
    h[0] = 0.25
    odd = m % 2 == 1
    h[odd] = -1.0 / (np.pi * m[odd]) ** 2
    return np.real(np.fft.rfft(h))


def reconstruction_filter(n: int, name: str = "ramp", sirt_iterations: int = 15) -> np.ndarray:
    """Row filter of filtered back-projection.

    Parameters
    ----------
    n : int
        Padded row length.
    name : str
        One of :data:`FILTERS`.
    sirt_iterations : int
        ``k`` of the SIRT-like filter.

    Returns
    -------
    numpy.ndarray, shape (n // 2 + 1,)
        Filter at ``rfftfreq(n)`` (cycles/pixel).
    """
    f = np.fft.rfftfreq(n)
    ramp = _discrete_ramp(n)
    if name == "ramp":
        return ramp
    if name == "hann":
        return ramp * 0.5 * (1 + np.cos(2 * np.pi * f))
    if name == "shepp-logan":
        return ramp * np.sinc(f)
    if name == "cosine":
        return ramp * np.cos(np.pi * f)
    if name == "sirt":
        if sirt_iterations < 1:
            raise InputError(f"sirt_iterations must be >= 1, got {sirt_iterations}")
        f0 = 1.0 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            h = f * (1 - (1 - np.where(f > 0, f0 / f, 1.0)) ** sirt_iterations)
        h[0] = ramp[0]
        return h
    raise InputError(f"recon_filter must be one of {', '.join(FILTERS)}; got {name!r}")


def reconstruct(
    stack: np.ndarray,
    angles_deg: np.ndarray,
    nz: int,
    filter_name: str = "ramp",
    sirt_iterations: int = 15,
    oversampling: float = 2.0,
) -> np.ndarray:
    """Tomogram from a pre-processed tilt series.

    Parameters
    ----------
    stack : numpy.ndarray, shape (n, ny, nx)
        Images in ascending tilt order (contrast, CTF-corrected, aligned).
    angles_deg : numpy.ndarray, shape (n,)
        Tilt angles, degrees.
    nz : int
        Tomogram depth, voxels.
    filter_name : str
        One of :data:`FILTERS`.
    sirt_iterations : int
        Iterations of the SIRT-like filter.
    oversampling : float
        Zero padding of the Fourier back-projector.

    Returns
    -------
    numpy.ndarray, float32, shape (nz, ny, nx)
        Indexed ``[z, y, x]``; a voxel ``(x, y, z)`` is seen at column
        ``u = (x - cx) cos + (z - cz) sin + cx`` of each image.
    """
    stack = np.asarray(stack, np.float32)
    if stack.ndim != 3:
        raise InputError(f"tilt series must be (n, ny, nx), got shape {stack.shape}")
    angles = np.asarray(angles_deg, float)
    if np.any(np.diff(angles) <= 0):
        raise InputError("tilt angles must be strictly ascending")
    if not 1 <= nz <= 4096:
        raise InputError(f"nz must be 1-4096, got {nz}")
    _, nxp = padded_sizes(nz, stack.shape[2], oversampling)
    filt = reconstruction_filter(nxp, filter_name, sirt_iterations)
    return fourier_backproject(stack, angles, nz, angular_weights(angles), filt, oversampling)
