"""Resampling of images between the render grid, the detector and the
tomogram: band-limited up-sampling, block-mean binning and anti-aliased
Fourier-crop binning.

Pixel-centre convention: a coarse pixel ``j`` covers the fine pixels
``f * j ... f * j + f - 1`` and its centre is the fine coordinate
``f * j + (f - 1) / 2``. All three functions keep that correspondence, so a
feature keeps its position through any chain of them.
"""

import logging
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

from ...errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["fourier_upsample", "bin_mean", "bin_fourier", "fine_coordinate"]


def fine_coordinate(coarse: np.ndarray, factor: int) -> np.ndarray:
    """Fine-grid coordinate of a coarse-grid coordinate,
    ``factor * coarse + (factor - 1) / 2``."""
    return factor * np.asarray(coarse, float) + 0.5 * (factor - 1)


@lru_cache(maxsize=8)
def _shift_phase(shape, s):
    """Spectrum factor (``rfft2`` layout) that moves an image by ``+s``
    pixels in both axes."""
    ny, nx = shape
    py = np.exp(-2j * np.pi * s * np.fft.fftfreq(ny)).astype(np.complex64)
    px = np.exp(-2j * np.pi * s * np.fft.rfftfreq(nx)).astype(np.complex64)
    return py[:, None] * px[None, :]


def fourier_upsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited (zero-padding) up-sampling of a real image.

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
        Real image, ``ny`` and ``nx`` even.
    factor : int
        Up-sampling factor ``f`` >= 1.

    Returns
    -------
    numpy.ndarray, float32, shape (f * ny, f * nx)
        Fine image whose value at ``fine_coordinate(j, f)`` is ``image[j]``
        (the pixel centres), interpolated with the image's own band.
    """
    image = np.asarray(image, np.float32)
    f = int(factor)
    if f == 1:
        return image.copy()
    ny, nx = image.shape
    if ny % 2 or nx % 2:
        raise InputError(f"fourier_upsample needs even sizes, got {image.shape}")
    spec = sfft.rfft2(image, workers=1)
    out = np.zeros((f * ny, f * nx // 2 + 1), np.complex64)
    hy, hx = ny // 2, nx // 2
    out[:hy, :hx] = spec[:hy, :hx]
    out[-hy + 1 :, :hx] = spec[-hy + 1 :, :hx]
    # Nyquist row and column of the coarse grid: split between +/- frequencies
    out[hy, :hx] = 0.5 * spec[hy, :hx]
    out[-hy, :hx] = 0.5 * spec[hy, :hx]
    out[:hy, hx] = 0.5 * spec[:hy, hx]
    out[-hy + 1 :, hx] = 0.5 * spec[-hy + 1 :, hx]
    out[hy, hx] = out[-hy, hx] = 0.25 * spec[hy, hx]
    out *= _shift_phase((f * ny, f * nx), 0.5 * (f - 1))
    return (sfft.irfft2(out, s=(f * ny, f * nx), workers=1) * (f * f)).astype(np.float32)


def bin_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean over ``factor x factor`` pixels (what a detector pixel
    integrates), shape ``(ny // f, nx // f)``; the sizes must divide."""
    f = int(factor)
    if f == 1:
        return np.asarray(image)
    ny, nx = image.shape[-2:]
    if ny % f or nx % f:
        raise InputError(f"image shape {image.shape} is not divisible by binning {f}")
    lead = image.shape[:-2]
    return image.reshape(lead + (ny // f, f, nx // f, f)).mean(axis=(-3, -1))


def bin_fourier(image: np.ndarray, factor: int) -> np.ndarray:
    """Anti-aliased binning: the image spectrum cropped to the new Nyquist
    frequency (which is dropped), with the half-pixel shift of the
    pixel-centre convention. Keeps the mean; float32, shape
    ``(ny // f, nx // f)`` (even)."""
    f = int(factor)
    image = np.asarray(image, np.float32)
    if f == 1:
        return image.copy()
    ny, nx = image.shape
    if ny % (2 * f) or nx % (2 * f):
        raise InputError(f"image shape {image.shape} is not divisible by 2 x binning {f}")
    my, mx = ny // f, nx // f
    spec = sfft.rfft2(image, workers=1)
    spec *= _shift_phase((ny, nx), -0.5 * (f - 1))
    out = np.zeros((my, mx // 2 + 1), np.complex64)
    hy, hx = my // 2, mx // 2
    out[:hy, :hx] = spec[:hy, :hx]
    out[-hy + 1 :, :hx] = spec[-hy + 1 :, :hx]
    return (sfft.irfft2(out, s=(my, mx), workers=1) / (f * f)).astype(np.float32)
