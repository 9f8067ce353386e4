"""Search for gold beads that a misaligned tilt series smeared into lobes,
arcs and clouds: local darkness at the scale of a smear's pieces, grouped
per bead (the last fallback of the peak-high-contrast finder).

A bead reconstructed from misaligned projections is no longer a round dark
object: "birds" split it into two lobes a few pixels apart, rotations bend
it into arcs, random shifts spread it into a cloud.  Its pieces are still
far darker than anything biological once the local background is removed:
on an independent forward model, strongly misaligned 10 nm beads at 5-10
Å/px reach 20-35 robust SDs below the median in the difference of
Gaussians used here, the darkest non-gold maxima 5-12.  So the search
thresholds that difference of Gaussians (sigma a quarter of the bead
diameter, surround four times wider), forms 3D components of the dark
voxels, and groups components within one bead diameter: one coordinate per
smeared bead, at the darkness-weighted centre of its pieces.

Errors along the tilt axis (Y) draw a bead out into a streak along Y: its
darkness spreads over a few bead diameters, so that no piece of it reaches
the threshold of the round-piece filter (measured on the independent model:
"birds" of 6-7.5 px at 15-20 Å/px, streaks 4-6 bead diameters long, darkest
voxels 8-14 robust SDs).  The streak variant (``streak=True``) stretches the
inner Gaussian along Y to ``STREAK`` bead diameters, which integrates a
streak's darkness (15-27 SDs on the same tomograms) while round objects and
noise gain nothing.
"""

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import fft as sfft
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..errors import InputError
from .border import box_inside
from .filters import central_slices, preprocessed_slices
from .params import PeakHighContrastParams, PeakHighContrastResult
from .refine import centred_box, merge_close, mirror_correlation

logger = logging.getLogger(__name__)

__all__ = ["find_smeared_beads", "dog_transfer"]

# Gaussian sigma of a smear's piece, in bead diameters, and of the local
# background, in piece sigmas.
PIECE_SIGMA = 0.25
SURROUND = 4.0
# Voxels darker than VOXEL_SD robust SDs below the median form the pieces;
# a bead's darkest voxel must reach PEAK_SD (noise and protein stay above
# -10 on the validation tomograms without gold; carbon edges and membranes
# reach -17, but spread over > 100 bead volumes: MAX_VOLUME).
VOXEL_SD = 6.0
PEAK_SD = 12.0
# Beads of one tomogram are alike: an object less than RELATIVE times as dark
# as the typical of the darkest (median of the TOP darkest) is not gold.
RELATIVE = 0.5
TOP = 5
# A lone dark object is not a population of beads (protein and membranes
# reach 12-15 robust SDs): alone, it must reach LONE_SD.
LONE_SD = 20.0
# A smeared bead's dark voxels fill at most this many bead volumes (25 seen
# for the most smeared 5 nm beads at 7 Å/px).
MAX_VOLUME = 40.0
# Pieces of one smeared bead lie within this many bead diameters of each other.
LINK = 1.0
# Sigma along Y of the streak variant's inner Gaussian, in bead diameters.
STREAK = 1.0
# More dark voxels than this and the data is not a tomogram of dark gold (40
# smeared 10 nm beads at 5 Å/px make ~0.7 million; the neighbour search
# needs ~0.2 kB per voxel).
MAX_VOXELS = 3_000_000


def dog_transfer(
    shape: Sequence[int], sigma: float, surround: float = SURROUND, sigma_y: float | None = None
) -> np.ndarray:
    """Transfer function (rfft2 layout) of a 2D difference of Gaussians.

    Parameters
    ----------
    shape : tuple of int
        Slice shape ``(ny, nx)``.
    sigma : float
        Sigma of the inner Gaussian, in voxels.
    surround : float
        Sigma of the subtracted (background) Gaussian, in units of ``sigma``.
    sigma_y : float, optional
        Sigma of the inner Gaussian along Y (rows), in voxels, when it
        differs from ``sigma`` (a filter matched to streaks along Y).

    Returns
    -------
    numpy.ndarray, shape (ny, nx // 2 + 1), float32
        ``G(sigma) - G(surround * sigma)``: zero at DC, so a uniform
        background gives 0 and a dark spot a negative value.
    """
    ny, nx = shape
    ky2 = sfft.fftfreq(ny)[:, None] ** 2
    kx2 = sfft.rfftfreq(nx)[None, :] ** 2
    sy = sigma if sigma_y is None else sigma_y
    a = -2 * np.pi**2
    inner = np.exp(a * (kx2 * sigma**2 + ky2 * sy**2))
    return (inner - np.exp(a * (kx2 + ky2) * (surround * sigma) ** 2)).astype(np.float32)


