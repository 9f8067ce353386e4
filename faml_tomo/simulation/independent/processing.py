"""Pre-processing of a tilt series before reconstruction: contrast
normalisation, misalignment warp, CTF correction (none, phase flip, Wiener)
and dose weighting.

Contrast: each image becomes ``I / mean(I) - 1`` (gold and, in underfocus,
protein negative). CTF correction uses the weak-object CTF ``c(k)`` of
:func:`~.electron_optics.weak_object_ctf` (positive at low frequency in
underfocus): phase flip multiplies by ``sign(c)``, Wiener by
``c / (c**2 + 1 / snr)``; both keep dark things dark. Filters act on images
mirror-padded by a quarter of their size, so that a dark region at one edge
(a carbon film) does not ring against the other edge.
"""

import logging
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from ...errors import InputError
from .electron_optics import Optics, exposure_filter, frequency_grid, weak_object_ctf

logger = logging.getLogger(__name__)

__all__ = [
    "normalise_contrast",
    "apply_misalignment",
    "filter_image",
    "ctf_correct",
    "dose_weight",
    "preprocess_series",
]


def normalise_contrast(image: np.ndarray) -> np.ndarray:
    """``image / mean - 1`` (float32)."""
    m = float(np.mean(image))
    if not m > 0:
        raise InputError(f"image mean must be positive to normalise, got {m}")
    return (np.asarray(image, np.float32) / np.float32(m) - 1).astype(np.float32)


def apply_misalignment(
    image: np.ndarray,
    shift_x_px: float,
    shift_y_px: float,
    rotation_deg: float,
    order: int = 3,
    mode: str = "nearest",
) -> np.ndarray:
    """Warp an image as an alignment error would.

    A feature at ``(u, v)`` moves to ``u' = cx + c (u - cx) - s (v - cy) +
    shift_x``, ``v' = cy + s (u - cx) + c (v - cy) + shift_y`` (``c, s`` the
    cosine and sine of the rotation, ``cx = nx // 2``, ``cy = ny // 2``).

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
    shift_x_px, shift_y_px : float
        Shifts in pixels.
    rotation_deg : float
        Rotation about the image centre, degrees.
    order : int
        Spline order of the interpolation.
    mode : str
        Border mode of :func:`scipy.ndimage.affine_transform`.

    Returns
    -------
    numpy.ndarray, float32, shape (ny, nx)
    """
    if shift_x_px == 0 and shift_y_px == 0 and rotation_deg == 0:
        return np.asarray(image, np.float32).copy()
    ny, nx = image.shape
    cy, cx = ny // 2, nx // 2
    a = np.radians(rotation_deg)
    c, s = np.cos(a), np.sin(a)
    # output (v', u') samples input at R^-1 (p' - centre - shift) + centre
    mat = np.array([[c, -s], [s, c]])  # rows (v, u), columns (v', u')
    centre = np.array([cy, cx], float)
    offset = centre - mat @ (centre + np.array([shift_y_px, shift_x_px]))
    return ndimage.affine_transform(
        np.asarray(image, np.float32), mat, offset=offset, order=order, mode=mode
    ).astype(np.float32)


def _correction_filter(
    k2: np.ndarray,
    az: np.ndarray,
    defocus_um: float,
    optics: Optics,
    method: str,
    wiener_snr: float,
) -> np.ndarray:
    if method == "none":
        return np.ones_like(k2)
    if method not in ("phase-flip", "wiener"):
        raise InputError(f"ctf_correction must be none, phase-flip or wiener, got {method!r}")
    c = weak_object_ctf(k2, az, defocus_um, optics)
    if method == "phase-flip":
        return np.where(c >= 0, 1.0, -1.0).astype(np.float32)
    return (c / (c * c + 1 / wiener_snr)).astype(np.float32)


