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
image's X shift, Y shift (Å) and in-plane rotation (degrees, about the image
centre, counter-clockwise in (x, y))::

    d_i = p0 + p1 i + p2 |sin((i + p3) / S pi)| + p4 sin((i + p5) / S 2 pi) + N(0, p6)

The image is transformed by it (the reconstruction assumes none).  Presets,
as the misalignment paper defines them (de Isidro-Gómez et al. 2024, §2.1):
``bananas`` a constant X offset of ``m`` Å in every image (the tilt axis is
off the rotation centre: beads become arcs); ``birds`` a Y shift growing
linearly from ``-m`` to ``+m`` Å across the series; ``twisters`` a constant
in-plane rotation of ``m`` degrees (tilt-axis angle error).  An X shift that
grows linearly across the series is, to first order, only a Z displacement
of every bead (its projections are those of a moved bead): use the general
model (``x=(-m, 2m/(S-1), 0, ...)``) for it.
"""
import logging
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
from scipy import fft as sfft
from scipy import special

from ..errors import InputError
from .gold import DIAMETER_LIMITS, halo_spectrum, log_transmission_spectrum, n_orientations
from .optics import (CTFParams, aberration_phase, check_tilt_range, detector_mtf,
                     exposure_filter, frequency_grid, interaction_constant)

logger = logging.getLogger(__name__)

__all__ = ["SlabParams", "AcquisitionParams", "MisalignmentModel", "Slab", "TiltSeries",
           "MISALIGNMENT_KINDS", "misalignment_preset", "make_slab", "tilt_angles",
           "acquisition_order", "simulate_tilt_series", "project_slab"]

MISALIGNMENT_KINDS = ("none", "bananas", "twisters", "birds")
_BLOB_SIGMAS = (15.0, 25.0, 40.0, 60.0)       # Å, protein-like size classes
_CARBON_POTENTIAL = 5.0                        # V above ice (amorphous carbon)
_CARBON_MFP = 2000.0                           # Å, inelastic mean free path
_SUPERSAMPLE = 4
# Images are rendered in single precision: twice as fast, and its rounding
# (1e-7) is far below the shot noise of any dose.
_REAL, _COMPLEX = np.float32, np.complex64


@dataclass
class SlabParams:
    """The specimen and the tomogram frame.

    Attributes
    ----------
    nx, ny, nz : int
        Tomogram size in full-resolution voxels (the images are ny x nx).
    pixel_size : float
        Å per pixel (default 15).
    slab_thickness : float
        Ice thickness in Å (default 1500), at most ``nz * pixel_size``.
    bead_diameter : float
        Gold bead diameter in Å (default 100, i.e. 10 nm).
    n_beads : int
        Number of beads (default 30).
    bead_min_distance : float or None
        Smallest centre-to-centre distance in Å (default 3 diameters).
    bead_layout : {"uniform", "surfaces"}
        Beads anywhere in the slab, or on its two surfaces.
    bead_margin : float or None
        Smallest distance of a bead centre to the image edges in pixels
        (default the larger of 16 px and a bead diameter).
    bead_pair_fraction : float
        Fraction of the beads placed touching another bead (pairs), in
        [0, 1] (default 0).
    carbon_edge : float or None
        Column (x, px) of the straight edge of a carbon film lying on the top
        surface of the slab over ``x > carbon_edge`` (default None: no film).
    carbon_thickness : float
        Å (default 150).
    thickness_gradient : float
        Relative change of the ice thickness across the field of view in x
        (``T (1 + g (x / nx - 0.5))``; it changes the inelastic attenuation;
        default 0).
    protein_fraction : float
        Volume fraction of the slab filled by protein-like blobs, in [0, 0.5].
    n_vesicles : int
        Number of vesicles (spherical membranes).
    vesicle_radius : tuple of float
        Range of vesicle radii in Å (capped by the slab thickness).
    membrane_thickness : float
        Å (default 40).
    protein_potential : float
        Mean inner potential above that of ice in V (default 2).
    gold : {"multislice", "analytic"}
        How a bead changes the electron wave. ``"multislice"`` (default): the
        first-principles exit wave of an atomic gold sphere
        (:mod:`.gold`, abTEM table), band-limited to the image grid; each
        bead gets one of the tabulated lattice orientations at random
        (crystalline beads differ in darkness and Bragg scattering).
        ``"analytic"``: a uniform sphere of potential ``bead_potential``
        with amplitude absorption ``bead_absorption`` (the model used before
        the table; about twice too absorbing and 15 % too little phase for a
        10 nm bead at 300 kV compared with multislice).
    bead_potential : float
        ``"analytic"`` gold: mean inner potential in V (default 25).
    bead_absorption : float
        ``"analytic"`` gold: amplitude absorption per Å of path (default 1/400).
    """
    nx: int = 512
    ny: int = 512
    nz: int = 128
    pixel_size: float = 15.0
    slab_thickness: float = 1500.0
    bead_diameter: float = 100.0
    n_beads: int = 30
    bead_min_distance: Optional[float] = None
    bead_layout: str = "uniform"
    bead_margin: Optional[float] = None
    bead_pair_fraction: float = 0.0
    carbon_edge: Optional[float] = None
    carbon_thickness: float = 150.0
    thickness_gradient: float = 0.0
    protein_fraction: float = 0.15
    n_vesicles: int = 4
    vesicle_radius: tuple = (200.0, 600.0)
    membrane_thickness: float = 40.0
    protein_potential: float = 2.0
    gold: str = "multislice"
    bead_potential: float = 25.0
    bead_absorption: float = 1 / 400

    def validate(self):
        """Raise :class:`InputError` naming the first bad parameter."""
        for name in ("nx", "ny", "nz"):
            v = getattr(self, name)
            if int(v) != v or v < 8:
                raise InputError(f"{name} must be an integer >= 8 voxels, got {v}")
        _positive("pixel_size", self.pixel_size, "Å")
        _positive("slab_thickness", self.slab_thickness, "Å")
        _positive("bead_diameter", self.bead_diameter, "Å")
        if self.slab_thickness > self.nz * self.pixel_size + 1e-6:
            raise InputError(f"slab_thickness ({self.slab_thickness:g} Å) exceeds the "
                             f"tomogram thickness nz * pixel_size = "
                             f"{self.nz * self.pixel_size:g} Å")
        if self.bead_diameter > self.slab_thickness:
            raise InputError(f"bead_diameter ({self.bead_diameter:g} Å) is larger than "
                             f"the slab thickness ({self.slab_thickness:g} Å)")
        if self.bead_diameter / self.pixel_size < 1:
            raise InputError(f"bead_diameter ({self.bead_diameter:g} Å) is smaller than "
                             f"one pixel ({self.pixel_size:g} Å)")
        if int(self.n_beads) != self.n_beads or self.n_beads < 0:
            raise InputError(f"n_beads must be an integer >= 0, got {self.n_beads}")
        if self.bead_min_distance is not None and self.bead_min_distance < 0:
            raise InputError(f"bead_min_distance must be >= 0 Å, got "
                             f"{self.bead_min_distance}")
        if self.bead_layout not in ("uniform", "surfaces"):
            raise InputError(f"bead_layout must be 'uniform' or 'surfaces', got "
                             f"{self.bead_layout!r}")
        if self.bead_margin is not None and self.bead_margin < 0:
            raise InputError(f"bead_margin must be >= 0 px, got {self.bead_margin}")
        if not 0 <= self.bead_pair_fraction <= 1:
            raise InputError(f"bead_pair_fraction must be in [0, 1], got "
                             f"{self.bead_pair_fraction}")
        if self.carbon_edge is not None and not np.isfinite(self.carbon_edge):
            raise InputError(f"carbon_edge must be a column in px, got {self.carbon_edge}")
        _positive("carbon_thickness", self.carbon_thickness, "Å")
        if not np.isfinite(self.thickness_gradient) or abs(self.thickness_gradient) >= 1:
            raise InputError(f"thickness_gradient must be in (-1, 1), got "
                             f"{self.thickness_gradient}")
        if not 0 <= self.protein_fraction <= 0.5:
            raise InputError(f"protein_fraction must be in [0, 0.5], got "
                             f"{self.protein_fraction}")
        if int(self.n_vesicles) != self.n_vesicles or self.n_vesicles < 0:
            raise InputError(f"n_vesicles must be an integer >= 0, got {self.n_vesicles}")
        lo, hi = self.vesicle_radius
        if not 0 < lo <= hi:
            raise InputError(f"vesicle_radius must be (min, max) with 0 < min <= max Å, "
                             f"got {self.vesicle_radius}")
        _positive("membrane_thickness", self.membrane_thickness, "Å")
        if self.gold not in ("multislice", "analytic"):
            raise InputError(f"gold must be 'multislice' or 'analytic', got {self.gold!r}")
        if self.gold == "multislice" and not (
                DIAMETER_LIMITS[0] <= self.bead_diameter <= DIAMETER_LIMITS[1]):
            raise InputError(f"bead_diameter must be {DIAMETER_LIMITS[0]:g}-"
                             f"{DIAMETER_LIMITS[1]:g} Å for multislice gold, got "
                             f"{self.bead_diameter:g}")
        for name in ("protein_potential", "bead_potential", "bead_absorption"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise InputError(f"{name} must be >= 0, got {v}")
        return self

    @property
    def shape(self):
        """Tomogram shape ``(nz, ny, nx)``."""
        return (int(self.nz), int(self.ny), int(self.nx))

    def as_dict(self):
        return asdict(self)


def _positive(name, value, unit):
    if value is None or not np.isfinite(value) or value <= 0:
        raise InputError(f"{name} must be > 0 {unit}, got {value}")


@dataclass
class AcquisitionParams:
    """Tilt scheme, dose and optics of the tilt series.

    Attributes
    ----------
    tilt_min, tilt_max, tilt_step : float
        Degrees (default -60..60 by 3: 41 images).
    dose : float
        Total exposure in e/Å² over the series (default 120); the noise of
        each image is Poisson for its share.
    order : {"dose-symmetric", "sequential", "bidirectional"}
        Acquisition order (for the accumulated exposure): by increasing
        ``|tilt|`` alternating sides, from ``tilt_min`` up, or from 0 up to
        ``tilt_max`` then from 0 down.
    ctf : CTFParams or None
        Optics (default 300 kV, Cs 2.7 mm, 4 µm underfocus, A = 0.07); None
        makes an ideal amplitude image ``exp(-2 (phi + alpha))``.
    mtf : bool
        Detector MTF.
    exposure_filter : bool
        Radiation damage of the protein with the accumulated exposure.
    inelastic_mfp : float or None
        Inelastic mean free path in Å (default 3800, 300 kV); None keeps all
        electrons.
    noise : bool
        Poisson noise (False gives the expected counts).
    b_factor : float
        Envelope ``exp(-B k^2 / 4)`` on the image intensity (Å², default 0):
        partial coherence, drift and vibration blur.
    render_sampling : float
        Largest sampling in Å at which the wave is rendered (default 7.5):
        coarser pixels are rendered ``m = ceil(pixel_size / render_sampling)``
        times finer and binned, so that the intensity the beads scatter at
        frequencies above the pixel's Nyquist (strong at high defocus) is
        counted as a detector does; checked against multislice reference
        images of gold beads (``tests/test_gold.py``).
    binning : {"mean", "fourier"}
        How finely rendered images are binned: averaging (what summing
        detector pixels does; aliases) or Fourier cropping (anti-aliased).
    """
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    tilt_step: float = 3.0
    dose: float = 120.0
    order: str = "dose-symmetric"
    ctf: Optional[CTFParams] = field(default_factory=lambda: CTFParams(defocus=-4.0))
    mtf: bool = True
    exposure_filter: bool = True
    inelastic_mfp: Optional[float] = 3800.0
    noise: bool = True
    b_factor: float = 0.0
    render_sampling: float = 7.5
    binning: str = "mean"

    def validate(self):
        """Raise :class:`InputError` naming the first bad parameter."""
        check_tilt_range(self.tilt_min, self.tilt_max)
        _positive("tilt_step", self.tilt_step, "degrees")
        if self.tilt_max - self.tilt_min < self.tilt_step:
            raise InputError(f"tilt range {self.tilt_min:g}..{self.tilt_max:g} with step "
                             f"{self.tilt_step:g} gives fewer than 2 images")
        _positive("dose", self.dose, "e/Å²")
        if self.order not in ("dose-symmetric", "sequential", "bidirectional"):
            raise InputError(f"order must be 'dose-symmetric', 'sequential' or "
                             f"'bidirectional', got {self.order!r}")
        if self.ctf is not None:
            self.ctf.validate()
        if self.inelastic_mfp is not None:
            _positive("inelastic_mfp", self.inelastic_mfp, "Å")
        _positive("render_sampling", self.render_sampling, "Å")
        if not np.isfinite(self.b_factor) or self.b_factor < 0:
            raise InputError(f"b_factor must be >= 0 Å², got {self.b_factor}")
        if self.binning not in ("mean", "fourier"):
            raise InputError(f"binning must be 'mean' or 'fourier', got {self.binning!r}")
        return self

    def angles(self):
        """Tilt angles in degrees, ascending."""
        return tilt_angles(self.tilt_min, self.tilt_max, self.tilt_step)

    def as_dict(self):
        return asdict(self)


def tilt_angles(tilt_min, tilt_max, tilt_step):
    """Angles ``tilt_min, tilt_min + step, ...`` up to ``tilt_max`` (degrees)."""
    n = int(np.floor((tilt_max - tilt_min) / tilt_step + 1e-6)) + 1
    return np.round(tilt_min + tilt_step * np.arange(n), 6)


def acquisition_order(angles, order="dose-symmetric"):
    """Rank (0 = first exposed) of each tilt in an acquisition scheme."""
    a = np.asarray(angles, float)
    if order == "sequential":
        seq = np.argsort(a, kind="stable")
    elif order == "dose-symmetric":
        seq = np.lexsort((a < 0, np.round(np.abs(a), 6)))
    elif order == "bidirectional":
        start = int(np.argmin(np.abs(a)))
        up = [i for i in np.argsort(a) if a[i] >= a[start]]
        down = [i for i in np.argsort(-a) if a[i] < a[start]]
        seq = np.array(up + down)
    else:
        raise InputError(f"unknown acquisition order {order!r}")
    rank = np.empty(a.size, int)
    rank[seq] = np.arange(a.size)
    return rank


@dataclass
class MisalignmentModel:
    """Per-image alignment error, general model of Scipion's ``misalign
    tilt-series`` (see the module docstring).

    Attributes
    ----------
    x, y : tuple of 7 float
        ``(p0, ..., p6)`` of the X and Y shift errors, in Å (``p3``, ``p5`` in
        images).
    angle : tuple of 7 float
        The same for the in-plane rotation error, in degrees.
    kind : str
        Name for the record (``none``, ``bananas``, ``twisters``, ``birds``,
        ``general``).
    magnitude : float
        Size of a preset (Å or degrees), for the record.
    """
    x: tuple = (0.0,) * 7
    y: tuple = (0.0,) * 7
    angle: tuple = (0.0,) * 7
    kind: str = "general"
    magnitude: float = 0.0

    def validate(self):
        for name in ("x", "y", "angle"):
            p = np.asarray(getattr(self, name), float)
            if p.shape != (7,) or not np.all(np.isfinite(p)):
                raise InputError(f"misalignment {name} needs 7 finite parameters p0..p6, "
                                 f"got {getattr(self, name)}")
            if p[6] < 0:
                raise InputError(f"misalignment {name}: p6 (noise SD) must be >= 0, "
                                 f"got {p[6]}")
        return self

    def evaluate(self, n_images, rng=None):
        """Errors of each image.

        Parameters
        ----------
        n_images : int
            ``S``.
        rng : numpy.random.Generator or int, optional
            For the ``N(0, p6)`` terms.

        Returns
        -------
        dx, dy : numpy.ndarray, shape (S,)
            Shift errors in Å.
        dangle : numpy.ndarray, shape (S,)
            Rotation errors in degrees.
        """
        self.validate()
        rng = np.random.default_rng(rng)
        i = np.arange(n_images, dtype=float)
        s = float(n_images)
        out = []
        for name in ("x", "y", "angle"):
            p = np.asarray(getattr(self, name), float)
            d = (p[0] + p[1] * i + p[2] * np.abs(np.sin((i + p[3]) / s * np.pi))
                 + p[4] * np.sin((i + p[5]) / s * 2 * np.pi))
            if p[6] > 0:
                d = d + rng.normal(0, p[6], n_images)
            out.append(d)
        return tuple(out)

    def as_dict(self):
        return asdict(self)


def misalignment_preset(kind, magnitude, n_images):
    """A :class:`MisalignmentModel` for a named kind.

    Parameters
    ----------
    kind : {"none", "bananas", "twisters", "birds"}
    magnitude : float
        Bananas: the constant X offset in Å; birds: the largest Y shift in Å
        (linear from ``-m`` at the first image to ``+m`` at the last);
        twisters: the in-plane rotation in degrees.
    n_images : int

    Returns
    -------
    MisalignmentModel
    """
    if kind not in MISALIGNMENT_KINDS:
        raise InputError(f"misalignment kind must be one of "
                         f"{', '.join(MISALIGNMENT_KINDS)}, got {kind!r}")
    if not np.isfinite(magnitude):
        raise InputError(f"misalignment magnitude must be finite, got {magnitude}")
    zero = (0.0,) * 7
    if kind == "none" or magnitude == 0:
        return MisalignmentModel(kind=kind, magnitude=float(magnitude))
    if n_images < 2:
        raise InputError("a misalignment preset needs at least 2 images")
    linear = (-magnitude, 2 * magnitude / (n_images - 1), 0, 0, 0, 0, 0)
    if kind == "bananas":
        return MisalignmentModel(x=(magnitude, 0, 0, 0, 0, 0, 0), y=zero, angle=zero,
                                 kind=kind, magnitude=float(magnitude))
    if kind == "birds":
        return MisalignmentModel(x=zero, y=linear, angle=zero, kind=kind,
                                 magnitude=float(magnitude))
    return MisalignmentModel(x=zero, y=zero, angle=(magnitude, 0, 0, 0, 0, 0, 0),
                             kind=kind, magnitude=float(magnitude))


@dataclass
class Slab:
    """Ground truth of a simulated specimen.

    Attributes
    ----------
    params : SlabParams
    beads : numpy.ndarray, shape (n_beads, 3)
        Bead centres ``(x, y, z)`` in full-resolution tomogram voxels.
    blobs : numpy.ndarray, shape (m, 3)
        Protein blob centres (voxels; may lie outside the field of view).
    blob_sigma : numpy.ndarray, shape (m,)
        Blob standard deviations in Å.
    vesicles : numpy.ndarray, shape (k, 3)
        Vesicle centres (voxels).
    vesicle_radius : numpy.ndarray, shape (k,)
        Mid-membrane radii in Å.
    bead_orientation : numpy.ndarray of int, shape (n_beads,), optional
        Lattice orientation of each bead in the multislice table (see
        :func:`.gold.n_orientations`); None or -1: the mean bead.
    """
    params: SlabParams
    beads: np.ndarray
    blobs: np.ndarray
    blob_sigma: np.ndarray
    vesicles: np.ndarray
    vesicle_radius: np.ndarray
    bead_orientation: Optional[np.ndarray] = None

    @property
    def bead_radius_px(self):
        return 0.5 * self.params.bead_diameter / self.params.pixel_size


def _place_beads(p, rng):
    n = int(p.n_beads)
    px = p.pixel_size
    r_px = 0.5 * p.bead_diameter / px
    dmin = (3 * p.bead_diameter if p.bead_min_distance is None else p.bead_min_distance) / px
    margin = max(16.0, 2 * r_px) if p.bead_margin is None else p.bead_margin
    zc, half = p.nz // 2, 0.5 * p.slab_thickness / px
    zlo, zhi = zc - half + r_px, zc + half - r_px
    if p.nx - 1 - 2 * margin < 0 or p.ny - 1 - 2 * margin < 0:
        raise InputError(f"bead_margin ({margin:g} px) leaves no room in a {p.nx} x {p.ny} "
                         f"field of view")
    beads = np.empty((0, 3))
    for _ in range(50):
        before = len(beads)
        if before >= n:
            break
        m = 20 * n + 100
        cand = np.column_stack([rng.uniform(margin, p.nx - 1 - margin, m),
                                rng.uniform(margin, p.ny - 1 - margin, m),
                                rng.uniform(zlo, zhi, m)])
        if p.bead_layout == "surfaces":
            cand[:, 2] = np.where(rng.random(m) < 0.5, zlo, zhi)
        for c in cand:
            if len(beads) and np.min(np.sum((beads - c) ** 2, axis=1)) < dmin ** 2:
                continue
            beads = np.vstack([beads, c])
            if len(beads) >= n:
                break
        if len(beads) == before:         # a whole batch rejected: the slab is full
            break
    if len(beads) < n:
        raise InputError(f"cannot place {n} beads at least {dmin * px:g} Å apart in the "
                         f"field of view (placed {len(beads)}); lower n_beads or "
                         f"bead_min_distance")
    n_pairs = int(round(p.bead_pair_fraction * n / 2))
    for i in range(n_pairs):
        # the last beads become partners touching the first ones
        j = n - 1 - i
        if j <= i:
            break
        direction = rng.normal(size=3)
        direction[2] *= 0.5
        direction /= np.linalg.norm(direction)
        partner = beads[i] + 2 * r_px * rng.uniform(1.0, 1.1) * direction
        partner[2] = np.clip(partner[2], zlo, zhi)
        partner[:2] = np.clip(partner[:2], margin, [p.nx - 1 - margin, p.ny - 1 - margin])
        beads[j] = partner
    return beads


def make_slab(params, rng=None, max_tilt=60.0):
    """Draw a random specimen.

    Parameters
    ----------
    params : SlabParams
    rng : numpy.random.Generator or int, optional
    max_tilt : float
        Largest |tilt| in degrees: the background extends sideways far
        enough to fill the field of view at that tilt.

    Returns
    -------
    Slab
    """
    p = params.validate()
    rng = np.random.default_rng(rng)
    beads = _place_beads(p, rng)
    px = p.pixel_size
    half = 0.5 * p.slab_thickness / px
    zc = p.nz // 2
    side = half * np.tan(np.radians(min(abs(max_tilt), 80))) + 8
    x0, x1 = -side, p.nx - 1 + side
    y0, y1 = -8, p.ny - 1 + 8
    volume = (x1 - x0) * (y1 - y0) * 2 * half * px ** 3          # Å^3
    pos, sig = [], []
    for s in _BLOB_SIGMAS:
        # Equal share of the protein mass per size class.
        m = int(round(p.protein_fraction * volume / len(_BLOB_SIGMAS)
                      / ((2 * np.pi) ** 1.5 * s ** 3)))
        lim = max(half - s / px, 0)
        pos.append(np.column_stack([rng.uniform(x0, x1, m), rng.uniform(y0, y1, m),
                                    zc + rng.uniform(-lim, lim, m)]))
        sig.append(np.full(m, s))
    blobs = np.vstack(pos) if pos else np.empty((0, 3))
    blob_sigma = np.concatenate(sig) if sig else np.empty(0)
    k = int(p.n_vesicles)
    rmax_fit = 0.5 * p.slab_thickness - p.membrane_thickness
    lo, hi = min(p.vesicle_radius[0], rmax_fit), min(p.vesicle_radius[1], rmax_fit)
    if k and hi <= p.membrane_thickness:
        logger.warning("slab too thin for vesicles; none simulated")
        k = 0
    radius = rng.uniform(lo, hi, k)
    zlim = np.maximum(half - (radius + p.membrane_thickness) / px, 0)
    vesicles = np.column_stack([rng.uniform(0, p.nx - 1, k), rng.uniform(0, p.ny - 1, k),
                                zc + rng.uniform(-1, 1, k) * zlim])
    orient = (rng.integers(0, n_orientations(), len(beads)) if p.gold == "multislice"
              else None)
    return Slab(p, beads, blobs, blob_sigma, vesicles.reshape(-1, 3), radius, orient)


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
    def pixel_size(self):
        return self.slab.params.pixel_size

    @property
    def dose_per_image(self):
        return self.acquisition.dose / len(self.angles)

    @property
    def beads(self):
        """True bead centres ``(x, y, z)`` in full-resolution tomogram voxels."""
        return self.slab.beads


def _ball_ft(k, r):
    """3D Fourier transform of a unit-density ball of radius r (Å) at |k|."""
    x = 2 * np.pi * k * r
    small = x < 1e-3
    xs = np.where(small, 1.0, x)
    val = (np.sin(xs) - xs * np.cos(xs)) / xs ** 3
    return 4 * np.pi * r ** 3 * np.where(small, 1 / 3 - x * x / 30, val)


def _splat(shape, u, v, weight):
    """Bilinear splat of points (u = column, v = row) into an image."""
    ny, nx = shape
    j0 = np.floor(u).astype(np.intp)
    i0 = np.floor(v).astype(np.intp)
    fu, fv = u - j0, v - i0
    # the four corners in one bincount (one pass over the image)
    i = np.concatenate([i0, i0, i0 + 1, i0 + 1])
    j = np.concatenate([j0, j0 + 1, j0, j0 + 1])
    w = np.concatenate([(1 - fv) * (1 - fu), (1 - fv) * fu, fv * (1 - fu), fv * fu])
    w = w * np.tile(np.broadcast_to(weight, u.shape), 4)
    ok = (i >= 0) & (i < ny) & (j >= 0) & (j < nx)
    return np.bincount(i[ok] * nx + j[ok], weights=w[ok], minlength=ny * nx).reshape(ny, nx)


def _bead_thickness(shape, u, v, radius_px, pixel_size):
    """Projected gold thickness (Å) of spheres centred at (u, v), averaged
    over 4 x 4 sub-pixels (pixel integration)."""
    ny, nx = shape
    img = np.zeros(ny * nx)
    if len(u) == 0:
        return img.reshape(ny, nx)
    h = int(np.ceil(radius_px)) + 1
    off = np.arange(-h, h + 1)
    sub = (np.arange(_SUPERSAMPLE) + 0.5) / _SUPERSAMPLE - 0.5
    iu, iv = np.round(u).astype(np.intp), np.round(v).astype(np.intp)
    # (n, patch_y, patch_x, sub_y, sub_x) distances in pixels
    dx = (iu - u)[:, None, None, None, None] + off[None, None, :, None, None] \
        + sub[None, None, None, None, :]
    dy = (iv - v)[:, None, None, None, None] + off[None, :, None, None, None] \
        + sub[None, None, None, :, None]
    rho2 = dx * dx + dy * dy
    t = 2 * pixel_size * np.sqrt(np.maximum(radius_px ** 2 - rho2, 0))
    t = t.mean(axis=(3, 4))
    rows = iv[:, None, None] + off[None, :, None]
    cols = iu[:, None, None] + off[None, None, :]
    rows, cols = np.broadcast_to(rows, t.shape), np.broadcast_to(cols, t.shape)
    ok = (rows >= 0) & (rows < ny) & (cols >= 0) & (cols < nx)
    img += np.bincount((rows * nx + cols)[ok], weights=t[ok], minlength=ny * nx)
    return img.reshape(ny, nx)


def _project_points(xyz, theta, cx, cz):
    c, s = np.cos(np.radians(theta)), np.sin(np.radians(theta))
    return (xyz[:, 0] - cx) * c + (xyz[:, 2] - cz) * s + cx, xyz[:, 1]


def _misalign(u, v, dx, dy, alpha, cx, cy):
    c, s = np.cos(np.radians(alpha)), np.sin(np.radians(alpha))
    du, dv = u - cx, v - cy
    return cx + c * du - s * dv + dx, cy + s * du + c * dv + dy


class _Projector:
    """Per-specimen constants for rendering tilt images."""

    def __init__(self, slab, acq):
        p = slab.params
        self.slab, self.acq, self.p = slab, acq, p
        # render m times finer than the tomogram pixel (binned at the end)
        self.m = max(1, int(np.ceil(p.pixel_size / acq.render_sampling - 1e-9)))
        m = self.m
        self.pad = 32 * m
        self.canvas = (sfft.next_fast_len(p.ny * m + 2 * self.pad),
                       sfft.next_fast_len(p.nx * m + 2 * self.pad))
        px = p.pixel_size / m
        ky, kx = frequency_grid(self.canvas, px, rfft=True)
        self.k_r = np.sqrt(ky ** 2 + kx ** 2)                     # rfft2 grid, 1/Å
        kyf, kxf = frequency_grid(self.canvas, px, rfft=False)
        self.k_full = np.sqrt(kyf ** 2 + kxf ** 2)                 # fft2 grid
        # Analytic 2D profiles (projected density, Å per unit density) of each
        # background class, per splatted unit weight.
        self.classes = []
        for s in np.unique(slab.blob_sigma):
            sel = slab.blob_sigma == s
            kern = (2 * np.pi) ** 1.5 * s ** 3 * np.exp(-2 * (np.pi * s * self.k_r) ** 2)
            self.classes.append((slab.blobs[sel], (kern / px ** 2).astype(_REAL)))
        smooth = np.exp(-2 * (np.pi * 5.0 * self.k_r) ** 2)      # 5 Å membrane edge
        t = p.membrane_thickness
        radii = np.round(slab.vesicle_radius / 20) * 20           # 20 Å classes
        for r in np.unique(radii):
            sel = radii == r
            kern = (_ball_ft(self.k_r, r + t / 2) - _ball_ft(self.k_r, max(r - t / 2, 0)))
            self.classes.append((slab.vesicles[sel], (kern * smooth / px ** 2).astype(_REAL)))
        self.mtf = detector_mtf(self.k_r * px) if acq.mtf else None
        if acq.b_factor > 0:
            env = np.exp(-acq.b_factor * self.k_r ** 2 / 4)
            self.mtf = env if self.mtf is None else self.mtf * env
        if self.mtf is not None:
            self.mtf = self.mtf.astype(_REAL)
        voltage = acq.ctf.voltage if acq.ctf is not None else 300.0
        self.gold_spectra = None
        if p.gold == "multislice" and len(slab.beads):
            df, cs = ((acq.ctf.defocus_angstrom, acq.ctf.cs) if acq.ctf is not None
                      else (0.0, 0.0))
            orient = (np.full(len(slab.beads), -1) if slab.bead_orientation is None
                      else np.asarray(slab.bead_orientation, int))
            # one set of spectra per lattice orientation present
            self.gold_spectra = []
            for o in np.unique(orient):
                oo = None if o < 0 else int(o)
                amp, ph = log_transmission_spectrum(self.k_r, p.bead_diameter, voltage, oo)
                halo = halo_spectrum(self.k_r, p.bead_diameter, voltage, df, cs, oo)
                self.gold_spectra.append((orient == o, *(
                    (x / px ** 2).astype(_REAL) for x in (amp, ph, halo))))
            kyr, kxr = frequency_grid(self.canvas, 1.0, rfft=True)     # cycles/px
            self.k_px = (kyr, kxr)
        if acq.ctf is not None:
            self.sigma = float(interaction_constant(acq.ctf.voltage))
            self.transfer = np.exp(1j * aberration_phase(self.k_full, acq.ctf)).astype(_COMPLEX)
            a = acq.ctf.amplitude_contrast
            self.amp_ratio = a / np.sqrt(1 - a * a)
        else:
            self.sigma = float(interaction_constant(300.0))
            self.transfer = None
            self.amp_ratio = 0.0

    def _gold_multislice(self, u, v, workers):
        """Log-amplitude, phase and scattered-light halo (intensity) of the
        beads centred at canvas (u, v): exact sub-pixel centres (a phase ramp
        per bead), each bead's first-principles spectra, band-limited to the
        grid."""
        ky, kx = self.k_px
        total = [np.zeros(self.k_r.shape, _COMPLEX) for _ in range(3)]
        for sel, amp, ph, halo in self.gold_spectra:
            if not np.any(sel):
                continue
            # sum over beads of exp(-2 pi i (ky v + kx u)) as one matrix product
            ey = np.exp(-2j * np.pi * ky * v[sel][None, :]).astype(_COMPLEX)   # (ny, n)
            ex = np.exp(-2j * np.pi * u[sel][:, None] * kx).astype(_COMPLEX)   # (n, nx_r)
            spec = ey @ ex
            for acc, kern in zip(total, (amp, ph, halo)):
                acc += spec * kern
        return tuple(sfft.irfft2(t, s=self.canvas, workers=workers) for t in total)

    def _canvas_points(self, pts, theta, dx_px, dy_px, alpha):
        """Projected, misaligned positions of points (tomogram voxels) in
        canvas pixels: tomogram pixel ``j`` covers canvas pixels
        ``pad + m j .. pad + m j + m - 1``."""
        p, m = self.p, self.m
        cx, cy, cz = p.nx // 2, p.ny // 2, p.nz // 2
        u, v = _project_points(pts, theta, cx, cz)
        u, v = _misalign(u, v, dx_px, dy_px, alpha, cx, cy)
        off = self.pad + (m - 1) / 2
        return u * m + off, v * m + off

    def _carbon(self, theta, dx_px, dy_px, alpha):
        """Projected carbon-film thickness (Å) on the canvas, or None."""
        p, m = self.p, self.m
        if p.carbon_edge is None:
            return None
        cx, cy, cz = p.nx // 2, p.ny // 2, p.nz // 2
        off = self.pad + (m - 1) / 2
        U = (np.arange(self.canvas[1]) - off) / m
        V = (np.arange(self.canvas[0]) - off) / m
        a = np.radians(alpha)
        # undo the misalignment: canvas -> correct image column u
        u = cx + np.cos(a) * (U[None, :] - cx - dx_px) + np.sin(a) * (V[:, None] - cy - dy_px)
        th = np.radians(theta)
        z_top = cz + 0.5 * p.slab_thickness / p.pixel_size
        u_edge = (p.carbon_edge - cx) * np.cos(th) + (z_top - cz) * np.sin(th) + cx
        inside = 0.5 * (1 + special.erf((u - u_edge) * m / np.sqrt(2)))
        return (inside * p.carbon_thickness / np.cos(th)).astype(_REAL)

    def _bin(self, inten):
        p, m, pad = self.p, self.m, self.pad
        fine = inten[pad:pad + p.ny * m, pad:pad + p.nx * m]
        if m == 1:
            return fine
        if self.acq.binning == "mean":
            return fine.reshape(p.ny, m, p.nx, m).mean(axis=(1, 3))
        f = sfft.fftshift(sfft.fft2(fine))
        cy0, cx0 = (p.ny * m) // 2 - p.ny // 2, (p.nx * m) // 2 - p.nx // 2
        crop = sfft.ifftshift(f[cy0:cy0 + p.ny, cx0:cx0 + p.nx])
        return sfft.ifft2(crop).real / (m * m)

    def render(self, theta, dx_px, dy_px, alpha, exposure, workers=None):
        """Noise-free relative intensity of one image, shape (ny, nx)."""
        p = self.p
        spec = np.zeros(self.k_r.shape, _COMPLEX)
        for pts, kern in self.classes:
            if len(pts) == 0:
                continue
            u, v = self._canvas_points(pts, theta, dx_px, dy_px, alpha)
            spec += sfft.rfft2(_splat(self.canvas, u, v, 1.0).astype(_REAL),
                               workers=workers) * kern
        if self.acq.exposure_filter:
            spec *= exposure_filter(self.k_r, exposure,
                                    self.acq.ctf.voltage if self.acq.ctf else 300.0
                                    ).astype(_REAL)
        protein = sfft.irfft2(spec, s=self.canvas, workers=workers)       # Å
        u, v = self._canvas_points(self.slab.beads, theta, dx_px, dy_px, alpha)
        phi_p = self.sigma * p.protein_potential * protein
        halo = None
        if self.gold_spectra is not None:
            log_amp, phase, halo = self._gold_multislice(u, v, workers)
            phi = phi_p + phase
            alpha_amp = self.amp_ratio * phi_p - log_amp
        else:
            gold = _bead_thickness(self.canvas, u, v, self.slab.bead_radius_px * self.m,
                                   p.pixel_size / self.m)
            phi = phi_p + self.sigma * p.bead_potential * gold
            alpha_amp = self.amp_ratio * phi_p + p.bead_absorption * gold
        carbon = self._carbon(theta, dx_px, dy_px, alpha)
        if carbon is not None:
            phi_c = self.sigma * _CARBON_POTENTIAL * carbon
            phi = phi + phi_c
            alpha_amp = alpha_amp + self.amp_ratio * phi_c + carbon / (2 * _CARBON_MFP)
        if self.transfer is not None:
            wave = sfft.fft2(np.exp(1j * phi - alpha_amp), workers=workers)
            wave *= self.transfer
            inten = np.abs(sfft.ifft2(wave, workers=workers)) ** 2
        else:
            inten = np.exp(-2 * (phi + alpha_amp))
        if halo is not None:
            inten += halo
        if self.mtf is not None:
            inten = sfft.irfft2(sfft.rfft2(inten, workers=workers) * self.mtf,
                                s=self.canvas, workers=workers)
        return self._bin(inten)


def project_slab(slab, acq, shift_x=None, shift_y=None, rotation=None, rng=None,
                 workers=None):
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
    proj = _Projector(slab, acq)
    dose_px = dose * p.pixel_size ** 2
    # ice thickness per image column (a gradient across x)
    thickness = p.slab_thickness * (1 + p.thickness_gradient
                                    * (np.arange(p.nx) / p.nx - 0.5))
    images = np.empty((n, p.ny, p.nx), np.float32)
    for i, theta in enumerate(angles):
        inten = proj.render(theta, sx[i] / p.pixel_size, sy[i] / p.pixel_size, rot[i],
                            pre[i] + dose / 2, workers)
        counts = dose_px * inten
        if acq.inelastic_mfp is not None:
            counts *= np.exp(-thickness / (acq.inelastic_mfp * np.cos(np.radians(theta))))
        np.maximum(counts, 0, out=counts)
        images[i] = rng.poisson(counts) if acq.noise else counts
    return images, rank, pre


def simulate_tilt_series(slab_params=None, acquisition=None, misalignment=None, rng=None,
                         slab=None, workers=None):
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
    seeds = rng.integers(0, 2 ** 63, size=3)
    if slab is None:
        slab = make_slab(slab_params or SlabParams(),
                         np.random.default_rng(seeds[0]),
                         max_tilt=max(abs(acq.tilt_min), abs(acq.tilt_max)))
    model = misalignment or MisalignmentModel(kind="none")
    angles = acq.angles()
    dx, dy, da = model.evaluate(angles.size, np.random.default_rng(seeds[1]))
    images, rank, pre = project_slab(slab, acq, dx, dy, da, np.random.default_rng(seeds[2]),
                                     workers)
    logger.info("simulated %d tilts (%g..%g), %d beads, misalignment %s %g",
                angles.size, angles[0], angles[-1], len(slab.beads), model.kind,
                model.magnitude)
    return TiltSeries(images, angles, rank, pre, dx, dy, da, slab, acq, model)