def _robust_level(volume, d, z_avg, h, margin, n_slices, workers):
    """Median and robust SD (1.4826 MAD) of the filtered central slices."""
    sample = []
    for z, filt in preprocessed_slices(
        volume, d, central_slices(volume.shape[0], n_slices), z_avg, workers, transfer=h
    ):
        inner = filt[margin : filt.shape[0] - margin, margin : filt.shape[1] - margin]
        if not np.isfinite(inner.sum()):
            raise InputError(f"tomogram holds NaN or Inf values (around slice z={z})")
        sample.append(inner[::2, ::2].ravel())
    sample = np.concatenate(sample).astype(np.float64)
    med = float(np.median(sample))
    return med, 1.4826 * float(np.median(np.abs(sample - med)))


def _dark_voxels(volume, d, z_avg, h, margin, med, rsd, workers):
    """``(x, y, z)`` and robust z-scores of every voxel below ``-VOXEL_SD``."""
    pts, vals, count = [], [], 0
    nz, ny, nx = volume.shape
    for z, filt in preprocessed_slices(volume, d, None, z_avg, workers, transfer=h):
        inner = filt[margin : ny - margin, margin : nx - margin]
        if not np.isfinite(inner.sum()):
            raise InputError(f"tomogram holds NaN or Inf values (around slice z={z})")
        score = (inner - med) / rsd
        ys, xs = np.nonzero(score < -VOXEL_SD)
        if len(xs):
            count += len(xs)
            if count > MAX_VOXELS:
                return None
            pts.append(np.column_stack([xs + margin, ys + margin, np.full(len(xs), z)]))
            vals.append(score[ys, xs])
    if not pts:
        return np.zeros((0, 3)), np.zeros(0)
    return np.concatenate(pts).astype(float), np.concatenate(vals).astype(float)


def _components(xyz, radius):
    """Connected components of points closer than ``radius``: labels."""
    pairs = cKDTree(xyz).query_pairs(radius, output_type="ndarray")
    n = len(xyz)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)


def _group(xyz, weight, peak, label, n):
    """Weighted centres, total weight and largest ``peak`` per group."""
    idx = np.arange(n)
    mass = ndimage.sum_labels(weight, label, idx)
    centre = np.column_stack(
        [ndimage.sum_labels(weight * xyz[:, k], label, idx) / mass for k in range(3)]
    )
    return centre, mass, np.asarray(ndimage.maximum(peak, label, idx), float)


def _smears(xyz, score, d, stats):
    """Dark voxels (``xyz``, robust z-scores ``score``) grouped into smeared
    beads: 26-connected components, then pieces within ``LINK`` diameters;
    beads not dark enough at their darkest or too large dropped.  Returns
    the darkness-weighted centres and the darkest z-score of each."""
    if not len(xyz):
        return xyz, np.zeros(0)
    depth = -VOXEL_SD - score  # >= 0, darker is larger
    n, label = _components(xyz, 1.75)  # 26-connected voxels
    centre, mass, deepest = _group(xyz, depth, depth, label, n)
    # pieces of one bead: components within LINK diameters
    m, group = _components(centre, LINK * d)
    xyz, mass, deepest = _group(centre, mass, deepest, group, m)
    size = np.bincount(group, weights=np.bincount(label, minlength=n), minlength=m)
    keep = (deepest >= PEAK_SD - VOXEL_SD) & (size <= MAX_VOLUME * np.pi / 6 * d**3)
    stats["too_large"] = int(np.sum((deepest >= PEAK_SD - VOXEL_SD) & ~keep))
    return xyz[keep], deepest[keep] + VOXEL_SD


def _dark_enough(xyz, deepest, result):
    """Smears at least ``RELATIVE`` times as dark as the darkest beads; a
    lone one must reach ``LONE_SD``."""
    if len(deepest):
        floor = RELATIVE * float(np.median(np.sort(deepest)[::-1][:TOP]))
        xyz, deepest = xyz[deepest >= floor], deepest[deepest >= floor]
        if len(deepest) == 1 and deepest[0] < LONE_SD:
            result.warnings.append(
                f"smeared-bead search: one dark object "
                f"({deepest[0]:.0f} robust SD), not gold-dark enough "
                f"to be a bead on its own"
            )
            xyz, deepest = xyz[:0], deepest[:0]
    return xyz, deepest