def filter_image(
    image: np.ndarray,
    pixel_size_A: float,
    make_filter: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Apply a Fourier filter to an image mirror-padded by a quarter of its
    size on each side (no wrap-around of the periodic transform).

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
    pixel_size_A : float
    make_filter : callable
        ``f(k2, azimuth)`` on the padded ``rfft2`` grid (Å⁻², radians),
        returning the filter.

    Returns
    -------
    numpy.ndarray, float32, shape (ny, nx)
    """
    ny, nx = image.shape
    py, px = ny // 4, nx // 4
    padded = np.pad(np.asarray(image, np.float32), ((py, py), (px, px)), mode="reflect")
    k2, az = frequency_grid(padded.shape, pixel_size_A, half=True)
    spec = sfft.rfft2(padded, workers=1) * make_filter(k2, az)
    out = sfft.irfft2(spec, s=padded.shape, workers=1)
    return out[py : py + ny, px : px + nx].astype(np.float32)


def ctf_correct(
    image: np.ndarray,
    defocus_um: float,
    optics: Optics,
    pixel_size_A: float,
    method: str = "phase-flip",
    wiener_snr: float = 1.0,
) -> np.ndarray:
    """Correct the CTF of one image.

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
        Contrast image.
    defocus_um : float
        Its underfocus, µm.
    optics : Optics
    pixel_size_A : float
        Pixel size, Å.
    method : str
        ``"none"``, ``"phase-flip"`` or ``"wiener"``.
    wiener_snr : float
        SNR constant of the Wiener filter.

    Returns
    -------
    numpy.ndarray, float32, shape (ny, nx)
    """
    if method == "none":
        return np.asarray(image, np.float32).copy()
    return filter_image(
        image,
        pixel_size_A,
        lambda k2, az: _correction_filter(k2, az, defocus_um, optics, method, wiener_snr),
    )


def dose_weight(
    image: np.ndarray, exposure_e_per_A2: float, pixel_size_A: float, voltage_kv: float = 300.0
) -> np.ndarray:
    """Multiply an image's spectrum by the exposure filter of its
    accumulated exposure (Grant & Grigorieff 2015)."""
    return filter_image(
        image,
        pixel_size_A,
        lambda k2, az: exposure_filter(np.sqrt(k2), exposure_e_per_A2, voltage_kv),
    )


def preprocess_series(
    stack: np.ndarray,
    defocus_um: "Sequence[float] | np.ndarray",
    exposure_e_per_A2: "Sequence[float] | np.ndarray",
    optics: Optics,
    pixel_size_A: float,
    misalignment_px: Optional[Tuple[np.ndarray, ...]] = None,
    ctf_method: str = "phase-flip",
    wiener_snr: float = 1.0,
    weighting: bool = True,
) -> np.ndarray:
    """Normalise, warp, CTF-correct and dose-weight a tilt series.

    Parameters
    ----------
    stack : numpy.ndarray, shape (n, ny, nx)
        Recorded images (ascending tilt).
    defocus_um, exposure_e_per_A2 : sequence of float, length n
        Per-image underfocus (µm) and accumulated exposure (e/Å²).
    optics : Optics
    pixel_size_A : float
    misalignment_px : tuple of three arrays (n,), optional
        ``(shift_x_px, shift_y_px, rotation_deg)`` per image.
    ctf_method, wiener_snr, weighting :
        See :func:`ctf_correct` and :func:`dose_weight`.

    Returns
    -------
    numpy.ndarray, float32, shape (n, ny, nx)
    """
    out = np.empty(stack.shape, np.float32)
    for i, img in enumerate(stack):
        x = normalise_contrast(img)
        if misalignment_px is not None:
            sx, sy, rot = (float(m[i]) for m in misalignment_px)
            x = apply_misalignment(x, sx, sy, rot)
        if ctf_method == "none" and not weighting:
            out[i] = x
            continue

        def make_filter(k2: np.ndarray, az: np.ndarray, i: int = i) -> np.ndarray:
            f = _correction_filter(k2, az, defocus_um[i], optics, ctf_method, wiener_snr)
            if weighting:
                f = f * exposure_filter(np.sqrt(k2), exposure_e_per_A2[i], optics.voltage_kv)
            return f

        out[i] = filter_image(x, pixel_size_A, make_filter)
    return out
