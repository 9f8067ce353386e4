"""Independent validation forward model of cryo-ET tilt series with gold
fiducials (written separately from :mod:`faml_tomo.simulation.tiltseries`
to validate misalignment detectors trained on that simulator).

* :mod:`.params` - the frozen parameter set and its validation.
* :mod:`.slab` - ice slab and carbon film geometry, ray path lengths.
* :mod:`.shapes` - voxelised smooth-edged primitives.
* :mod:`.specimen` - the specimen potential (protein, vesicles, maps, carbon).
* :mod:`.beads` - bead placement and first-principles bead exit waves.
* :mod:`.fourier_slice` - Fourier-slice projector and back-projector.
* :mod:`.electron_optics` - wavelength, CTF, envelopes, critical exposure.
* :mod:`.imaging` - exit wave on a fine grid, lens transfer, pixel integration.
* :mod:`.detector` - MTF, DQE and shot noise.
* :mod:`.sampling` - up-sampling and binning (mean, Fourier crop).
* :mod:`.tilt_scheme` - tilt angles, acquisition order, exposure.
* :mod:`.processing` - contrast, misalignment warp, CTF correction, dose weighting.
* :mod:`.reconstruction` - filtered back-projection (ramp ... SIRT-like).
* :mod:`.simulate` - the driver, :func:`simulate`.

Geometry: tomograms ``(nz, ny, nx)`` indexed ``[z, y, x]``; a voxel
``(x, y, z)`` appears in the image at tilt ``theta`` at column ``u = (x -
cx) cos theta + (z - cz) sin theta + cx``, row ``v = y`` (``c = n // 2``).
"""

from .beads import BeadSet, bead_wave_profile, place_beads, project_beads, stamp_beads
from .detector import detect, detector_transfer
from .electron_optics import (
    Optics,
    critical_exposure,
    electron_wavelength,
    exposure_filter,
    interaction_constant,
    wave_transfer,
    weak_object_ctf,
)
from .fourier_slice import FourierSliceProjector, fourier_backproject
from .imaging import TiltImager
from .params import IndependentParams
from .processing import (
    apply_misalignment,
    ctf_correct,
    dose_weight,
    normalise_contrast,
    preprocess_series,
)
from .reconstruction import FILTERS, reconstruct, reconstruction_filter
from .sampling import bin_fourier, bin_mean, fourier_upsample
from .simulate import SimulationResult, make_optics, make_slab, render_tilt_series, simulate
from .slab import SlabGeometry
from .specimen import build_specimen
from .tilt_scheme import accumulated_exposure, acquisition_order, angular_weights, tilt_angles

__all__ = [
    "IndependentParams",
    "SimulationResult",
    "simulate",
    "render_tilt_series",
    "make_optics",
    "make_slab",
    "SlabGeometry",
    "build_specimen",
    "BeadSet",
    "place_beads",
    "bead_wave_profile",
    "project_beads",
    "stamp_beads",
    "FourierSliceProjector",
    "fourier_backproject",
    "TiltImager",
    "Optics",
    "electron_wavelength",
    "interaction_constant",
    "wave_transfer",
    "weak_object_ctf",
    "critical_exposure",
    "exposure_filter",
    "detect",
    "detector_transfer",
    "fourier_upsample",
    "bin_mean",
    "bin_fourier",
    "tilt_angles",
    "acquisition_order",
    "accumulated_exposure",
    "angular_weights",
    "normalise_contrast",
    "apply_misalignment",
    "ctf_correct",
    "dose_weight",
    "preprocess_series",
    "FILTERS",
    "reconstruct",
    "reconstruction_filter",
]
