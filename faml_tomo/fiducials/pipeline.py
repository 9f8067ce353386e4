"""The peak-high-contrast gold-fiducial finder (de Isidro-Gómez et al. 2024,
§2.3) on a whole tomogram.

Two passes over the XY slices, one slice at a time (memory-mapped input is
never loaded whole): the first filters the central slices to set the
dark-outlier threshold, the second finds 2D objects in every slice and links
them into 3D candidates.  Candidates are then centred by mirror correlation
on the raw tomogram, merged, filtered, and dropped at the borders.
"""

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.mrc import open_mrc, require_voxel_size
from ..typealiases import PathLike
from .border import box_inside
from .detect import SliceVoter, slice_objects
from .filters import central_slices, preprocessed_slices
from .params import PeakHighContrastParams, PeakHighContrastResult
from .quality import final_rules, quality_filters
from .refine import (
    centred_box,
    merge_close,
    mirror_correlation,
    mirror_refine,
)
from .smeared import find_smeared_beads

logger = logging.getLogger(__name__)

__all__ = ["peak_high_contrast", "find_beads", "peak_high_contrast_file", "box_inside"]


def _threshold_statistics(volume, d, params, margin, workers):
    """Pass 1: statistics of the filtered central slices (mean/SD for the
    outlier threshold, median/MAD for the contrast gate) and the raw SD."""
    nz, ny, nx = volume.shape
    central = central_slices(nz, params.sampling_slices)
    n_vals, s1, s2 = 0, 0.0, 0.0
    raw_sd, sample = [], []
    for z, filt in preprocessed_slices(volume, d, central, params.z_average_slices, workers):
        inner = filt[margin : ny - margin, margin : nx - margin].astype(np.float64)
        if not np.isfinite(inner.sum()):
            raise InputError(f"tomogram holds NaN or Inf values (around slice z={z})")
        n_vals += inner.size
        s1 += inner.sum()
        s2 += np.square(inner).sum()
        sample.append(inner[::3, ::3].ravel())  # enough for a median
        raw_sd.append(float(np.std(np.asarray(volume[z], dtype=np.float64))))
    mean = s1 / n_vals
    sample = np.concatenate(sample)
    median = float(np.median(sample))
    return {
        "filtered_mean": float(mean),
        "filtered_sd": float(np.sqrt(max(s2 / n_vals - mean * mean, 0.0))),
        "filtered_median": median,
        "filtered_robust_sd": 1.4826 * float(np.median(np.abs(sample - median))),
        "background_sd": float(np.median(raw_sd)),
        "central_slices": (central[0], central[-1]),
    }


