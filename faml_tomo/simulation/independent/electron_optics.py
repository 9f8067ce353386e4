"""Electron optics of the independent model: wavelength, interaction
constant, wave aberration and wave transfer with partial-coherence envelopes,
the weak-object CTF used for correction, and the critical exposure of
radiation damage.

Conventions
-----------
Spatial frequencies ``k`` are in cycles/Å. The defocus ``D`` is positive for
underfocus. The wave aberration is

    chi(k) = pi * lambda * D(phi) * k**2 - pi / 2 * Cs * lambda**3 * k**4

and the objective lens multiplies the exit-wave spectrum by ``exp(+i chi)``
(an underfocused image shows the exit wave propagated back by ``D``; the
plane wave is ``exp(+2 pi i z / lambda)`` and a positive potential advances
the phase). For a weak object ``psi = 1 + i phi - a phi`` the image
intensity spectrum is then ``-2 (sin chi + a cos chi) Phi``: protein is dark
in underfocus.
"""

import logging
import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "Optics",
    "electron_wavelength",
    "interaction_constant",
    "frequency_grid",
    "wave_aberration",
    "wave_transfer",
    "weak_object_ctf",
    "critical_exposure",
    "exposure_filter",
]

_H = 6.62607015e-34  # J s
_M0 = 9.1093837015e-31  # kg
_E = 1.602176634e-19  # C
_C = 299792458.0  # m / s
# Grant & Grigorieff (2015) critical exposure at 300 kV, k in 1/Å
_NE_A, _NE_B, _NE_C = 0.24499, -1.6649, 2.8141


