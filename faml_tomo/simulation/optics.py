"""Electron optics and acquisition filters: CTF, detector MTF, missing wedge,
exposure (radiation damage) filter.

Conventions
-----------
* Spatial frequencies are in cycles per Å unless a name says ``_px``
  (cycles per pixel; Nyquist is 0.5).
* Frequency grids follow :func:`numpy.fft.fftn` (or ``rfftn`` with
  ``rfft=True``) layout, unshifted, for arrays indexed ``[z, y, x]``.
* Defocus is given in µm with the sign used in the FAML paper: negative is
  underfocus (``-6.0`` = 6 µm underfocus).  RELION's ``rlnDefocusU`` is the
  opposite sign in Å (see :attr:`CTFParams.defocus_angstrom`).
* The CTF sign is physical: with underfocus it is negative at low frequency,
  so a positive density (protein) comes out dark, as in raw cryo-ET data.
* Tilt geometry (shared with :mod:`.tiltseries` and :mod:`.reconstruct`):
  the tilt axis is Y and the beam Z.  The image at tilt ``theta`` records the
  line integrals along ``(-sin theta, 0, cos theta)``; its image coordinate
  ``u = x cos theta + z sin theta``, so by the central-slice theorem it
  samples the Fourier plane spanned by ``ky`` and ``(cos theta, 0,
  sin theta)``: a component ``(kx, ky, kz)`` is observed by that image when
  ``atan2(kz, kx)`` (folded into ``(-90, 90]``) equals ``theta``.
"""

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "CTFParams",
    "electron_wavelength",
    "interaction_constant",
    "frequency_grid",
    "radial_frequency",
    "aberration_phase",
    "ctf",
    "detector_mtf",
    "wedge_mask",
    "wedge_fraction",
    "check_tilt_range",
    "exposure_filter",
]

_MC2_EV = 510998.95  # electron rest energy


@dataclass
class CTFParams:
    """Microscope parameters of the contrast transfer function.

    Attributes
    ----------
    voltage : float
        Acceleration voltage in kV (default 300).
    cs : float
        Spherical aberration in mm (default 2.7).
    defocus : float
        Defocus in µm, negative = underfocus (default -6.0, the FAML paper).
    amplitude_contrast : float
        Fraction of amplitude contrast in [0, 1) (default 0.07).
    """

    voltage: float = 300.0
    cs: float = 2.7
    defocus: float = -6.0
    amplitude_contrast: float = 0.07

    def validate(self) -> "CTFParams":
        """Raise :class:`InputError` naming the first bad parameter."""
        if not np.isfinite(self.voltage) or self.voltage <= 0:
            raise InputError(f"voltage must be > 0 kV, got {self.voltage}")
        if not np.isfinite(self.cs) or self.cs < 0:
            raise InputError(f"cs (spherical aberration) must be >= 0 mm, got {self.cs}")
        if not np.isfinite(self.defocus):
            raise InputError(f"defocus must be a finite number of µm, got {self.defocus}")
        if not 0 <= self.amplitude_contrast < 1:
            raise InputError(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast}")
        return self

    @property
    def defocus_angstrom(self) -> float:
        """Defocus in Å in RELION's sign (positive = underfocus)."""
        return -self.defocus * 1e4

    def as_dict(self) -> dict:
        return asdict(self)


def electron_wavelength(voltage_kv: ArrayLike) -> np.ndarray:
    """Relativistic electron wavelength in Å for a voltage in kV."""
    v = np.asarray(voltage_kv, float) * 1e3
    return 12.2642598 / np.sqrt(v * (1 + v / (2 * _MC2_EV)))


def interaction_constant(voltage_kv: ArrayLike) -> np.ndarray:
    """Interaction constant sigma in rad / (V Å): the phase shift of the
    electron wave per volt of potential and Å of path."""
    v = np.asarray(voltage_kv, float) * 1e3
    lam = electron_wavelength(voltage_kv)
    return 2 * np.pi / (lam * v) * (_MC2_EV + v) / (2 * _MC2_EV + v)


