"""Quality filters of the fiducial finder: mirror symmetry and
radial-profile (Mahalanobis) outliers, relaxed mode and the rule for a small
population of coordinates (de Isidro-Gómez et al. 2024, §2.3)."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .params import PeakHighContrastParams, PeakHighContrastResult
from .refine import centred_box, equivalent_chi_threshold, mahalanobis_distances, radial_profile

__all__ = ["quality_filters", "final_rules", "MIN_MAHALANOBIS_POPULATION"]

# Fewer coordinates than this and the radial-profile population is too small
# to estimate a covariance: the Mahalanobis filter is skipped (with a warning).
MIN_MAHALANOBIS_POPULATION = 6
# ...and then each coordinate needs this many times the minimum contrast.
SMALL_POPULATION_CONTRAST = 2.0
# Relative amplitude spread of gold-bead radial profiles that the Mahalanobis
# filter always tolerates (commercial 10 nm gold varies by ~10% in diameter,
# i.e. ~30% in volume; defocus and depth change the profile too).
BEAD_AMPLITUDE_SPREAD = 0.2


def _background_profiles(volume, d, size_v, half, scale, avoid, box_size, z_range, rng, n=128):
    """Radial profiles at random positions of the central slices away from
    every candidate: how much the surroundings alone make profiles vary."""
    nz, ny, nx = volume.shape
    lo, hi = box_size // 2, np.array([nx, ny]) - box_size // 2
    if np.any(hi <= lo):
        return None
    pts = np.column_stack(
        [
            rng.uniform(lo, hi[0], 4 * n),
            rng.uniform(lo, hi[1], 4 * n),
            rng.integers(z_range[0], z_range[1] + 1, 4 * n),
        ]
    ).astype(float)
    if len(avoid):
        from scipy.spatial import cKDTree

        far = cKDTree(avoid).query(pts, distance_upper_bound=2 * d)[0] > 2 * d
        pts = pts[far]
    pts = pts[:n]
    if len(pts) < 10:
        return None
    return np.array([radial_profile(centred_box(volume, c, size_v), half, scale) for c in pts])


def quality_filters(
    volume: Any,
    boxes: Sequence[np.ndarray],
    scores: np.ndarray,
    contrast: np.ndarray,
    all_xyz: np.ndarray,
    d: float,
    size_v: int,
    st: Mapping[str, Any],
    params: PeakHighContrastParams,
    seed: int,
    result: PeakHighContrastResult,
) -> np.ndarray:
    """Mirror symmetry, then radial-profile outliers that are less dark than
    the beads (a darker-than-typical profile is still gold).  Returns the
    boolean mask of the coordinates kept."""
    stats = result.stats
    half = max(1, int(round(d / 4)))
    profiles = (
        np.array([radial_profile(b, half, st["background_sd"]) for b in boxes])
        if boxes
        else np.zeros((0, size_v // 2 + 1))
    )
    core = profiles[:, : half + 1].mean(axis=1)
    keep = scores >= params.mirror_correlation_threshold
    stats["after_mirror"] = int(keep.sum())
    if keep.sum() >= MIN_MAHALANOBIS_POPULATION:
        bg = _background_profiles(
            volume,
            d,
            size_v,
            half,
            st["background_sd"],
            all_xyz,
            params.box_size,
            st["central_slices"],
            np.random.default_rng(seed),
        )
        # Spread never smaller than the surroundings' nor than the amplitude
        # spread of real gold (polydisperse beads, defocus, depth in ice).
        mean_profile = profiles[keep].mean(axis=0)
        floor = np.diag((BEAD_AMPLITUDE_SPREAD * mean_profile) ** 2)
        if bg is not None:
            floor = floor + np.cov(bg.T)
        dist, brighter = mahalanobis_distances(profiles[keep], core[keep], floor_cov=floor)
        limit = equivalent_chi_threshold(params.mahalanobis_threshold, 2)
        # Real beads differ (size, crystal orientation: some scatter into
        # Bragg beams and reconstruct with a paler core), so an unmistakably
        # dark candidate is gold whatever its profile: only the marginal ones
        # are judged by it.
        marginal = contrast[keep] < SMALL_POPULATION_CONTRAST * params.min_contrast
        keep[np.nonzero(keep)[0][(dist > limit) & brighter & marginal]] = False
    elif keep.any():
        result.warnings.append(
            f"only {int(keep.sum())} coordinates passed the mirror "
            f"filter: too few for the radial-profile (Mahalanobis) "
            f"filter, which was skipped"
        )
    stats["after_mahalanobis"] = int(keep.sum())
    return keep


def final_rules(
    keep: np.ndarray,
    contrast: np.ndarray,
    n_coordinates: int,
    params: PeakHighContrastParams,
    result: PeakHighContrastResult,
) -> np.ndarray:
    """Relaxed mode (too few passed: all returned) and the small-population
    rule (fewer than ``MIN_MAHALANOBIS_POPULATION``: each must be
    unmistakably dark).  Returns the final mask."""
    if keep.sum() < params.relaxed_mode_threshold and params.relaxed_mode and n_coordinates:
        result.relaxed_mode_used = True
        result.warnings.append(
            f"relaxed mode: only {int(keep.sum())} of {n_coordinates} "
            f"coordinates passed the quality filters (fewer than "
            f"{params.relaxed_mode_threshold}); all {n_coordinates} are "
            f"returned unfiltered"
        )
        keep[:] = True
    if 0 < keep.sum() < MIN_MAHALANOBIS_POPULATION:
        # Too few to be judged against a population of beads: a lone dark
        # spot (membranes crossing) must be unmistakably gold.
        weak = keep & (contrast < SMALL_POPULATION_CONTRAST * params.min_contrast)
        if weak.any():
            result.warnings.append(
                f"{int(weak.sum())} of {int(keep.sum())} coordinates "
                f"dropped: with fewer than {MIN_MAHALANOBIS_POPULATION} "
                f"coordinates each must reach "
                f"{SMALL_POPULATION_CONTRAST:g} x the minimum contrast"
            )
            keep &= ~weak
    result.relaxed_mode_used = result.relaxed_mode_used and bool(keep.any())
    return keep