def peak_high_contrast(
    volume: Any,
    sampling_rate: float,
    params: PeakHighContrastParams | None = None,
    workers: int = 1,
    seed: int = 0,
    name: str | None = None,
) -> PeakHighContrastResult:
    """Find gold fiducials in a tomogram, also where a misaligned tilt series
    smeared them.

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Tomogram with dark beads (numpy array or memory map, any real dtype).
    sampling_rate : float
        Voxel size in Å.
    params : PeakHighContrastParams, optional
        Settings (defaults: 10 nm beads, box 32, ...).
    workers : int
        Threads for the slice FFTs.
    seed : int
        Seed of the random background positions that calibrate the
        radial-profile filter (results are deterministic for a seed).
    name : str, optional
        How log messages refer to the tomogram.

    Returns
    -------
    PeakHighContrastResult
        Bead centres ``(x, y, z)`` in voxels, mirror-correlation scores,
        whether relaxed mode was used, warnings and per-stage counts
        (``stats["bead_scale"]``: 1, or the larger scale the beads were
        found at; ``stats["search"]``: ``"peak"``, ``"smeared"`` or ``"streak"``).

    Raises
    ------
    InputError
        Non-3D or non-real data, NaN/Inf values, a bad sampling rate, or a
        bead/box that does not fit the tomogram.

    Notes
    -----
    The search of :func:`find_beads` at the given bead size; when it finds
    fewer than ``relaxed_mode_threshold`` beads, it is repeated for beads
    ``smeared_scales`` times larger (the first scale that finds enough, else
    the one that finds most): strong misalignment smears a bead into arcs
    and doubled spots, spreading its darkness over a larger area, so that
    at the nominal size no voxel of it is an extreme outlier any more.
    When still too few are found, :func:`~.smeared.find_smeared_beads`
    looks for beads split into lobes and arcs (``stats["search"] ==
    "smeared"`` when its coordinates are returned), then for beads drawn
    out into streaks along the tilt axis (``"streak"``).
    """
    params = PeakHighContrastParams() if params is None else params
    result = find_beads(volume, sampling_rate, params, workers, seed, name, quiet=True)
    result.stats["bead_scale"] = 1.0
    result.stats["search"] = "peak"
    best = result
    enough = max(1, params.relaxed_mode_threshold)
    if len(result) < enough and params.smeared_scales:
        best = _larger_beads(volume, sampling_rate, params, workers, seed, name, result)
    for streak in (False, True):
        if len(best) >= enough or not params.smeared_search:
            break
        r = find_smeared_beads(volume, sampling_rate, params, workers, name, streak=streak)
        if len(r) > len(best):
            r.stats["bead_scale"] = 1.0
            r.stats["nominal"] = dict(result.stats)
            look = (
                "drawn out into streaks along the tilt axis (Y)"
                if streak
                else "smeared into lobes or arcs"
            )
            r.warnings.insert(
                0,
                f"{len(r)} fiducial(s) found only by the smeared-bead "
                f"search{' for streaks' if streak else ''} (previous "
                f"searches: {len(best)}): the beads look {look}, as in a "
                f"strongly misaligned tilt series; coordinates are the "
                f"centres of the smears",
            )
            best = r
    prefix = f"{name}: " if name else ""
    for w in best.warnings:
        logger.warning("%s%s", prefix, w)
    return best


def _larger_beads(volume, sampling_rate, params, workers, seed, name, result):
    """The search repeated for beads ``smeared_scales`` times larger: the
    first scale that finds enough, else the one that finds most (or
    ``result``, the nominal search, when none finds more)."""
    best = result
    shape = tuple(volume.shape)
    for scale in params.smeared_scales:
        larger = replace(params, bead_diameter_nm=params.bead_diameter_nm * scale)
        if larger.problems(shape, sampling_rate):
            continue  # the larger bead does not fit the box
        r = find_beads(volume, sampling_rate, larger, workers, seed, name, quiet=True)
        r.stats["bead_scale"] = float(scale)
        r.stats["search"] = "peak"
        if len(r) > len(best):
            best = r
        if len(best) >= params.relaxed_mode_threshold:
            break
    if best is not result:
        best.warnings.insert(
            0,
            f"{len(best)} fiducial(s) found only when searching for "
            f"beads {best.stats['bead_scale']:g} x larger (at the "
            f"given size: {len(result)}): the beads look smeared, "
            f"as in a misaligned tilt series",
        )
        best.stats["nominal"] = dict(result.stats)
    return best


