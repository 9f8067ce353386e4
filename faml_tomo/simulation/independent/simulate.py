"""Simulation driver of the independent model: one specimen, its tilt
series rendered once (one noise realisation), and one reconstruction per
named misalignment."""

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ...errors import InputError
from .beads import BeadSet, bead_wave_profile, place_beads, project_beads
from .detector import detect
from .electron_optics import Optics, exposure_filter
from .fourier_slice import FourierSliceProjector
from .imaging import TiltImager
from .params import IndependentParams
from .processing import preprocess_series
from .reconstruction import reconstruct
from .sampling import bin_fourier, bin_mean
from .slab import SlabGeometry
from .specimen import build_specimen
from .tilt_scheme import accumulated_exposure, acquisition_order, tilt_angles

logger = logging.getLogger(__name__)

__all__ = [
    "SimulationResult",
    "simulate",
    "render_tilt_series",
    "reconstruct_misaligned",
    "make_optics",
    "make_slab",
]

Misalignment = Tuple[
    Union[float, Sequence[float]], Union[float, Sequence[float]], Union[float, Sequence[float]]
]


@dataclass
class SimulationResult:
    """Output of :func:`simulate`.

    Attributes
    ----------
    tomograms : dict of str to numpy.ndarray
        One float32 ``(nz, ny, nx)`` tomogram per misalignment name (gold
        dark).
    angles : numpy.ndarray, shape (n,)
        Tilt angles, degrees, ascending.
    beads : numpy.ndarray, shape (m, 3)
        True bead centres ``(x, y, z)``, voxels.
    bead_diameters_A : numpy.ndarray, shape (m,)
    bead_diameter_A : float
        Nominal bead diameter, Å.
    pixel_size_A : float
    params : IndependentParams
    misalignments_px : dict of str to (shift_x_px, shift_y_px, rotation_deg)
        Per-image arrays, shape (n,) each, as applied.
    defocus_um, dose_e_per_A2, exposure_e_per_A2 : numpy.ndarray, shape (n,)
        Per-image underfocus, exposure and accumulated exposure (mid-image).
    order : numpy.ndarray of int, shape (n,)
        Acquisition order (indices into ``angles``).
    tilt_series : numpy.ndarray, shape (n, ny, nx)
        Recorded images (relative to the incident beam, before processing).
    volume : numpy.ndarray or None
        The specimen potential (V relative to ice) when kept.
    timings : dict of str to float
        Wall-clock seconds per stage.
    seed : int
    bead_cluster : numpy.ndarray of int, shape (m,)
        Cluster index of each bead (touching beads share one).
    """

    tomograms: Dict[str, np.ndarray]
    angles: np.ndarray
    beads: np.ndarray
    bead_diameters_A: np.ndarray
    bead_diameter_A: float
    pixel_size_A: float
    params: IndependentParams
    misalignments_px: Dict[str, Tuple[np.ndarray, ...]]
    defocus_um: np.ndarray
    dose_e_per_A2: np.ndarray
    exposure_e_per_A2: np.ndarray
    order: np.ndarray
    tilt_series: np.ndarray
    volume: Optional[np.ndarray] = None
    timings: Dict[str, float] = field(default_factory=dict)
    seed: int = 0
    bead_cluster: Optional[np.ndarray] = None


def make_optics(params: IndependentParams) -> Optics:
    """The :class:`~.electron_optics.Optics` of a parameter set."""
    return Optics(
        voltage_kv=params.voltage_kv,
        cs_mm=params.cs_mm,
        amplitude_contrast=params.amplitude_contrast,
        astigmatism_um=params.astigmatism_um,
        astigmatism_angle_deg=params.astigmatism_angle_deg,
        cc_mm=params.cc_mm,
        energy_spread_eV=params.energy_spread_eV,
        illumination_mrad=params.illumination_mrad,
    )


def make_slab(params: IndependentParams, rng: np.random.Generator) -> SlabGeometry:
    """The slab of a parameter set (the carbon edge angle, ±20°, drawn)."""
    angle = float(rng.uniform(-20, 20)) if params.carbon_coverage > 0 else 0.0
    return SlabGeometry(
        params.shape,
        params.pixel_size_A,
        params.thickness_A,
        params.ice_gradient,
        params.carbon_coverage,
        params.carbon_thickness_A,
        angle,
    )