def frequency_grid(
    shape: Sequence[int], pixel_size: float = 1.0, rfft: bool = False
) -> list[np.ndarray]:
    """Per-axis spatial frequencies, broadcastable to ``shape``.

    Parameters
    ----------
    shape : tuple of int
        Array shape (any number of axes), e.g. ``(nz, ny, nx)``.
    pixel_size : float
        Pixel size in Å; frequencies are in cycles/Å (cycles/px for 1).
    rfft : bool
        Last axis in :func:`numpy.fft.rfftn` layout (``n // 2 + 1`` values).

    Returns
    -------
    list of numpy.ndarray
        One array per axis, in axis order (``kz, ky, kx`` for 3D), each of
        shape 1 except along its own axis.
    """
    ndim = len(shape)
    out = []
    for ax, n in enumerate(shape):
        if rfft and ax == ndim - 1:
            f = np.fft.rfftfreq(n, d=pixel_size)
        else:
            f = np.fft.fftfreq(n, d=pixel_size)
        view = [1] * ndim
        view[ax] = f.size
        out.append(f.reshape(view))
    return out


def radial_frequency(
    shape: Sequence[int], pixel_size: float = 1.0, rfft: bool = False
) -> np.ndarray:
    """Modulus of the spatial frequency ``|k|`` (cycles/Å) on an FFT grid of
    ``shape`` (see :func:`frequency_grid`)."""
    grids = frequency_grid(shape, pixel_size, rfft)
    k2 = sum(g * g for g in grids)
    return np.sqrt(k2)


def aberration_phase(freq: ArrayLike, params: "CTFParams") -> np.ndarray:
    """Wave aberration ``chi(k) = pi lambda df k^2 - pi/2 Cs lambda^3 k^4``.

    Parameters
    ----------
    freq : array_like
        ``|k|`` in cycles/Å.
    params : CTFParams
        ``df`` is the underfocus (``-params.defocus``) in Å.

    Returns
    -------
    numpy.ndarray
        chi in radians; the coherent transfer of the objective is
        ``exp(1j * chi)`` in this package's sign convention.
    """
    lam = float(electron_wavelength(params.voltage))
    df = params.defocus_angstrom
    cs = params.cs * 1e7
    k2 = np.asarray(freq, float) ** 2
    return np.pi * lam * df * k2 - 0.5 * np.pi * cs * lam**3 * k2 * k2


def ctf(freq: ArrayLike, params: "CTFParams") -> np.ndarray:
    """Phase-contrast transfer function (with amplitude contrast).

    ``CTF(k) = -(sqrt(1 - A^2) sin chi + A cos chi)`` (RELION's form and
    sign): negative at low frequency with underfocus, so protein is dark.

    Parameters
    ----------
    freq : array_like
        ``|k|`` in cycles/Å, any shape.
    params : CTFParams

    Returns
    -------
    numpy.ndarray
        Same shape as ``freq``, values in [-1, 1].
    """
    chi = aberration_phase(freq, params)
    a = params.amplitude_contrast
    return -(np.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi))


def detector_mtf(freq_px: ArrayLike) -> np.ndarray:
    """Detector modulation transfer function ``sinc(pi w / 2)``, ``w`` the
    fraction of Nyquist (``w = 2 |k|`` for ``|k|`` in cycles/px).

    This is the transfer of integrating the signal over square pixels; it is
    0.64 at Nyquist.
    """
    w = 2 * np.abs(np.asarray(freq_px, float))
    return np.sinc(w / 2)  # numpy's sinc(x) is sin(pi x)/(pi x)


