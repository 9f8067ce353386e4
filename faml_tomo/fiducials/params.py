"""Parameters and result of the peak-high-contrast fiducial finder.

Parameters follow the Scipion form of the reference program (de Isidro-Gómez
et al. 2024, supplementary Table 1) with sizes in physical units where users
think in them (bead diameter in nm); everything else is converted to voxels
with the tomogram's sampling rate.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["PeakHighContrastParams", "PeakHighContrastResult", "MIN_BEAD_PX"]

# Below 3 voxels a bead cannot be told from noise by shape (circularity,
# radial profile): refuse rather than return noise.
MIN_BEAD_PX = 3.0
Z_BORDER_RULES = ("bead", "box")


@dataclass
class PeakHighContrastParams:
    """Settings of :func:`~faml_tomo.fiducials.peak_high_contrast`.

    Attributes
    ----------
    bead_diameter_nm : float
        Diameter of the gold beads in nm (default 10).
    box_size : int
        Box edge in voxels of the tomogram around each fiducial; used for the
        mirror-correlation score, the radial profiles and the border rule (a
        coordinate whose box crosses the tomogram border is dropped).
    z_border : {"bead", "box"}
        Border rule along Z.  ``"bead"`` (default): a coordinate is kept when
        the cube of two bead diameters around it (where it is scored) lies
        inside the tomogram, because gold beads sit on the ice surfaces, i.e.
        near the top and bottom of tightly reconstructed tomograms (measured:
        in simulated 50-60 voxel thick tomograms the whole-box rule dropped
        most beads).  ``"box"``: the paper's rule, the whole box inside in Z
        too.  Along X and Y the whole box must always lie inside.
    relaxed_mode : bool
        If fewer than ``relaxed_mode_threshold`` coordinates pass the quality
        filters (mirror correlation, Mahalanobis), return the coordinates as
        they were before those filters instead of (almost) nothing.
    relaxed_mode_threshold : int
        See ``relaxed_mode``.
    sampling_slices : int
        Number of central XY slices whose filtered values give the mean and
        standard deviation of the dark-outlier threshold.
    sd_threshold : float
        A filtered voxel is a dark outlier when it lies more than this many
        standard deviations below the mean.
    min_coordinates : int
        Minimum number of outlier voxels attracted to a 3D coordinate (summed
        over the slices of its chain of 2D objects).  For beads smaller than
        this in voxels, the threshold is lowered to half the bead volume so
        that small beads at coarse sampling stay detectable.
    mirror_correlation_threshold : float
        Minimum normalised correlation between the box around a coordinate
        and its point mirror.
    mahalanobis_threshold : float
        Maximum Mahalanobis distance, in standard deviations, between a
        coordinate's radial profile and the population of profiles.
    min_contrast : float
        Gold is far darker than any biological material: a candidate's
        darkest filtered voxel must lie this many robust standard deviations
        (1.4826 MAD of the filtered central slices, which the beads hardly
        affect) below their median.  This rejects dense protein, also when
        a tomogram holds no beads (relaxed mode included).  Not in the
        reference program; 0 disables it.
    z_average_slices : int
        Width of the moving average along Z (paper: 5).
    merge_distance : float
        Coordinates closer than this many bead diameters are one object and
        are replaced by their average (paper: 1.5).
    min_circularity : float
        Minimum ratio between the area of a 2D object and the area of the
        circle centred on it that contains it (paper: 0.75).
    min_area_fraction : float
        Minimum area of a 2D object as a fraction of the bead's cross-section.
    max_candidates : int
        At most this many 3D candidates (the darkest) go to refinement.
    smeared_scales : tuple of float
        When fewer than ``relaxed_mode_threshold`` fiducials are found, the
        search is repeated for beads this many times larger (in turn, while
        the bead fits the box): in a misaligned tilt series the beads are
        smeared into arcs and doubled spots whose darkness is spread over a
        larger area.  Empty: no second search.
    smeared_search : bool
        When still fewer than ``relaxed_mode_threshold`` are found, search
        for beads smeared into lobes, arcs and clouds, then into streaks
        along the tilt axis
        (:func:`~faml_tomo.fiducials.smeared.find_smeared_beads`): strong
        misalignment leaves no round dark object at any scale.
    """

    bead_diameter_nm: float = 10.0
    box_size: int = 32
    z_border: str = "bead"
    relaxed_mode: bool = True
    relaxed_mode_threshold: int = 3
    sampling_slices: int = 10
    sd_threshold: float = 3.0
    min_coordinates: int = 50
    mirror_correlation_threshold: float = 0.1
    mahalanobis_threshold: float = 2.0
    min_contrast: float = 10.0
    z_average_slices: int = 5
    merge_distance: float = 1.5
    min_circularity: float = 0.75
    min_area_fraction: float = 0.1
    max_candidates: int = 5000
    smeared_scales: tuple = (1.5, 2.0)
    smeared_search: bool = True

    def bead_diameter_px(self, sampling_rate: float) -> float:
        """Bead diameter in voxels for a sampling rate in Å/voxel."""
        return self.bead_diameter_nm * 10.0 / float(sampling_rate)

    def problems(
        self, shape: Sequence[int] | None = None, sampling_rate: float | None = None
    ) -> list[str]:
        """Reasons why these parameters cannot work, as sentences.

        Parameters
        ----------
        shape : tuple of int, optional
            Tomogram shape ``(nz, ny, nx)`` in voxels.
        sampling_rate : float, optional
            Voxel size in Å.

        Returns
        -------
        list of str
            Empty when everything is usable.  Shared by :meth:`check` and the
            Scipion protocol's ``_validate``.
        """
        out = []

        def bad(value, low, name, integer=False):
            try:
                ok = math.isfinite(float(value)) and float(value) >= low
            except (TypeError, ValueError):
                ok = False
            if ok and integer and int(value) != value:
                ok = False
            if not ok:
                out.append(
                    f"{name} must be {'an integer ' if integer else ''}>= {low}, got {value!r}"
                )
            return not ok

        bad(self.bead_diameter_nm, 1e-6, "bead diameter (nm)")
        bad(self.box_size, 4, "box size", integer=True)
        bad(self.relaxed_mode_threshold, 0, "relaxed mode threshold", integer=True)
        bad(self.sampling_slices, 1, "number of sampling slices", integer=True)
        bad(self.sd_threshold, 0, "SD threshold")
        bad(self.min_coordinates, 1, "minimum number of coordinates", integer=True)
        bad(self.mahalanobis_threshold, 0, "Mahalanobis distance threshold")
        bad(self.min_contrast, 0, "minimum contrast (SD)")
        bad(self.z_average_slices, 1, "Z moving-average width", integer=True)
        bad(self.merge_distance, 0, "merge distance (bead diameters)")
        bad(self.max_candidates, 1, "maximum number of candidates", integer=True)
        try:
            scales = [float(v) for v in self.smeared_scales]
        except (TypeError, ValueError):
            scales = [0.0]
        if not all(math.isfinite(v) and v > 1 for v in scales):
            out.append(f"smeared-bead scales must be numbers > 1, got {self.smeared_scales!r}")
        if self.z_border not in Z_BORDER_RULES:
            out.append(f"Z border rule must be one of {Z_BORDER_RULES}, got {self.z_border!r}")
        for name in ("mirror_correlation_threshold", "min_circularity", "min_area_fraction"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and -1 <= value <= 1):
                out.append(f"{name.replace('_', ' ')} must lie in [-1, 1], got {value!r}")

        if sampling_rate is not None:
            try:
                sr_ok = math.isfinite(float(sampling_rate)) and float(sampling_rate) > 0
            except (TypeError, ValueError):
                sr_ok = False
            if not sr_ok:
                out.append(
                    f"sampling rate must be a positive number of Å/voxel, got {sampling_rate!r}"
                )
                sampling_rate = None
        if sampling_rate is not None and not out:
            d = self.bead_diameter_px(sampling_rate)
            if d < MIN_BEAD_PX:
                out.append(
                    f"bead of {self.bead_diameter_nm:g} nm at {sampling_rate:g} Å/voxel "
                    f"spans {d:.2f} voxels, under the minimum of {MIN_BEAD_PX:g}: "
                    f"check the sampling rate or bin less"
                )
            elif d > self.box_size:
                out.append(
                    f"bead of {self.bead_diameter_nm:g} nm at {sampling_rate:g} Å/voxel "
                    f"spans {d:.1f} voxels, larger than the box of {self.box_size}: "
                    f"increase the box size, bin the tomogram or check the sampling "
                    f"rate"
                )
        if shape is not None and not out:
            shape = tuple(int(s) for s in shape)
            if len(shape) != 3:
                out.append(f"expected a 3D tomogram, got shape {shape}")
            elif self.box_size > min(shape):
                out.append(
                    f"box of {self.box_size} voxels is larger than the tomogram "
                    f"(nz, ny, nx) = {shape}: reduce the box size"
                )
        return out

    def check(
        self, shape: Sequence[int] | None = None, sampling_rate: float | None = None
    ) -> "PeakHighContrastParams":
        """Raise :class:`~faml_tomo.errors.InputError` listing every problem
        found by :meth:`problems`."""
        problems = self.problems(shape, sampling_rate)
        if problems:
            raise InputError("; ".join(problems))
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PeakHighContrastResult:
    """Fiducials found in one tomogram.

    Attributes
    ----------
    coordinates : numpy.ndarray, shape (n, 3)
        Bead centres ``(x, y, z)`` in voxels of the tomogram, from the first
        voxel's centre (array index ``[z, y, x]``), sub-voxel.
    scores : numpy.ndarray, shape (n,)
        Normalised mirror correlation of each bead's box (in [-1, 1]).
    relaxed_mode_used : bool
        True when the quality filters left too few coordinates and the
        unfiltered ones were returned.
    warnings : list of str
        Things the user should know (no beads found, filters skipped...).
    stats : dict
        Counts after each stage and the threshold used (for logs and job
        records).
    """

    coordinates: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    relaxed_mode_used: bool = False
    warnings: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.coordinates)
