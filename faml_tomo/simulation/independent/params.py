"""Parameters of the independent validation forward model: specimen,
acquisition, detector and processing, with validation.

Units are in the field names (``_A`` Å, ``_um`` µm, ``_deg`` degrees, ``_V``
volts, ``_kv`` kilovolts, ``_mm`` millimetres, ``_mrad`` milliradians,
``_eV`` electronvolts, ``_e_per_A2`` electrons per Å²); fractions and
counts are dimensionless.
"""

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import List, Optional, Tuple

from ...errors import InputError

logger = logging.getLogger(__name__)

__all__ = [
    "IndependentParams",
    "CTF_CORRECTIONS",
    "RECON_FILTERS",
    "TILT_ORDERS",
    "DETECTORS",
    "BINNING_METHODS",
]

CTF_CORRECTIONS = ("none", "phase-flip", "wiener")
RECON_FILTERS = ("ramp", "hann", "shepp-logan", "cosine", "sirt")
TILT_ORDERS = ("dose-symmetric", "bidirectional", "sequential")
DETECTORS = ("ideal", "k3")
BINNING_METHODS = ("mean", "fourier")


@dataclass(frozen=True)
class IndependentParams:
    """Specimen, acquisition and processing of one simulated tilt series.

    The fields come in groups: geometry, specimen, beads, optics, detector
    and acquisition, processing. :meth:`problems` lists what is wrong (each
    message names the field); :meth:`validate` raises
    :class:`~faml_tomo.errors.InputError` with them.

    Attributes
    ----------
    nx, ny : int
        Tomogram width and height in voxels, even (tilt images are
        ``(ny, nx)``).
    nz : int
        Tomogram depth in voxels; 0 chooses the slab's largest thickness plus
        room for beads on its surfaces.
    pixel_size_A : float
        Tomogram voxel (and tilt-image pixel) size after binning, Å.
    thickness_A : float
        Mean ice (slab) thickness, Å.
    ice_gradient : float
        Relative change of the thickness across x: ``t(x) = thickness_A *
        (1 + ice_gradient * (x - nx // 2) / nx)``.

    protein_fraction : float
        Nominal volume fraction of the slab filled by protein-like objects
        (ellipsoids and clusters of small spheres), 0-0.4.
    protein_potential_V : float
        Mean inner potential of protein relative to ice, V.
    amplitude_contrast : float
        Amplitude-contrast fraction of protein and carbon (0.07 typical).
    n_vesicles : int
        Lipid vesicles (bilayer shells, 150-600 Å radius).
    lipid_potential_V : float
        Potential of the lipid head-group layers relative to ice, V.
    carbon_coverage : float
        Fraction of the field (across x) covered by a carbon film with a
        straight edge, 0 for none.
    carbon_thickness_A, carbon_potential_V, carbon_mfp_A : float
        Thickness of the film, its potential relative to ice and its
        inelastic mean free path.
    ice_potential_V, ice_mfp_A : float
        Mean inner potential of vitreous ice (displaced by the beads) and its
        inelastic mean free path (zero-loss energy filter), Å.
    structures_dir : str or None
        Folder of ``.mrc`` density maps pasted in random orientations.
    n_structures : int
        How many maps to paste (needs ``structures_dir``).

    n_beads : int
        Gold beads to place.
    bead_diameter_A, bead_diameter_sd : float
        Mean diameter (50-200 Å) and relative standard deviation.
    bead_surface_fraction : float
        Fraction of the beads on the slab surfaces (the rest inside).
    bead_cluster_fraction : float
        Fraction of the beads placed touching another bead.
    bead_min_distance_A : float
        Smallest centre distance of beads that are not touching; 0 chooses
        two diameters.

    voltage_kv, cs_mm : float
        Acceleration voltage (200 or 300 kV) and spherical aberration.
    defocus_um, defocus_sd_um : float
        Mean underfocus (positive, 1-8 µm typical) and its per-image spread.
    astigmatism_um, astigmatism_angle_deg : float
        Difference of the two principal defoci and the angle of the first.
    cc_mm, energy_spread_eV, illumination_mrad : float
        Chromatic aberration, energy spread (FWHM) and illumination
        semi-angle of the partial-coherence envelopes.
    render_sampling_A : float
        Largest sampling of the grid the exit wave is rendered on (the
        intensity is then binned to the detector pixel); <= 4 Å.

    detector : str
        ``"ideal"`` (counting, pixel MTF only) or ``"k3"`` (K3-like MTF and
        DQE).
    dose_e_per_A2 : float
        Total exposure of the series, split evenly over the images.
    tilt_min_deg, tilt_max_deg, tilt_step_deg : float
        Tilt range and step.
    tilt_order : str
        ``"dose-symmetric"`` (Hagen), ``"bidirectional"`` or ``"sequential"``.
    tilt_group : int
        Images per side before switching, dose-symmetric scheme.
    tilt_start_deg : float
        First image of the dose-symmetric and bidirectional schemes.
    radiation_damage : bool
        Fade the protein with accumulated exposure (Grant & Grigorieff 2015).

    tomogram_binning : int
        Detector pixels per tomogram pixel (the series is rendered at
        ``pixel_size_A / tomogram_binning`` and binned).
    binning_method : str
        ``"mean"`` (block average) or ``"fourier"`` (anti-aliased crop).
    ctf_correction : str
        ``"none"``, ``"phase-flip"`` or ``"wiener"``.
    wiener_snr : float
        SNR constant of the Wiener filter ``c / (c**2 + 1 / snr)``.
    dose_weighting : bool
        Exposure-filter each image by its accumulated exposure.
    recon_filter : str
        ``"ramp"``, ``"hann"``, ``"shepp-logan"``, ``"cosine"`` or ``"sirt"``
        (SIRT-like filter).
    sirt_iterations : int
        Iterations the SIRT-like filter imitates.
    projector_oversampling : float
        Zero-padding factor of the Fourier-slice projector and
        back-projector (1.5-4).
    """

    nx: int = 256
    ny: int = 256
    nz: int = 0
    pixel_size_A: float = 10.0
    thickness_A: float = 1500.0
    ice_gradient: float = 0.1
    protein_fraction: float = 0.12
    protein_potential_V: float = 2.6
    amplitude_contrast: float = 0.07
    n_vesicles: int = 1
    lipid_potential_V: float = 3.0
    carbon_coverage: float = 0.0
    carbon_thickness_A: float = 300.0
    carbon_potential_V: float = 5.0
    carbon_mfp_A: float = 1800.0
    ice_potential_V: float = 4.5
    ice_mfp_A: float = 3500.0
    structures_dir: Optional[str] = None
    n_structures: int = 0
    n_beads: int = 10
    bead_diameter_A: float = 100.0
    bead_diameter_sd: float = 0.0
    bead_surface_fraction: float = 0.5
    bead_cluster_fraction: float = 0.0
    bead_min_distance_A: float = 0.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    defocus_um: float = 3.0
    defocus_sd_um: float = 0.0
    astigmatism_um: float = 0.0
    astigmatism_angle_deg: float = 0.0
    cc_mm: float = 2.7
    energy_spread_eV: float = 0.8
    illumination_mrad: float = 0.01
    render_sampling_A: float = 2.5
    detector: str = "k3"
    dose_e_per_A2: float = 120.0
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    tilt_order: str = "dose-symmetric"
    tilt_group: int = 2
    tilt_start_deg: float = 0.0
    radiation_damage: bool = True
    tomogram_binning: int = 1
    binning_method: str = "fourier"
    ctf_correction: str = "phase-flip"
    wiener_snr: float = 1.0
    dose_weighting: bool = True
    recon_filter: str = "ramp"
    sirt_iterations: int = 15
    projector_oversampling: float = 2.0

    # ------------------------------------------------------------------ derived
    @property
    def thickness_range_A(self) -> Tuple[float, float]:
        """Smallest and largest slab thickness across the field, Å."""
        half = 0.5 * abs(self.ice_gradient)
        return self.thickness_A * (1 - half), self.thickness_A * (1 + half)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """Tomogram shape ``(nz, ny, nx)`` (``nz`` chosen when 0)."""
        nz = self.nz
        if nz <= 0:
            room = self.thickness_range_A[1] + 2.5 * self.bead_diameter_A
            nz = int(math.ceil(room / self.pixel_size_A)) + 4
            nz += nz % 2
        return int(nz), int(self.ny), int(self.nx)

    def to_dict(self) -> dict:
        """The parameters as a plain dict."""
        return asdict(self)

    # --------------------------------------------------------------- validation
    def problems(self) -> List[str]:
        """Every problem with the parameters, one message each naming the
        field; empty when they can be used."""
        out = self._type_problems()
        if out:
            return out
        out += self._geometry_problems()
        out += self._specimen_problems()
        out += self._optics_problems()
        out += self._acquisition_problems()
        return out

    def validate(self) -> "IndependentParams":
        """Raise :class:`~faml_tomo.errors.InputError` listing the problems;
        return ``self`` when there are none."""
        probs = self.problems()
        if probs:
            raise InputError("invalid simulation parameters: " + "; ".join(probs))
        return self

    def _type_problems(self) -> List[str]:
        out = []
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "structures_dir":
                if v is not None and not isinstance(v, str):
                    out.append(f"structures_dir must be a path string or None, got {v!r}")
            elif f.type in ("str", str):
                if not isinstance(v, str):
                    out.append(f"{f.name} must be a string, got {v!r}")
            elif f.type in ("bool", bool):
                if not isinstance(v, bool):
                    out.append(f"{f.name} must be True or False, got {v!r}")
            elif f.type in ("int", int):
                if isinstance(v, bool) or not isinstance(v, int):
                    out.append(f"{f.name} must be an integer, got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                out.append(f"{f.name} must be a finite number, got {v!r}")
        return out

    def _geometry_problems(self) -> List[str]:
        out = []
        for name in ("nx", "ny"):
            v = getattr(self, name)
            if not 16 <= v <= 4096 or v % 2:
                out.append(f"{name} must be even and 16-4096 voxels, got {v}")
        if self.nz < 0 or self.nz > 4096:
            out.append(f"nz must be 0 (automatic) or up to 4096 voxels, got {self.nz}")
        if not 1.0 <= self.pixel_size_A <= 50.0:
            out.append(f"pixel_size_A must be 1-50 Å, got {self.pixel_size_A}")
        if not 100.0 <= self.thickness_A <= 10000.0:
            out.append(f"thickness_A must be 100-10000 Å, got {self.thickness_A}")
        if not -1.0 < self.ice_gradient < 1.0:
            out.append(f"ice_gradient must be in (-1, 1), got {self.ice_gradient}")
        if self.nz > 0 and self.thickness_range_A[1] > self.nz * self.pixel_size_A:
            out.append(
                f"nz = {self.nz} voxels ({self.nz * self.pixel_size_A:g} Å) is "
                f"thinner than the slab (thickness_A up to "
                f"{self.thickness_range_A[1]:g} Å)"
            )
        return out

    def _specimen_problems(self) -> List[str]:
        out = []
        checks = [
            ("protein_fraction", 0.0, 0.4),
            ("protein_potential_V", 0.0, 20.0),
            ("amplitude_contrast", 0.0, 0.5),
            ("lipid_potential_V", 0.0, 20.0),
            ("carbon_coverage", 0.0, 0.9),
            ("carbon_thickness_A", 10.0, 2000.0),
            ("carbon_potential_V", 0.0, 30.0),
            ("carbon_mfp_A", 100.0, 1e5),
            ("ice_potential_V", 0.0, 10.0),
            ("ice_mfp_A", 100.0, 1e5),
            ("bead_diameter_A", 50.0, 200.0),
            ("bead_diameter_sd", 0.0, 0.3),
            ("bead_surface_fraction", 0.0, 1.0),
            ("bead_cluster_fraction", 0.0, 1.0),
            ("bead_min_distance_A", 0.0, 1e5),
        ]
        out += _range_problems(self, checks)
        for name, hi in (("n_vesicles", 50), ("n_structures", 2000), ("n_beads", 500)):
            v = getattr(self, name)
            if not 0 <= v <= hi:
                out.append(f"{name} must be 0-{hi}, got {v}")
        if self.n_structures > 0 and not self.structures_dir:
            out.append("n_structures > 0 needs structures_dir (a folder of .mrc maps)")
        if 0 < self.bead_min_distance_A < self.bead_diameter_A:
            out.append(
                f"bead_min_distance_A ({self.bead_min_distance_A:g} Å) must be 0 "
                f"or at least bead_diameter_A ({self.bead_diameter_A:g} Å)"
            )
        if self.carbon_coverage > 0 and self.carbon_thickness_A >= self.thickness_range_A[0]:
            out.append(
                f"carbon_thickness_A ({self.carbon_thickness_A:g} Å) must be thinner than the slab"
            )
        return out

    def _optics_problems(self) -> List[str]:
        out = []
        if self.voltage_kv not in (200.0, 300.0):
            out.append(f"voltage_kv must be 200 or 300, got {self.voltage_kv}")
        checks = [
            ("cs_mm", 0.0, 10.0),
            ("defocus_um", 0.2, 15.0),
            ("defocus_sd_um", 0.0, 2.0),
            ("astigmatism_um", 0.0, 2.0),
            ("cc_mm", 0.0, 10.0),
            ("energy_spread_eV", 0.0, 5.0),
            ("illumination_mrad", 0.0, 1.0),
            ("render_sampling_A", 0.5, 4.0),
        ]
        out += _range_problems(self, checks)
        if self.defocus_um - 3 * self.defocus_sd_um - 0.5 * self.astigmatism_um <= 0.05:
            out.append(
                "defocus_um must stay underfocus (positive) with defocus_sd_um and astigmatism_um"
            )
        return out

    def _acquisition_problems(self) -> List[str]:
        out = []
        choices = [
            ("detector", DETECTORS),
            ("tilt_order", TILT_ORDERS),
            ("binning_method", BINNING_METHODS),
            ("ctf_correction", CTF_CORRECTIONS),
            ("recon_filter", RECON_FILTERS),
        ]
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                out.append(
                    f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )
        checks = [
            ("dose_e_per_A2", 1.0, 1000.0),
            ("tilt_step_deg", 0.5, 30.0),
            ("wiener_snr", 1e-4, 1e4),
            ("projector_oversampling", 1.5, 4.0),
        ]
        out += _range_problems(self, checks)
        lo, hi = self.tilt_min_deg, self.tilt_max_deg
        if not self.tilt_step_deg > 0:
            pass  # reported by the range check
        elif not -80.0 <= lo < hi <= 80.0:
            out.append(
                f"tilt_min_deg < tilt_max_deg must lie within -80..80 degrees, got {lo}..{hi}"
            )
        elif (hi - lo) / self.tilt_step_deg + 1 < 3:
            out.append("tilt range / tilt_step_deg gives fewer than 3 images")
        elif not lo <= self.tilt_start_deg <= hi:
            out.append(f"tilt_start_deg ({self.tilt_start_deg}) must lie in the tilt range")
        if not 1 <= self.tilt_group <= 20:
            out.append(f"tilt_group must be 1-20, got {self.tilt_group}")
        if not 1 <= self.tomogram_binning <= 8:
            out.append(f"tomogram_binning must be 1-8, got {self.tomogram_binning}")
        if not 1 <= self.sirt_iterations <= 500:
            out.append(f"sirt_iterations must be 1-500, got {self.sirt_iterations}")
        return out


def _range_problems(params, checks) -> List[str]:
    out = []
    for name, lo, hi in checks:
        v = getattr(params, name)
        if not lo <= v <= hi:
            out.append(f"{name} must be {lo:g}-{hi:g}, got {v}")
    return out