@dataclass(frozen=True)
class Optics:
    """Microscope optics common to every image of a series.

    Attributes
    ----------
    voltage_kv : float
        Acceleration voltage, kV.
    cs_mm : float
        Spherical aberration, mm.
    amplitude_contrast : float
        Amplitude-contrast fraction ``A`` of the weak-object CTF.
    astigmatism_um, astigmatism_angle_deg : float
        Difference of the principal defoci (µm) and angle of the first (deg).
    cc_mm, energy_spread_eV, illumination_mrad : float
        Chromatic aberration (mm), energy spread FWHM (eV), illumination
        semi-angle (mrad) of the partial-coherence envelopes.
    aperture_A : float
        Resolution of the objective aperture (the band of the bead exit
        waves), Å.
    """

    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    astigmatism_um: float = 0.0
    astigmatism_angle_deg: float = 0.0
    cc_mm: float = 2.7
    energy_spread_eV: float = 0.8
    illumination_mrad: float = 0.01
    aperture_A: float = 4.0

    @property
    def wavelength_A(self) -> float:
        """Relativistic electron wavelength, Å."""
        return electron_wavelength(self.voltage_kv)


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å for a voltage in kV."""
    v = float(voltage_kv) * 1e3
    p = math.sqrt(2 * _M0 * _E * v * (1 + _E * v / (2 * _M0 * _C**2)))
    return _H / p * 1e10


def interaction_constant(voltage_kv: float) -> float:
    """Interaction constant ``sigma`` in rad / (V Å): the phase shift per
    volt of potential per Å of path (6.5e-4 at 300 kV)."""
    v = float(voltage_kv) * 1e3
    lam = electron_wavelength(voltage_kv) * 1e-10
    m = _M0 * (1 + _E * v / (_M0 * _C**2))
    return 2 * math.pi * m * _E * lam / _H**2 * 1e-10


def frequency_grid(
    shape: Tuple[int, ...], sampling_A: float, half: bool = False
) -> Tuple[np.ndarray, np.ndarray]:
    """Squared spatial frequency and its azimuth on an FFT grid.

    Parameters
    ----------
    shape : tuple of int
        Image shape ``(ny, nx)``.
    sampling_A : float
        Pixel size, Å.
    half : bool
        Grid of ``rfft2`` (last axis ``nx // 2 + 1``) instead of ``fft2``.

    Returns
    -------
    k2 : numpy.ndarray, float32
        ``|k|**2`` in Å⁻², shape of the (r)fft2 output.
    azimuth : numpy.ndarray, float32
        ``atan2(ky, kx)`` in radians, same shape.
    """
    ny, nx = shape
    ky = np.fft.fftfreq(ny, sampling_A).astype(np.float32)[:, None]
    kx = (np.fft.rfftfreq(nx, sampling_A) if half else np.fft.fftfreq(nx, sampling_A)).astype(
        np.float32
    )[None, :]
    return kx * kx + ky * ky, np.arctan2(ky, kx)


def wave_aberration(
    k2: np.ndarray, azimuth: np.ndarray, defocus_um: float, optics: Optics
) -> np.ndarray:
    """Wave aberration ``chi(k)`` in radians (see the module docstring).

    Parameters
    ----------
    k2, azimuth : numpy.ndarray
        From :func:`frequency_grid` (Å⁻², radians).
    defocus_um : float
        Mean underfocus, µm (positive).
    optics : Optics

    Returns
    -------
    numpy.ndarray, float32, shape of ``k2``
    """
    lam = optics.wavelength_A
    d = defocus_um * 1e4
    if optics.astigmatism_um:
        ang = np.radians(optics.astigmatism_angle_deg)
        d = d + 0.5e4 * optics.astigmatism_um * np.cos(2 * (azimuth - ang))
    cs = optics.cs_mm * 1e7
    chi = np.pi * lam * d * k2 - 0.5 * np.pi * cs * lam**3 * k2 * k2
    return chi.astype(np.float32)


def wave_transfer(
    k2: np.ndarray, azimuth: np.ndarray, defocus_um: float, optics: Optics
) -> np.ndarray:
    """Objective-lens transfer of the exit wave, ``exp(i chi)`` times the
    spatial and temporal coherence envelopes, cut at the aperture.

    The envelopes multiply the wave (quasi-coherent approximation): spatial
    ``exp(-(pi alpha)**2 (D k - Cs lambda**2 k**3)**2)`` with the
    illumination semi-angle ``alpha``, temporal
    ``exp(-(pi lambda delta k**2)**2 / 2)`` with the defocus spread
    ``delta = Cc * sigma_E / E``.

    Parameters and shapes as :func:`wave_aberration`; complex64 output.
    """
    lam = optics.wavelength_A
    chi = wave_aberration(k2, azimuth, defocus_um, optics)
    k = np.sqrt(k2)
    d = defocus_um * 1e4
    cs = optics.cs_mm * 1e7
    alpha = optics.illumination_mrad * 1e-3
    spatial = (np.pi * alpha) ** 2 * (d * k - cs * lam**2 * k * k2) ** 2
    sigma_e = optics.energy_spread_eV / 2.3548
    delta = optics.cc_mm * 1e7 * sigma_e / (optics.voltage_kv * 1e3)
    temporal = 0.5 * (np.pi * lam * delta * k2) ** 2
    env = np.exp(-(spatial + temporal)).astype(np.float32)
    env[k2 > (1.0 / optics.aperture_A) ** 2] = 0.0
    return (env * np.exp(1j * chi)).astype(np.complex64)


def weak_object_ctf(
    k2: np.ndarray, azimuth: np.ndarray, defocus_um: float, optics: Optics
) -> np.ndarray:
    """Weak-object contrast transfer ``sqrt(1 - A**2) sin chi + A cos chi``
    (positive at low frequency in underfocus; the image contrast of a
    positive potential is minus this), float32, shape of ``k2``."""
    chi = wave_aberration(k2, azimuth, defocus_um, optics)
    a = optics.amplitude_contrast
    return (math.sqrt(1 - a * a) * np.sin(chi) + a * np.cos(chi)).astype(np.float32)


def critical_exposure(k: np.ndarray, voltage_kv: float = 300.0) -> np.ndarray:
    """Critical exposure ``Ne(k) = a k**b + c`` in e/Å² (Grant & Grigorieff
    2015; ``k`` in cycles/Å, infinite at ``k = 0``). At 200 kV the
    critical exposure is 0.8 times that at 300 kV."""
    k = np.asarray(k, np.float64)
    with np.errstate(divide="ignore"):
        ne = _NE_A * np.where(k > 0, k, np.inf) ** _NE_B + _NE_C
    ne = np.where(k > 0, ne, np.inf)
    return ne * (0.8 if voltage_kv < 250 else 1.0)


def exposure_filter(
    k: np.ndarray, exposure_e_per_A2: float, voltage_kv: float = 300.0
) -> np.ndarray:
    """Amplitude that survives an accumulated exposure,
    ``exp(-N / (2 Ne(k)))`` (float32, shape of ``k``)."""
    return np.exp(-float(exposure_e_per_A2) / (2 * critical_exposure(k, voltage_kv))).astype(
        np.float32
    )
