"""Simulated tilt series of a specimen slab with gold fiducials, with and
without misalignment (misalignment-detection paper, §2.1; methods notes).

The specimen
------------
A slab of vitreous ice (thickness ``slab_thickness``) holding

* gold beads: spheres of diameter ``bead_diameter``, at random positions at
  least ``bead_min_distance`` apart, inside the slab (or on its surfaces);
* protein-like background: isotropic Gaussian blobs of a few sizes (15 to
  60 Å standard deviation) filling a fraction of the slab, and vesicles
  (spherical lipid shells); it extends beyond the field of view so that
  high tilts see material coming in from the sides.

Every object is isotropic, so its projection is analytic and the same from
every direction: a tilt image is a sum of 2D profiles placed at the
projected centres.  This is exact (no interpolation of a rotated volume) and
costs little: the bead thickness is rendered per pixel with 4 x 4
supersampling (area-averaged, to avoid aliasing of the sharp sphere edge);
the background is splatted (bilinear) per size class and convolved with each
class's analytic 2D Fourier profile.

Image formation (per tilt, projection approximation)
----------------------------------------------------
Protein: phase ``phi_p = sigma V_protein P_protein`` and amplitude
``A / sqrt(1 - A^2) phi_p`` (``P`` the projected thickness in Å, ``sigma``
the interaction constant, ``A`` the amplitude contrast). Gold
(``SlabParams.gold``): by default the first-principles exit wave of an
atomic gold sphere (:mod:`.gold`: multislice table, band-limited to 4 Å and
to the image grid; its log multiplies the protein transmission), plus the
light it scatters beyond that band, which the defocus spreads into rings
(:func:`.gold.halo_spectrum`); or the older analytic sphere (phase
``sigma V_gold t``, absorption ``mu t``). The exit wave goes through the
objective ``exp(i chi(k))`` (CTF; underfocus makes protein dark), intensity
``|psi|^2``, detector MTF ``sinc(pi w / 2)`` on the intensity, attenuation
``exp(-T / (lambda_in cos theta))`` by inelastic scattering (zero-loss
imaging of a slab of thickness ``T``), Poisson noise for the dose of each
image. Pixels coarser than ``AcquisitionParams.render_sampling`` (7.5 Å) are
rendered ``m`` times finer and binned (mean or Fourier crop): a gold bead
scatters strongly above the Nyquist frequency of a coarse pixel, and a
detector counts that light (checked against multislice reference images,
``tests/test_gold.py``). Radiation damage attenuates the protein (not the
gold) with the exposure accumulated in the acquisition order (Grant &
Grigorieff 2015). The defocus gradient across tilted images is not
modelled.

Geometry
--------
Ground-truth coordinates are voxel indices ``(x, y, z)`` of the
full-resolution tomogram ``(nz, ny, nx)`` (z along the beam, centre
``n // 2``); see :mod:`.reconstruct` for the projection formula.

Misalignment
------------
Per image ``i`` of ``S`` (in tilt-angle order) an error is added to the
image's X shift, Y shift (Å) and in-plane rotation (degrees): the general
model and the presets (``bananas``, ``birds``, ``twisters``) of
:mod:`.misalignment_model`.  The image is transformed by it (the
reconstruction assumes none).

Modules
-------
Settings in :mod:`.tiltparams`, the specimen in :mod:`.slab`, the image
formation of one tilt in :mod:`.projector`, the misalignment in
:mod:`.misalignment_model`; this module draws and renders a series.
"""

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from .misalignment_model import MISALIGNMENT_KINDS, MisalignmentModel, misalignment_preset
from .projector import SlabProjector
from .slab import Slab, make_slab
from .tiltparams import AcquisitionParams, SlabParams, acquisition_order, tilt_angles

logger = logging.getLogger(__name__)

__all__ = [
    "SlabParams",
    "AcquisitionParams",
    "MisalignmentModel",
    "Slab",
    "TiltSeries",
    "MISALIGNMENT_KINDS",
    "misalignment_preset",
    "make_slab",
    "tilt_angles",
    "acquisition_order",
    "simulate_tilt_series",
    "project_slab",
]


@dataclass
class TiltSeries:
    """A simulated tilt series and its ground truth.

    Attributes
    ----------
    images : numpy.ndarray, shape (n_tilts, ny, nx), float32
        Counts per pixel (electrons), tilt-angle order.
    angles : numpy.ndarray, shape (n_tilts,)
        Nominal tilt angles in degrees (ascending).
    rank : numpy.ndarray, shape (n_tilts,)
        Acquisition order (0 = first).
    pre_exposure : numpy.ndarray, shape (n_tilts,)
        Exposure before each image in e/Å².
    shift_x, shift_y : numpy.ndarray, shape (n_tilts,)
        Misalignment applied to each image, Å.
    rotation : numpy.ndarray, shape (n_tilts,)
        In-plane rotation error applied, degrees.
    slab : Slab
    acquisition : AcquisitionParams
    misalignment : MisalignmentModel
    """

    images: np.ndarray
    angles: np.ndarray
    rank: np.ndarray
    pre_exposure: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    rotation: np.ndarray
    slab: Slab
    acquisition: AcquisitionParams
    misalignment: MisalignmentModel

    @property
    def pixel_size(self) -> float:
        """Å per pixel of the images and of the full-resolution tomogram."""
        return self.slab.params.pixel_size

    @property
    def dose_per_image(self) -> float:
        """Exposure of one image, e/Å²."""
        return self.acquisition.dose / len(self.angles)

    @property
    def beads(self) -> np.ndarray:
        """True bead centres ``(x, y, z)`` in full-resolution tomogram voxels."""
        return self.slab.beads


