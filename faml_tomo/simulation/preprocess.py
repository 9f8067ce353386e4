"""Tilt-series preprocessing before reconstruction, as users run it: CTF
correction (none, phase flip, Wiener) and dose weighting of each image.

Both act on contrast images (``I / mean(I) - 1``, see
:func:`faml_tomo.simulation.reconstruct.normalize_tilt_series`), one image at
a time, with the image's own defocus (no defocus gradient across a tilted
image, as in the simulator).
"""

import logging
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as sfft

from ..errors import InputError
from .optics import CTFParams, ctf, exposure_filter, radial_frequency
from .reconstruct import normalize_tilt_series

logger = logging.getLogger(__name__)

__all__ = ["CTF_CORRECTIONS", "correct_ctf", "dose_weight", "preprocess_tilt_series"]

CTF_CORRECTIONS = ("none", "phase-flip", "wiener")


def correct_ctf(
    images: np.ndarray,
    pixel_size: float,
    params: CTFParams,
    mode: str = "phase-flip",
    wiener_snr: float = 0.1,
    workers: Optional[int] = None,
) -> np.ndarray:
    """CTF-correct contrast images.

    Parameters
    ----------
    images : numpy.ndarray, shape (n, ny, nx)
        Contrast images.
    pixel_size : float
        Å per pixel.
    params : CTFParams
        Optics of the series (one defocus for every image).
    mode : {"none", "phase-flip", "wiener"}
        ``phase-flip`` multiplies each Fourier component by the sign of the
        CTF; ``wiener`` by ``CTF / (CTF^2 + 1 / wiener_snr)``, rescaled so
        the transfer of the low frequencies stays about 1.
    wiener_snr : float
        Assumed signal-to-noise ratio of the Wiener filter (> 0).

    Returns
    -------
    numpy.ndarray, shape (n, ny, nx), float32
        Corrected images. The CTF of this package is negative at low
        frequency (dark protein); correction keeps that sign, so a corrected
        tomogram still shows dark gold and protein.
    """
    if mode not in CTF_CORRECTIONS:
        raise InputError(
            f"CTF correction must be one of {', '.join(CTF_CORRECTIONS)}, got {mode!r}"
        )
    images = np.asarray(images, np.float32)
    if mode == "none":
        return images
    if not np.isfinite(wiener_snr) or wiener_snr <= 0:
        raise InputError(f"wiener_snr must be > 0, got {wiener_snr}")
    shape = images.shape[1:]
    c = -ctf(radial_frequency(shape, pixel_size, rfft=True), params)  # + at low k
    if mode == "phase-flip":
        filt = np.where(c >= 0, 1.0, -1.0)
    else:
        filt = c / (c * c + 1.0 / wiener_snr) * (1.0 + 1.0 / wiener_snr)
    spec = sfft.rfft2(images, workers=workers) * filt
    return sfft.irfft2(spec, s=shape, workers=workers).astype(np.float32)


def dose_weight(
    images: np.ndarray,
    pixel_size: float,
    pre_exposure: ArrayLike,
    dose_per_image: float,
    voltage: float = 300.0,
    workers: Optional[int] = None,
) -> np.ndarray:
    """Attenuate each image's frequencies with the exposure it had received
    (Grant & Grigorieff 2015 critical exposure, at the middle of its own
    exposure), as dose-weighting tools do.

    Parameters
    ----------
    images : numpy.ndarray, shape (n, ny, nx)
    pixel_size : float
        Å per pixel.
    pre_exposure : sequence of float, length n
        e/Å² before each image.
    dose_per_image : float
        e/Å² of each image.
    voltage : float
        kV.
    """
    images = np.asarray(images, np.float32)
    pre = np.asarray(pre_exposure, float)
    if pre.shape != (images.shape[0],):
        raise InputError(f"{pre.size} exposures for {images.shape[0]} images")
    shape = images.shape[1:]
    k = radial_frequency(shape, pixel_size, rfft=True)
    out = np.empty_like(images)
    for i, img in enumerate(images):
        f = sfft.rfft2(img, workers=workers)
        f *= exposure_filter(k, pre[i] + dose_per_image / 2, voltage)
        out[i] = sfft.irfft2(f, s=shape, workers=workers)
    return out


def preprocess_tilt_series(
    images: np.ndarray,
    pixel_size: float,
    params: Optional[CTFParams],
    ctf_correction: str = "none",
    pre_exposure: Optional[ArrayLike] = None,
    dose_per_image: Optional[float] = None,
    wiener_snr: float = 0.1,
    workers: Optional[int] = None,
) -> np.ndarray:
    """Counts -> contrast images, CTF-corrected and dose-weighted as asked
    (``pre_exposure`` given: dose weighting on)."""
    out = normalize_tilt_series(images)
    if ctf_correction != "none":
        if params is None:
            raise InputError("CTF correction needs the CTF parameters")
        out = correct_ctf(out, pixel_size, params, ctf_correction, wiener_snr, workers)
    if pre_exposure is not None:
        out = dose_weight(
            out,
            pixel_size,
            pre_exposure,
            float(dose_per_image or 0.0),
            params.voltage if params is not None else 300.0,
            workers,
        )
    return out