def find_beads(
    volume: Any,
    sampling_rate: float,
    params: PeakHighContrastParams | None = None,
    workers: int = 1,
    seed: int = 0,
    name: str | None = None,
    quiet: bool = False,
) -> PeakHighContrastResult:
    """Find gold fiducials of the given bead size in a tomogram (one search).

    Parameters, result and errors are those of :func:`peak_high_contrast`;
    ``quiet`` leaves the warnings in the result without logging them.

    Notes
    -----
    Steps (paper §2.3; see the package documentation for where this
    implementation departs from the reference program):

    1. each XY slice, averaged with its neighbours over ``z_average_slices``,
       is band-passed around the bead frequency and Laplacian-filtered;
    2. dark outliers (below mean - ``sd_threshold`` SD of the central
       slices) form 8-connected 2D objects, kept if large and round enough
       (fused components are split at deeper levels);
    3. objects overlapping in adjacent slices vote for each other; each chain
       is a 3D candidate if it attracts ``min_coordinates`` voxels and is
       dark enough (``min_contrast``);
    4. candidates are centred by mirror correlation, merged, dropped at the
       borders, then filtered by mirror correlation and radial-profile
       Mahalanobis distance (relaxed mode when too few survive).

    Peak memory is a few XY slices plus small boxes, whatever the tomogram
    size.
    """
    params = PeakHighContrastParams() if params is None else params
    shape = getattr(volume, "shape", None)
    if shape is None or len(shape) != 3:
        raise InputError(f"expected a 3D tomogram (nz, ny, nx), got shape {shape}")
    dtype = np.dtype(getattr(volume, "dtype", np.float32))
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        raise InputError(f"tomogram must hold real numbers, got {dtype}")
    params.check(shape, sampling_rate)
    t0 = time.perf_counter()
    prefix = f"{name}: " if name else ""
    d = params.bead_diameter_px(sampling_rate)
    result = PeakHighContrastResult()
    stats = result.stats
    stats.update(
        bead_diameter_px=d, shape=tuple(int(s) for s in shape), sampling_rate=float(sampling_rate)
    )
    found = _candidates(volume, d, params, workers, result, prefix, quiet, t0)
    if found is None:
        return result
    cands, contrast, all_xyz, st = found
    size_v = 2 * int(round(d)) + 1
    xyz, contrast = _centred(volume, cands.xyz, contrast, d, size_v, params, stats)
    boxes = [centred_box(volume, c, size_v) for c in xyz]
    scores = np.array([mirror_correlation(b) for b in boxes])
    keep = quality_filters(
        volume, boxes, scores, contrast, all_xyz, d, size_v, st, params, seed, result
    )
    keep = final_rules(keep, contrast, len(xyz), params, result)
    result.coordinates = xyz[keep]
    result.scores = scores[keep]
    if len(result.coordinates) == 0:
        result.warnings.append(
            "no fiducials found: check the bead size, the sampling "
            "rate, and that beads are dark, or lower the SD threshold "
            "or the minimum contrast"
        )
    if not quiet:
        for w in result.warnings:
            logger.warning("%s%s", prefix, w)
    stats["final"] = len(result.coordinates)
    stats["time_s"] = time.perf_counter() - t0
    return result