def check_tilt_range(tilt_min: float, tilt_max: float, name: str = "tilt range") -> None:
    """Raise :class:`InputError` unless ``-90 <= tilt_min <= tilt_max <= 90``."""
    for v in (tilt_min, tilt_max):
        if not np.isfinite(v):
            raise InputError(f"{name}: tilt angles must be finite, got {v}")
    if tilt_min < -90 or tilt_max > 90:
        raise InputError(
            f"{name}: tilt angles must lie in [-90, 90] degrees, got {tilt_min:g}..{tilt_max:g}"
        )
    if tilt_min > tilt_max:
        raise InputError(f"{name}: tilt_min ({tilt_min:g}) must not exceed tilt_max ({tilt_max:g})")


def wedge_mask(
    shape: Sequence[int],
    tilt_min: float,
    tilt_max: float,
    rfft: bool = False,
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """Missing-wedge mask of a single-axis tilt series about Y.

    Parameters
    ----------
    shape : tuple of int
        Volume shape ``(nz, ny, nx)``.
    tilt_min, tilt_max : float
        Acquired tilt range in degrees, ``-90 <= tilt_min <= tilt_max <= 90``;
        asymmetric ranges (e.g. -50..70) are allowed.
    rfft : bool
        Return the mask in :func:`numpy.fft.rfftn` layout (shape
        ``(nz, ny, nx // 2 + 1)``) instead of :func:`numpy.fft.fftn` layout.
    dtype : numpy dtype
        Output type (float32 by default; ``bool`` works too).

    Returns
    -------
    numpy.ndarray
        1 where the Fourier component ``(kx, ky, kz)`` is observed: the angle
        ``atan2(kz, kx)`` folded into ``(-90, 90]`` degrees lies within
        ``[tilt_min, tilt_max]`` (the components on the ``ky`` axis, common to
        all tilts, are always observed); 0 in the missing wedge.  Unshifted
        (zero frequency at index 0).  A symmetric +-60 degree range keeps
        about 2/3 of the Fourier sphere (a cube's corners hold more of the
        in-range directions, so the fraction over the whole array is ~0.71).

    Examples
    --------
    >>> m = wedge_mask((32, 32, 32), -60, 60)
    >>> in_sphere = radial_frequency(m.shape) <= 0.5
    >>> round(float(m[in_sphere].mean()), 2)
    0.67
    """
    from ..averaging.wedge import wedge_observed  # the one wedge geometry

    check_tilt_range(tilt_min, tilt_max)
    if len(shape) != 3:
        raise InputError(f"wedge_mask: shape must be (nz, ny, nx), got {shape}")
    kz, _, kx = frequency_grid(shape, 1.0, rfft)
    # A zero-width range (one tilt) keeps that plane only.
    inside = wedge_observed(kx, 0.0, kz, (tilt_min, max(tilt_max, tilt_min + 1e-9)))
    out_shape = (shape[0], shape[1], kx.shape[-1])
    return np.broadcast_to(inside, out_shape).astype(dtype)


def wedge_fraction(tilt_min: float, tilt_max: float) -> float:
    """Fraction of Fourier directions kept by a continuous tilt range,
    ``(tilt_max - tilt_min) / 180`` (2/3 for +-60 degrees)."""
    check_tilt_range(tilt_min, tilt_max)
    return (tilt_max - tilt_min) / 180.0


def exposure_filter(freq: ArrayLike, exposure: float, voltage: float = 300.0) -> np.ndarray:
    """Attenuation of the signal by radiation damage after an accumulated
    exposure (Grant & Grigorieff 2015).

    Parameters
    ----------
    freq : array_like
        ``|k|`` in cycles/Å.
    exposure : float
        Accumulated exposure in e/Å² before (or at the middle of) the image.
    voltage : float
        kV; the critical exposure is scaled by 0.8 at 200 kV.

    Returns
    -------
    numpy.ndarray
        ``exp(-N / (2 Ne(k)))`` with ``Ne(k) = 0.245 k^-1.665 + 2.81``.
    """
    k = np.asarray(freq, float)
    with np.errstate(divide="ignore"):
        ne = 0.245 * np.power(k, -1.665, where=k > 0, out=np.full_like(k, np.inf)) + 2.81
    if voltage < 250:
        ne = ne * 0.8
    return np.exp(-exposure / (2 * ne))