def find_smeared_beads(
    volume: Any,
    sampling_rate: float,
    params: PeakHighContrastParams | None = None,
    workers: int = 1,
    name: str | None = None,
    streak: bool = False,
) -> PeakHighContrastResult:
    """Find gold beads smeared by misalignment (lobes, arcs, clouds, or with
    ``streak`` streaks along the tilt axis).

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Tomogram with dark beads (numpy array or memory map); read one XY
        slice at a time.
    sampling_rate : float
        Voxel size in Å.
    params : PeakHighContrastParams, optional
        Uses the bead diameter, box size and Z border rule, the central
        slices for the statistics, the merge distance and the maximum
        number of candidates.
    workers : int
        Threads for the slice FFTs.
    name : str, optional
        How log messages refer to the tomogram.
    streak : bool
        Stretch the inner Gaussian along Y to ``STREAK`` bead diameters
        (beads drawn out along the tilt axis); ``stats["search"] ==
        "streak"``.

    Returns
    -------
    PeakHighContrastResult
        One coordinate ``(x, y, z)`` in voxels per smeared bead (the
        darkness-weighted centre of its pieces), ordered by darkness; the
        scores are mirror correlations (low for a smear);
        ``stats["search"] == "smeared"``; ``stats["darkness_sd"]`` the
        darkest robust z-score of each.

    Notes
    -----
    Each XY slice, averaged over about ``3.5 sigma`` slices along Z, is
    filtered by a difference of Gaussians (:func:`dog_transfer`, sigma =
    ``PIECE_SIGMA`` bead diameters) and scored against the median and
    robust SD of the central slices.  Voxels below ``-VOXEL_SD`` form 3D
    components (26-connected); components within ``LINK`` bead diameters
    are one bead; a bead whose darkest voxel does not reach ``-PEAK_SD`` is
    dropped (dense protein, noise), and so is a dark object larger than
    ``MAX_VOLUME`` bead volumes (carbon edges, membranes) or less than
    ``RELATIVE`` times as dark as the darkest beads (median of ``TOP``); a
    lone object must reach ``-LONE_SD``.  Memory: a few slices plus the dark voxels.
    """
    params = PeakHighContrastParams() if params is None else params
    params.check(tuple(volume.shape), sampling_rate)
    t0 = time.perf_counter()
    nz, ny, nx = volume.shape
    d = params.bead_diameter_px(sampling_rate)
    sigma = max(PIECE_SIGMA * d, 0.7)
    h = dog_transfer((ny, nx), sigma, sigma_y=STREAK * d if streak else None)
    z_avg = 2 * int(round(1.75 * sigma)) + 1  # a box of SD ~ sigma along Z
    margin = int(min(max(2, np.ceil(d)), (min(ny, nx) - 1) // 4))
    result = PeakHighContrastResult()
    stats = result.stats
    stats.update(
        search="streak" if streak else "smeared",
        bead_diameter_px=d,
        piece_sigma_px=sigma,
        shape=tuple(int(s) for s in volume.shape),
        sampling_rate=float(sampling_rate),
    )
    med, rsd = _robust_level(volume, d, z_avg, h, margin, params.sampling_slices, workers)
    if not rsd > 0:
        result.warnings.append(
            "smeared-bead search: no contrast at the scale of a bead's pieces (constant data?)"
        )
        return result
    dark = _dark_voxels(volume, d, z_avg, h, margin, med, rsd, workers)
    if dark is None:
        result.warnings.append(
            f"smeared-bead search: more than {MAX_VOXELS} dark voxels, "
            f"the tomogram does not look like dark gold in lighter "
            f"surroundings; nothing returned"
        )
        return result
    xyz, score = dark
    stats["dark_voxels"] = len(xyz)
    xyz, deepest = _smears(xyz, score, d, stats)
    stats["smears"] = len(xyz)
    xyz, kept = merge_close(xyz, params.merge_distance * d, deepest, same_object=d / 2)
    deepest = deepest[kept]
    size_v = 2 * int(round(d)) + 1
    inside = box_inside(
        xyz, volume.shape, params.box_size, size_v if params.z_border == "bead" else None
    )
    xyz, deepest = _dark_enough(xyz[inside], deepest[inside], result)
    order = np.argsort(-deepest, kind="stable")[: params.max_candidates]
    result.coordinates = xyz[order]
    result.scores = np.array(
        [mirror_correlation(centred_box(volume, c, size_v)) for c in result.coordinates]
    )
    stats["darkness_sd"] = deepest[order].tolist()
    stats["final"] = len(result.coordinates)
    stats["time_s"] = time.perf_counter() - t0
    logger.info(
        "%s%d dark voxels, %d smeared beads (%.1f s)",
        f"{name}: " if name else "",
        stats["dark_voxels"],
        stats["final"],
        stats["time_s"],
    )
    return result