def project_slab(
    slab: Slab,
    acq: AcquisitionParams,
    shift_x: ArrayLike | None = None,
    shift_y: ArrayLike | None = None,
    rotation: ArrayLike | None = None,
    rng: np.random.Generator | int | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tilt images of a specimen.

    Parameters
    ----------
    slab : Slab
    acq : AcquisitionParams
    shift_x, shift_y : array_like, optional
        Per-image misalignment in Å (tilt-angle order).
    rotation : array_like, optional
        Per-image in-plane rotation error in degrees.
    rng : numpy.random.Generator or int, optional
        For the Poisson noise.
    workers : int, optional

    Returns
    -------
    images : numpy.ndarray, shape (n_tilts, ny, nx), float32
        Counts.
    rank, pre_exposure : numpy.ndarray
        Acquisition order and exposure before each image (e/Å²).
    """
    acq = acq.validate()
    rng = np.random.default_rng(rng)
    angles = acq.angles()
    n = angles.size
    zeros = np.zeros(n)
    sx = zeros if shift_x is None else np.asarray(shift_x, float)
    sy = zeros if shift_y is None else np.asarray(shift_y, float)
    rot = zeros if rotation is None else np.asarray(rotation, float)
    for name, arr in (("shift_x", sx), ("shift_y", sy), ("rotation", rot)):
        if arr.shape != (n,):
            raise InputError(f"{name} needs {n} values (one per image), got {arr.shape}")
    p = slab.params
    rank = acquisition_order(angles, acq.order)
    dose = acq.dose / n
    pre = rank * dose
    proj = SlabProjector(slab, acq)
    dose_px = dose * p.pixel_size**2
    # ice thickness per image column (a gradient across x)
    thickness = p.slab_thickness * (1 + p.thickness_gradient * (np.arange(p.nx) / p.nx - 0.5))
    images = np.empty((n, p.ny, p.nx), np.float32)
    for i, theta in enumerate(angles):
        inten = proj.render(
            theta, sx[i] / p.pixel_size, sy[i] / p.pixel_size, rot[i], pre[i] + dose / 2, workers
        )
        counts = dose_px * inten
        if acq.inelastic_mfp is not None:
            counts *= np.exp(-thickness / (acq.inelastic_mfp * np.cos(np.radians(theta))))
        np.maximum(counts, 0, out=counts)
        images[i] = rng.poisson(counts) if acq.noise else counts
    return images, rank, pre


def simulate_tilt_series(
    slab_params: SlabParams | None = None,
    acquisition: AcquisitionParams | None = None,
    misalignment: MisalignmentModel | None = None,
    rng: np.random.Generator | int | None = None,
    slab: Slab | None = None,
    workers: int | None = None,
) -> TiltSeries:
    """Simulate a tilt series (and its specimen) with optional misalignment.

    The random streams of the specimen, the misalignment noise and the image
    noise are independent children of ``rng``: with one seed, an aligned
    and a misaligned series share specimen and noise, and differ only by the
    misalignment.

    Parameters
    ----------
    slab_params : SlabParams, optional
    acquisition : AcquisitionParams, optional
    misalignment : MisalignmentModel, optional
        None for a perfectly aligned series.
    rng : numpy.random.Generator or int or None
    slab : Slab, optional
        Reuse a specimen (then ``slab_params`` is ignored).
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    TiltSeries
    """
    acq = (acquisition or AcquisitionParams()).validate()
    rng = np.random.default_rng(rng)
    seeds = rng.integers(0, 2**63, size=3)
    if slab is None:
        slab = make_slab(
            slab_params or SlabParams(),
            np.random.default_rng(seeds[0]),
            max_tilt=max(abs(acq.tilt_min), abs(acq.tilt_max)),
        )
    model = misalignment or MisalignmentModel(kind="none")
    angles = acq.angles()
    dx, dy, da = model.evaluate(angles.size, np.random.default_rng(seeds[1]))
    images, rank, pre = project_slab(
        slab, acq, dx, dy, da, np.random.default_rng(seeds[2]), workers
    )
    logger.info(
        "simulated %d tilts (%g..%g), %d beads, misalignment %s %g",
        angles.size,
        angles[0],
        angles[-1],
        len(slab.beads),
        model.kind,
        model.magnitude,
    )
    return TiltSeries(images, angles, rank, pre, dx, dy, da, slab, acq, model)