def _misalignment_arrays(
    misalignments: Optional[Mapping[str, Misalignment]], n: int, pixel_size_A: float
) -> Dict[str, Tuple[np.ndarray, ...]]:
    out: Dict[str, Tuple[np.ndarray, ...]] = {}
    if misalignments is None:
        misalignments = {"aligned": (0.0, 0.0, 0.0)}
    if not isinstance(misalignments, Mapping) or not misalignments:
        raise InputError(
            "misalignments must be a non-empty dict of name -> (shift_x_A, shift_y_A, rotation_deg)"
        )
    for name, value in misalignments.items():
        if not isinstance(name, str) or len(value) != 3:
            raise InputError(
                f"misalignment {name!r} must map a name to (shift_x_A, shift_y_A, rotation_deg)"
            )
        arrs = []
        for label, v in zip(("shift_x_A", "shift_y_A", "rotation_deg"), value):
            a = (
                np.broadcast_to(np.asarray(v, float), (n,))
                if np.ndim(v) == 0
                else np.asarray(v, float)
            )
            if a.shape != (n,) or not np.all(np.isfinite(a)):
                raise InputError(
                    f"misalignment {name!r}: {label} must be a finite number "
                    f"or {n} values (one per tilt), got shape {a.shape}"
                )
            arrs.append(a.copy())
        out[name] = (arrs[0] / pixel_size_A, arrs[1] / pixel_size_A, arrs[2])
    return out


def render_tilt_series(
    params: IndependentParams,
    volume: np.ndarray,
    beads: BeadSet,
    slab: SlabGeometry,
    angles: np.ndarray,
    defocus_um: np.ndarray,
    dose: np.ndarray,
    exposure: np.ndarray,
    rng: np.random.Generator,
    noise: bool = True,
) -> np.ndarray:
    """Recorded tilt images of a specimen.

    Parameters
    ----------
    params : IndependentParams
    volume : numpy.ndarray, shape (nz, ny, nx)
        Specimen potential relative to ice, V.
    beads : BeadSet
    slab : SlabGeometry
    angles, defocus_um, dose, exposure : numpy.ndarray, shape (n,)
        Tilt (deg), underfocus (µm), exposure of the image and accumulated
        exposure at its middle (e/Å²), ascending tilt order.
    rng : numpy.random.Generator
        Shot noise.
    noise : bool
        Draw shot noise.

    Returns
    -------
    numpy.ndarray, float32, shape (n, ny, nx)
        Images relative to the incident beam at the tomogram pixel.
    """
    px, b = params.pixel_size_A, params.tomogram_binning
    shape = volume.shape
    projector = FourierSliceProjector(volume, params.projector_oversampling)
    optics = make_optics(params)
    imager = TiltImager(
        shape[1:], px, optics, b, params.render_sampling_A, params.amplitude_contrast
    )
    profiles = [
        bead_wave_profile(
            round(float(d), 1),
            params.voltage_kv,
            imager.band_limit,
            round(float(f), 2),
            params.ice_potential_V,
            params.ice_mfp_A,
        )
        for d, f in zip(beads.diameters_A, beads.ice_fraction)
    ]
    det_px = px / b
    out = np.empty((len(angles),) + shape[1:], np.float32)
    for i, a in enumerate(angles):
        filt = None
        if params.radiation_damage:

            def filt(k: np.ndarray, n: float = exposure[i]) -> np.ndarray:
                return exposure_filter(k / px, n, params.voltage_kv)

        proj = projector.project(a, filt) * np.float32(px)
        wave = imager.exit_wave(
            proj,
            a,
            slab,
            (params.ice_mfp_A, params.carbon_mfp_A),
            project_beads(beads.positions, a, shape),
            profiles,
        )
        inten = imager.intensity(wave, defocus_um[i])
        rec = detect(inten, dose[i] * det_px * det_px, params.detector, rng, noise)
        if b > 1:
            rec = bin_fourier(rec, b) if params.binning_method == "fourier" else bin_mean(rec, b)
        out[i] = rec
    return out


