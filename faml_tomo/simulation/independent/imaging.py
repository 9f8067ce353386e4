"""Image formation of one tilt: exit wave on a fine render grid (specimen
phase and absorption, inelastic attenuation by ice and carbon, gold beads
stamped as a product), objective-lens transfer, intensity, and integration
over the detector pixels.

The render grid has ``m = binning * b`` samples per tomogram pixel, with
``b`` the smallest integer giving a sampling of at most
``render_sampling_A`` at the detector pixel. The specimen's projected
potential (band-limited by the projector at the tomogram pixel) is
interpolated onto it in Fourier space; the beads and the attenuation are
evaluated on it directly. The intensity ``|psi|**2`` is block-averaged by
``b`` to the detector pixel.
"""

import logging
import math
from typing import List, Optional, Tuple

import numpy as np
from scipy import fft as sfft

from .beads import stamp_beads
from .electron_optics import Optics, frequency_grid, interaction_constant, wave_transfer
from .sampling import bin_mean, fine_coordinate, fourier_upsample
from .slab import SlabGeometry

logger = logging.getLogger(__name__)

__all__ = ["TiltImager"]


class TiltImager:
    """Renders the noise-free intensity of tilt images.

    Parameters
    ----------
    image_shape : tuple of int
        Tilt-image shape ``(ny, nx)`` at the tomogram pixel.
    pixel_size_A : float
        Tomogram pixel size, Å.
    optics : Optics
    binning : int
        Detector pixels per tomogram pixel.
    render_sampling_A : float
        Largest render-grid sampling, Å.
    amplitude_contrast : float
        Absorption-to-phase ratio of the specimen is
        ``A / sqrt(1 - A**2)``.

    Attributes
    ----------
    factor : int
        Render samples per detector pixel (``b``).
    sampling_A : float
        Render-grid sampling, Å.
    """

    def __init__(
        self,
        image_shape: Tuple[int, ...],
        pixel_size_A: float,
        optics: Optics,
        binning: int = 1,
        render_sampling_A: float = 2.5,
        amplitude_contrast: float = 0.07,
    ) -> None:
        self.shape = tuple(int(n) for n in image_shape)
        self.pixel_size_A = float(pixel_size_A)
        self.optics = optics
        self.binning = int(binning)
        det_px = self.pixel_size_A / self.binning
        self.factor = max(1, int(math.ceil(det_px / render_sampling_A - 1e-9)))
        self.m = self.binning * self.factor
        self.sampling_A = self.pixel_size_A / self.m
        self.fine_shape = (self.shape[0] * self.m, self.shape[1] * self.m)
        self.sigma = interaction_constant(optics.voltage_kv)
        a = amplitude_contrast
        self.absorption_ratio = a / math.sqrt(1 - a * a)
        self._k2, self._az = frequency_grid(self.fine_shape, self.sampling_A)
        self._transfer_cache: dict = {}

    @property
    def band_limit(self) -> float:
        """Band of the rendered wave, cycles/Å: the render grid's Nyquist
        frequency or the aperture, whichever is lower."""
        return min(0.5 / self.sampling_A, 1.0 / self.optics.aperture_A)

    def transfer(self, defocus_um: float) -> np.ndarray:
        """Wave transfer on the render grid (cached per defocus)."""
        key = round(float(defocus_um), 6)
        if key not in self._transfer_cache:
            if len(self._transfer_cache) > 4:
                self._transfer_cache.clear()
            self._transfer_cache[key] = wave_transfer(self._k2, self._az, defocus_um, self.optics)
        return self._transfer_cache[key]

    def exit_wave(
        self,
        projected_potential: np.ndarray,
        angle_deg: float,
        slab: Optional[SlabGeometry] = None,
        mfp_A: Tuple[float, float] = (3500, 1800),
        bead_uv: Optional[np.ndarray] = None,
        bead_profiles: Optional[List[Tuple[np.ndarray, np.ndarray]]] = None,
    ) -> np.ndarray:
        """Exit wave on the render grid.

        Parameters
        ----------
        projected_potential : numpy.ndarray, shape (ny, nx)
            Projected specimen potential relative to ice, V Å.
        angle_deg : float
            Tilt angle (for the attenuation), degrees.
        slab : SlabGeometry, optional
            Ice slab and carbon film (inelastic attenuation); none: vacuum.
        mfp_A : (float, float)
            Inelastic mean free paths of ice and carbon, Å.
        bead_uv : numpy.ndarray, shape (n, 2), optional
            Bead centres in the image, tomogram pixels ``(u, v)``.
        bead_profiles : list of (r, psi), optional
            Each bead's radial exit wave.

        Returns
        -------
        numpy.ndarray, complex64, shape ``fine_shape``
        """
        phase = fourier_upsample(np.asarray(projected_potential, np.float32) * self.sigma, self.m)
        log_amp = phase * np.float32(-self.absorption_ratio)
        if slab is not None:
            u = (np.arange(self.fine_shape[1]) - 0.5 * (self.m - 1)) / self.m
            if slab.carbon_coverage > 0:
                v = (np.arange(self.fine_shape[0]) - 0.5 * (self.m - 1)) / self.m
                la = slab.log_amplitude(u[None, :], v[:, None], angle_deg, *mfp_A)
            else:
                la = slab.log_amplitude(u, 0.0, angle_deg, *mfp_A)[None, :]
            log_amp += la.astype(np.float32)
        # exp((i - a) phase + la), through real functions (3x faster)
        amp = np.exp(log_amp)
        wave = np.empty(self.fine_shape, np.complex64)
        wave.real = np.cos(phase)
        wave.imag = np.sin(phase)
        wave *= amp
        if bead_uv is not None and len(bead_uv) and bead_profiles is not None:
            stamp_beads(wave, fine_coordinate(bead_uv, self.m), bead_profiles, self.sampling_A)
        return wave

    def intensity(self, wave: np.ndarray, defocus_um: float) -> np.ndarray:
        """Image intensity integrated over the detector pixels.

        Parameters
        ----------
        wave : numpy.ndarray, complex, shape ``fine_shape``
            Exit wave.
        defocus_um : float
            Underfocus, µm.

        Returns
        -------
        numpy.ndarray, float32, shape ``(ny * binning, nx * binning)``
            Intensity relative to the incident beam.
        """
        spec = sfft.fft2(wave, workers=1)
        spec *= self.transfer(defocus_um)
        img = sfft.ifft2(spec, workers=1, overwrite_x=True)
        inten = np.abs(img)
        inten *= inten
        return bin_mean(inten, self.factor).astype(np.float32)