def _candidates(volume, d, params, workers, result, prefix, quiet, t0):
    """Steps 1-3 of :func:`find_beads`: the dark-outlier threshold, 2D
    objects linked into 3D candidates, those dark enough.  Returns the
    candidates, their contrast, every chain's centre and the threshold
    statistics, or None (with a warning) when the tomogram has no contrast
    at the bead size."""
    nz, ny, nx = volume.shape
    stats = result.stats
    # Pass 1 over the interior, where the FFT wrap-around of the slice edges
    # does not reach.
    margin = int(min(max(2, np.ceil(d)), (min(ny, nx) - 1) // 4))
    st = _threshold_statistics(volume, d, params, margin, workers)
    stats.update(st)
    mean, sd = st["filtered_mean"], st["filtered_sd"]
    if not (
        sd > 1e-12 * max(1.0, abs(mean))
        and st["filtered_robust_sd"] > 0
        and st["background_sd"] > 0
    ):
        for z in range(nz):  # the other slices may still hold NaN
            if not np.isfinite(np.sum(volume[z], dtype=np.float64)):
                raise InputError(f"tomogram holds NaN or Inf values (slice z={z})")
        result.warnings.append(
            "the tomogram has no contrast at the bead size (constant data?): no fiducials"
        )
        if not quiet:
            logger.warning("%s%s", prefix, result.warnings[-1])
        return None
    threshold = mean - params.sd_threshold * sd
    stats["threshold"] = threshold

    # Pass 2: 2D objects in every slice, linked across slices.
    min_area = max(2.0, params.min_area_fraction * np.pi * d * d / 4)
    voter = SliceVoter()
    for z, filt in preprocessed_slices(volume, d, None, params.z_average_slices, workers):
        if not np.isfinite(filt.sum()):
            raise InputError(f"tomogram holds NaN or Inf values (around slice z={z})")
        voter.add(z, slice_objects(filt, threshold, min_area, params.min_circularity, margin))
    # For small beads the voxel threshold scales with the bead's volume.
    min_voxels = min(params.min_coordinates, 0.5 * np.pi / 6 * d**3)
    all_cands = voter.candidates(min_slices=2, min_voxels=min_voxels)
    # Gold is far darker than anything biological: a chain whose darkest
    # voxel is not an extreme outlier (robust SD, unaffected by the beads)
    # is dense protein, even when the tomogram holds no gold at all.
    contrast = (st["filtered_median"] - all_cands.minimum) / st["filtered_robust_sd"]
    cands = all_cands.take(contrast >= params.min_contrast)
    contrast = contrast[contrast >= params.min_contrast]
    stats.update(
        objects_2d=voter.n_objects,
        chains_3d=len(all_cands),
        candidates_3d=len(cands),
        min_voxels=float(min_voxels),
        time_detect_s=time.perf_counter() - t0,
    )
    logger.info(
        "%s%d 2D objects, %d 3D chains, %d high-contrast candidates (threshold %.3g)",
        prefix,
        voter.n_objects,
        len(all_cands),
        len(cands),
        threshold,
    )
    if len(cands) > params.max_candidates:
        order = np.sort(np.argsort(-contrast)[: params.max_candidates])
        result.warnings.append(
            f"{len(cands)} candidates, only the {params.max_candidates} "
            f"darkest were refined: raise the SD threshold"
        )
        cands, contrast = cands.take(order), contrast[order]
    return cands, contrast, all_cands.xyz, st


def _centred(volume, xyz, contrast, d, size_v, params, stats):
    """Centre refinement by mirror correlation, duplicates merged, border
    dropped.  The mirror score is computed on the paper's V_i: a cube of two
    bead diameters around the centre."""
    xyz = np.array([mirror_refine(volume, c, d) for c in xyz]).reshape(-1, 3)
    scores = np.array([mirror_correlation(centred_box(volume, c, size_v)) for c in xyz])
    xyz, kept = merge_close(xyz, params.merge_distance * d, scores, same_object=d / 2)
    contrast = contrast[kept]
    stats["after_merge"] = len(xyz)
    inside = box_inside(
        xyz, volume.shape, params.box_size, size_v if params.z_border == "bead" else None
    )
    stats["inside_border"] = int(np.count_nonzero(inside))
    return xyz[inside], contrast[inside]


def peak_high_contrast_file(
    path: PathLike,
    sampling_rate: float | None = None,
    params: PeakHighContrastParams | None = None,
    workers: int = 1,
    seed: int = 0,
) -> PeakHighContrastResult:
    """Run :func:`peak_high_contrast` on an MRC file, memory-mapped.

    Parameters
    ----------
    path : str or Path
        MRC tomogram.
    sampling_rate : float, optional
        Voxel size in Å; the header's when omitted (refused if the header
        gives none).
    params : PeakHighContrastParams, optional
    workers : int

    Returns
    -------
    PeakHighContrastResult
    """
    with open_mrc(path) as (data, voxel_size):
        if sampling_rate is None:
            sampling_rate = require_voxel_size(voxel_size, path, "pass the sampling rate")
        try:
            return peak_high_contrast(
                data, sampling_rate, params, workers, seed, name=Path(path).name
            )
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
