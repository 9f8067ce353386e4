"""Settings of the tilt-series simulator (:mod:`.tiltseries`): the slab and
the acquisition (tilt scheme, dose, optics); the misalignment model is in
:mod:`.misalignment_model`."""

import logging
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from .gold import DIAMETER_LIMITS
from .optics import CTFParams, check_tilt_range


logger = logging.getLogger(__name__)

__all__ = ["SlabParams", "AcquisitionParams", "tilt_angles", "acquisition_order"]


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

    def validate(self) -> "SlabParams":
        """Raise :class:`InputError` naming the first bad parameter."""
        for name in ("nx", "ny", "nz"):
            v = getattr(self, name)
            if int(v) != v or v < 8:
                raise InputError(f"{name} must be an integer >= 8 voxels, got {v}")
        _positive("pixel_size", self.pixel_size, "Å")
        _positive("slab_thickness", self.slab_thickness, "Å")
        _positive("bead_diameter", self.bead_diameter, "Å")
        if self.slab_thickness > self.nz * self.pixel_size + 1e-6:
            raise InputError(
                f"slab_thickness ({self.slab_thickness:g} Å) exceeds the "
                f"tomogram thickness nz * pixel_size = "
                f"{self.nz * self.pixel_size:g} Å"
            )
        if self.bead_diameter > self.slab_thickness:
            raise InputError(
                f"bead_diameter ({self.bead_diameter:g} Å) is larger than "
                f"the slab thickness ({self.slab_thickness:g} Å)"
            )
        if self.bead_diameter / self.pixel_size < 1:
            raise InputError(
                f"bead_diameter ({self.bead_diameter:g} Å) is smaller than "
                f"one pixel ({self.pixel_size:g} Å)"
            )
        if int(self.n_beads) != self.n_beads or self.n_beads < 0:
            raise InputError(f"n_beads must be an integer >= 0, got {self.n_beads}")
        if self.bead_min_distance is not None and self.bead_min_distance < 0:
            raise InputError(f"bead_min_distance must be >= 0 Å, got {self.bead_min_distance}")
        if self.bead_layout not in ("uniform", "surfaces"):
            raise InputError(
                f"bead_layout must be 'uniform' or 'surfaces', got {self.bead_layout!r}"
            )
        if self.bead_margin is not None and self.bead_margin < 0:
            raise InputError(f"bead_margin must be >= 0 px, got {self.bead_margin}")
        if not 0 <= self.bead_pair_fraction <= 1:
            raise InputError(f"bead_pair_fraction must be in [0, 1], got {self.bead_pair_fraction}")
        if self.carbon_edge is not None and not np.isfinite(self.carbon_edge):
            raise InputError(f"carbon_edge must be a column in px, got {self.carbon_edge}")
        _positive("carbon_thickness", self.carbon_thickness, "Å")
        if not np.isfinite(self.thickness_gradient) or abs(self.thickness_gradient) >= 1:
            raise InputError(
                f"thickness_gradient must be in (-1, 1), got {self.thickness_gradient}"
            )
        if not 0 <= self.protein_fraction <= 0.5:
            raise InputError(f"protein_fraction must be in [0, 0.5], got {self.protein_fraction}")
        if int(self.n_vesicles) != self.n_vesicles or self.n_vesicles < 0:
            raise InputError(f"n_vesicles must be an integer >= 0, got {self.n_vesicles}")
        lo, hi = self.vesicle_radius
        if not 0 < lo <= hi:
            raise InputError(
                f"vesicle_radius must be (min, max) with 0 < min <= max Å, "
                f"got {self.vesicle_radius}"
            )
        _positive("membrane_thickness", self.membrane_thickness, "Å")
        if self.gold not in ("multislice", "analytic"):
            raise InputError(f"gold must be 'multislice' or 'analytic', got {self.gold!r}")
        if self.gold == "multislice" and not (
            DIAMETER_LIMITS[0] <= self.bead_diameter <= DIAMETER_LIMITS[1]
        ):
            raise InputError(
                f"bead_diameter must be {DIAMETER_LIMITS[0]:g}-"
                f"{DIAMETER_LIMITS[1]:g} Å for multislice gold, got "
                f"{self.bead_diameter:g}"
            )
        for name in ("protein_potential", "bead_potential", "bead_absorption"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise InputError(f"{name} must be >= 0, got {v}")
        return self

    @property
    def shape(self) -> tuple[int, int, int]:
        """Tomogram shape ``(nz, ny, nx)``."""
        return (int(self.nz), int(self.ny), int(self.nx))

    def as_dict(self) -> dict:
        """The fields as a plain dict (for the record)."""
        return asdict(self)


def _positive(name: str, value: float | None, unit: str) -> None:
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

    def validate(self) -> "AcquisitionParams":
        """Raise :class:`InputError` naming the first bad parameter."""
        check_tilt_range(self.tilt_min, self.tilt_max)
        _positive("tilt_step", self.tilt_step, "degrees")
        if self.tilt_max - self.tilt_min < self.tilt_step:
            raise InputError(
                f"tilt range {self.tilt_min:g}..{self.tilt_max:g} with step "
                f"{self.tilt_step:g} gives fewer than 2 images"
            )
        _positive("dose", self.dose, "e/Å²")
        if self.order not in ("dose-symmetric", "sequential", "bidirectional"):
            raise InputError(
                f"order must be 'dose-symmetric', 'sequential' or "
                f"'bidirectional', got {self.order!r}"
            )
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

    def angles(self) -> np.ndarray:
        """Tilt angles in degrees, ascending."""
        return tilt_angles(self.tilt_min, self.tilt_max, self.tilt_step)

    def as_dict(self) -> dict:
        """The fields as a plain dict (for the record; the optics as a dict)."""
        return asdict(self)


def tilt_angles(tilt_min: float, tilt_max: float, tilt_step: float) -> np.ndarray:
    """Angles ``tilt_min, tilt_min + step, ...`` up to ``tilt_max`` (degrees)."""
    n = int(np.floor((tilt_max - tilt_min) / tilt_step + 1e-6)) + 1
    return np.round(tilt_min + tilt_step * np.arange(n), 6)


def acquisition_order(angles: ArrayLike, order: str = "dose-symmetric") -> np.ndarray:
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
