"""Detector of the independent model: MTF, DQE and shot noise of an
electron-counting camera.

The pixel's own integration (the ``sinc`` part of the MTF) comes from
binning the finely rendered intensity; the detector adds the rest:

* signal: multiplied by ``mtf_extra(f)``;
* noise: Poisson counts of the expected image, their deviation shaped by
  ``N(f) = mtf_total(f) / sqrt(DQE(f))`` (noise transfer), so that
  ``DQE = mtf_total**2 / NPS`` as for a real camera.

``"ideal"``: a perfect counting detector (``mtf_extra = 1``, ``DQE =
sinc**2``, white Poisson noise). ``"k3"``: a K3-like counting camera at 300
kV, ``mtf_total(Nyquist) ~ 0.54``, ``DQE(0) = 0.85``, ``DQE(Nyquist) =
0.45`` (smooth analytic shapes, not a measured curve).
"""

import logging
from typing import Tuple

import numpy as np
from scipy import fft as sfft

from ...errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["DETECTOR_MODELS", "detector_transfer", "detect"]

DETECTOR_MODELS = ("ideal", "k3")


def detector_transfer(f: np.ndarray, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Signal and noise filters of a detector.

    Parameters
    ----------
    f : numpy.ndarray
        Spatial frequency, cycles/pixel (0-0.5 per axis; radial here).
    name : str
        ``"ideal"`` or ``"k3"``.

    Returns
    -------
    mtf_extra : numpy.ndarray
        MTF beyond the pixel aperture (applied to the expected image).
    noise_filter : numpy.ndarray
        Noise transfer ``mtf_total / sqrt(DQE)`` applied to the Poisson
        deviation.
    """
    f = np.asarray(f, float)
    if name == "ideal":
        return np.ones_like(f), np.ones_like(f)
    if name != "k3":
        raise InputError(f"detector must be one of {DETECTOR_MODELS}, got {name!r}")
    extra = np.exp(-0.5 * (f / 0.877) ** 2)
    fc = np.clip(f, 0, 0.5)
    dqe = 0.85 * (1 - (1 - 0.45 / 0.85) * (2 * fc) ** 2)
    total = np.sinc(np.clip(f, 0, 0.5)) * extra
    return extra, total / np.sqrt(dqe)


def detect(
    intensity: np.ndarray,
    dose_per_pixel: float,
    name: str,
    rng: np.random.Generator,
    noise: bool = True,
) -> np.ndarray:
    """Record an image.

    Parameters
    ----------
    intensity : numpy.ndarray, shape (ny, nx)
        Expected intensity relative to the incident beam (pixel-integrated).
    dose_per_pixel : float
        Incident electrons per detector pixel for this image.
    name : str
        Detector model.
    rng : numpy.random.Generator
        Source of the Poisson counts.
    noise : bool
        Draw counts (``False``: the expected image through the MTF).

    Returns
    -------
    numpy.ndarray, float32, shape (ny, nx)
        Recorded image in units of the incident dose (1 = unattenuated
        beam).
    """
    if not dose_per_pixel > 0:
        raise InputError(f"dose per pixel must be > 0, got {dose_per_pixel}")
    ny, nx = intensity.shape
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.rfftfreq(nx)[None, :]
    extra, nfilt = detector_transfer(np.sqrt(fx * fx + fy * fy), name)
    expected = np.clip(intensity, 0, None).astype(np.float64) * dose_per_pixel
    spec = sfft.rfft2(expected, workers=1) * extra
    if noise:
        counts = rng.poisson(expected)
        spec += sfft.rfft2(counts - expected, workers=1) * nfilt
    out = sfft.irfft2(spec, s=(ny, nx), workers=1) / dose_per_pixel
    return out.astype(np.float32)