def reconstruct_misaligned(
    params: IndependentParams,
    series: np.ndarray,
    angles: np.ndarray,
    defocus_um: np.ndarray,
    exposure: np.ndarray,
    misalignments_px: Mapping[str, Tuple[np.ndarray, ...]],
) -> Dict[str, np.ndarray]:
    """One tomogram per misalignment of a recorded tilt series.

    Parameters
    ----------
    params : IndependentParams
    series : numpy.ndarray, shape (n, ny, nx)
        Recorded images (:func:`render_tilt_series`), ascending tilt order.
    angles, defocus_um, exposure : numpy.ndarray, shape (n,)
        Tilt (deg), underfocus (µm) and accumulated exposure (e/Å²).
    misalignments_px : dict of str to (shift_x_px, shift_y_px, rotation_deg)
        Per-image errors applied to the images before reconstruction.

    Returns
    -------
    dict of str to numpy.ndarray
        The tomogram of each misalignment, in the order given.
    """
    px = params.pixel_size_A
    optics = make_optics(params)
    tomos = {}
    for name, m in misalignments_px.items():
        stack = preprocess_series(
            series,
            defocus_um,
            exposure,
            optics,
            px,
            m,
            params.ctf_correction,
            params.wiener_snr,
            params.dose_weighting,
        )
        tomos[name] = reconstruct(
            stack,
            angles,
            params.shape[0],
            params.recon_filter,
            params.sirt_iterations,
            params.projector_oversampling,
        )
    return tomos


def simulate(
    params: IndependentParams,
    misalignments: Optional[Mapping[str, Misalignment]] = None,
    seed: int = 0,
    keep_volume: bool = False,
    noise: bool = True,
) -> SimulationResult:
    """Simulate one specimen and reconstruct it once per misalignment.

    Parameters
    ----------
    params : IndependentParams
    misalignments : dict of str to (shift_x_A, shift_y_A, rotation_deg), or callable
        Each a number or ``n_tilts`` values (ascending tilt order), Å, Å and
        degrees; applied to the recorded images (see
        :func:`~.processing.apply_misalignment`). Default: ``{"aligned":
        (0, 0, 0)}``. A callable ``f(beads_xyz, angles, shape)`` returning
        such a dict is called once the beads are placed (to scale errors to
        what they do to the beads).
    seed : int
        Seed of every random choice (specimen, beads, defocus, noise).
    keep_volume : bool
        Return the specimen potential.
    noise : bool
        Draw shot noise (``False`` for noise-free checks).

    Returns
    -------
    SimulationResult
    """
    params.validate()
    t0 = time.perf_counter()
    timings = {}
    rng = np.random.default_rng(seed)
    px = params.pixel_size_A
    angles = tilt_angles(params.tilt_min_deg, params.tilt_max_deg, params.tilt_step_deg)
    order = acquisition_order(angles, params.tilt_order, params.tilt_start_deg, params.tilt_group)
    dose, exposure = accumulated_exposure(order, params.dose_e_per_A2)
    slab = make_slab(params, rng)
    beads = place_beads(
        slab,
        params.n_beads,
        params.bead_diameter_A,
        rng,
        params.bead_diameter_sd,
        params.bead_surface_fraction,
        params.bead_cluster_fraction,
        params.bead_min_distance_A,
    )
    if callable(misalignments):
        misalignments = misalignments(beads.positions.copy(), angles, params.shape)
    mis = _misalignment_arrays(misalignments, len(angles), px)
    volume = build_specimen(params, slab, beads, rng)
    defocus = params.defocus_um + params.defocus_sd_um * rng.standard_normal(len(angles))
    timings["specimen"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    series = render_tilt_series(
        params, volume, beads, slab, angles, defocus, dose, exposure, rng, noise
    )
    timings["render"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    tomos = reconstruct_misaligned(params, series, angles, defocus, exposure, mis)
    timings["reconstruct"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    logger.info(
        "simulated %s tomograms %s with %d tilts and %d beads in %.1f s",
        len(tomos),
        params.shape,
        len(angles),
        len(beads),
        timings["total"],
    )
    return SimulationResult(
        tomos,
        angles,
        beads.positions.copy(),
        beads.diameters_A.copy(),
        float(params.bead_diameter_A),
        px,
        params,
        mis,
        defocus,
        dose,
        exposure,
        order,
        series,
        volume if keep_volume else None,
        timings,
        int(seed),
        np.asarray(beads.cluster).copy(),
    )
