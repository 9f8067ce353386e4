"""Simulated cryo-ET data with known ground truth (pure compute, no Scipion).

* :mod:`.phantoms` - procedural phantoms and density maps resampled to a box.
* :mod:`.optics` - CTF, detector MTF, missing-wedge mask, exposure filter.
* :mod:`.subtomograms` - subtomograms with random rigid transforms, CTF,
  wedge and noise at a given SNR (FAML paper §3.1).
* :mod:`.tiltseries` - slabs with gold beads and protein-like background,
  tilt series with dose-dependent noise and misalignment (bananas, twisters,
  birds, general model); its settings in :mod:`.tiltparams`, the specimen in
  :mod:`.slab`, the image formation in :mod:`.projector`, the misalignment in
  :mod:`.misalignment_model`.
* :mod:`.reconstruct` - weighted back-projection, whole or a local box.
* :mod:`.metrics` - bead centroids and distortion, SNR, correlation.
* :mod:`.writers` - MRC, STAR and tilt files.

Every stochastic function takes a :class:`numpy.random.Generator` or a seed;
the same seed gives identical output.
"""

from .metrics import bead_centroids, bead_distortion, bead_spread, extract_box, ncc, pair_snr
from .optics import (
    CTFParams,
    ctf,
    detector_mtf,
    exposure_filter,
    radial_frequency,
    wedge_fraction,
    wedge_mask,
)
from .phantoms import PHANTOMS, get_structure, load_structure, make_phantom
from .reconstruct import binned_coordinates, reconstruct_local, reconstruct_wbp
from .subtomograms import SubtomogramParams, SubtomogramSet, SubtomogramTruth, simulate_subtomograms
from .tiltseries import (
    MISALIGNMENT_KINDS,
    AcquisitionParams,
    MisalignmentModel,
    Slab,
    SlabParams,
    TiltSeries,
    make_slab,
    misalignment_preset,
    simulate_tilt_series,
)
from .writers import write_subtomograms, write_tilt_series

__all__ = [
    "CTFParams",
    "ctf",
    "detector_mtf",
    "exposure_filter",
    "radial_frequency",
    "wedge_mask",
    "wedge_fraction",
    "PHANTOMS",
    "make_phantom",
    "load_structure",
    "get_structure",
    "SubtomogramParams",
    "SubtomogramTruth",
    "SubtomogramSet",
    "simulate_subtomograms",
    "SlabParams",
    "AcquisitionParams",
    "MisalignmentModel",
    "Slab",
    "TiltSeries",
    "MISALIGNMENT_KINDS",
    "misalignment_preset",
    "make_slab",
    "simulate_tilt_series",
    "reconstruct_wbp",
    "reconstruct_local",
    "binned_coordinates",
    "ncc",
    "pair_snr",
    "bead_centroids",
    "bead_distortion",
    "bead_spread",
    "extract_box",
    "write_subtomograms",
    "write_tilt_series",
]
