"""Centre refinement and quality filters of the peak-high-contrast finder
(paper §2.3, step 3 end and step 4): mirror-correlation centring, duplicate
merge, mirror-correlation score and radial-profile Mahalanobis outliers."""

import logging
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as sfft
from scipy import ndimage
from scipy.spatial import cKDTree

logger = logging.getLogger(__name__)

__all__ = [
    "crop",
    "centred_box",
    "mirror_refine",
    "mirror_correlation",
    "radial_profile",
    "mahalanobis_distances",
    "equivalent_chi_threshold",
    "merge_close",
]


def crop(volume: Any, centre: ArrayLike, size: int) -> np.ndarray:
    """Cube of ``size`` voxels centred on voxel ``round(centre)``.

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Tomogram (numpy array or memory map: only the cube is read).
    centre : array_like, shape (3,)
        ``(x, y, z)`` in voxels.
    size : int
        Edge of the cube; the centre voxel is index ``size // 2``.

    Returns
    -------
    numpy.ndarray, shape (size, size, size), float64
        Parts outside the tomogram are filled with the mean of the inside.
    """
    c = np.rint(np.asarray(centre, float)[::-1]).astype(int)  # z, y, x
    lo = c - size // 2
    hi = lo + size
    src_lo = np.maximum(lo, 0)
    src_hi = np.minimum(hi, volume.shape)
    out = np.empty((size,) * 3, np.float64)
    if np.any(src_hi <= src_lo):
        out.fill(0.0)
        return out
    block = np.asarray(
        volume[src_lo[0] : src_hi[0], src_lo[1] : src_hi[1], src_lo[2] : src_hi[2]],
        dtype=np.float64,
    )
    if block.shape == out.shape:
        return block
    out.fill(block.mean())
    d = src_lo - lo
    out[
        d[0] : d[0] + block.shape[0], d[1] : d[1] + block.shape[1], d[2] : d[2] + block.shape[2]
    ] = block
    return out


def _window(size):
    """Raised-cosine spherical window on a cube (1 at the centre, 0 beyond
    ``size / 2``)."""
    g = np.arange(size) - size // 2
    r = np.sqrt(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2)
    return 0.5 * (1 + np.cos(np.pi * np.clip(r / (size / 2), 0, 1)))


def _parabolic(c_minus, c0, c_plus):
    denom = c_minus - 2 * c0 + c_plus
    return 0.0 if denom >= 0 else float(np.clip(0.5 * (c_minus - c_plus) / denom, -0.5, 0.5))


def mirror_refine(
    volume: Any, centre: ArrayLike, bead_diameter_px: float, iterations: int = 2
) -> np.ndarray:
    """Move a centre to the most point-symmetric object around it.

    In a cube of about two bead diameters around the centre, the shift ``t``
    maximising the correlation between ``V(r)`` and its point mirror
    ``V(-r)`` is twice the offset of the symmetric object from the cube's
    centre; half of it (sub-voxel, by parabolic interpolation) moves the
    centre.  A raised-cosine window limits the influence of neighbours.

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
        Tomogram.
    centre : array_like, shape (3,)
        Starting ``(x, y, z)`` in voxels.
    bead_diameter_px : float
        Bead diameter in voxels; the centre moves by at most half of it per
        iteration.
    iterations : int
        Re-crop around the new centre this many times (removes the window's
        bias).

    Returns
    -------
    numpy.ndarray, shape (3,)
        Refined ``(x, y, z)``.
    """
    size = 2 * int(np.ceil(bead_diameter_px)) + 1
    size = max(size, 9)
    window = _window(size)
    n = 2 * size
    max_t = max(1, int(np.ceil(bead_diameter_px)))
    c = np.asarray(centre, float).copy()
    for _ in range(iterations):
        v = crop(volume, c, size)
        v -= v.mean()
        v *= window
        m = v[::-1, ::-1, ::-1]
        xc = sfft.irfftn(sfft.rfftn(v, (n,) * 3) * np.conj(sfft.rfftn(m, (n,) * 3)), (n,) * 3)
        # Only shifts up to one bead diameter (offsets up to a radius).
        xc = np.roll(xc, (max_t,) * 3, axis=(0, 1, 2))[
            : 2 * max_t + 1, : 2 * max_t + 1, : 2 * max_t + 1
        ]
        p = np.array(np.unravel_index(np.argmax(xc), xc.shape))
        t = p - max_t
        sub = np.zeros(3)
        for ax in range(3):
            if 0 < p[ax] < 2 * max_t:
                lo, hi = p.copy(), p.copy()
                lo[ax] -= 1
                hi[ax] += 1
                sub[ax] = _parabolic(xc[tuple(lo)], xc[tuple(p)], xc[tuple(hi)])
        shift_zyx = (t + sub) / 2.0
        c = np.rint(c) + shift_zyx[::-1]
        if np.all(np.abs(shift_zyx) < 0.25):
            break
    return c


def centred_box(volume: Any, centre: ArrayLike, box_size: int) -> np.ndarray:
    """Odd cube of ``2 * (box_size // 2) + 1`` voxels whose central voxel is
    the sub-voxel ``centre`` (linear interpolation), so that its point
    mirror is the mirror about the centre."""
    size = 2 * (box_size // 2) + 1
    c = np.asarray(centre, float)
    v = crop(volume, c, size + 2)
    frac = (c - np.rint(c))[::-1]
    if np.any(np.abs(frac) > 1e-3):
        v = ndimage.shift(v, -frac, order=1, mode="nearest")
    return v[1:-1, 1:-1, 1:-1]


def mirror_correlation(box: np.ndarray) -> float:
    """Normalised correlation between a cube and its point mirror.

    Parameters
    ----------
    box : numpy.ndarray, shape (n, n, n)
        Odd-sized cube centred on the object.

    Returns
    -------
    float
        Pearson correlation in [-1, 1] (0 for a constant cube).
    """
    a = box - box.mean()
    b = a[::-1, ::-1, ::-1]
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else 0.0


def radial_profile(box: np.ndarray, half_thickness: int, scale: float = 1.0) -> np.ndarray:
    """Radial profile of the central XY slab of a cube.

    Parameters
    ----------
    box : numpy.ndarray, shape (n, n, n)
        Odd-sized cube centred on the object.
    half_thickness : int
        Slices ``centre +- half_thickness`` are averaged.
    scale : float
        The profile is divided by it (the tomogram's background SD, so that
        profiles of one tomogram share units).

    Returns
    -------
    numpy.ndarray, shape (n // 2 + 1,)
        Mean value in integer radius bins 0, 1, ..., n // 2 (voxels).
    """
    n = box.shape[0]
    c = n // 2
    slab = box[c - half_thickness : c + half_thickness + 1].mean(axis=0)
    g = np.arange(n) - c
    r = np.rint(np.hypot(g[:, None], g[None, :])).astype(int)
    bins = np.arange(c + 1)
    sums = ndimage.sum_labels(slab, r, bins)
    counts = ndimage.sum_labels(np.ones_like(slab), r, bins)
    return (sums / counts - slab.mean()) / scale


def equivalent_chi_threshold(sd_threshold: float, n_components: int) -> float:
    """Mahalanobis distance in ``n_components`` dimensions with the same tail
    probability as ``sd_threshold`` standard deviations of a 1D Gaussian
    (two-sided): 2 SD -> 2.49 in 2D, so that the threshold removes about
    4.6% of a Gaussian population whatever the dimension."""
    from scipy.special import erf
    from scipy.stats import chi2

    p_inside = erf(sd_threshold / np.sqrt(2))
    return float(np.sqrt(chi2.ppf(p_inside, n_components)))


def mahalanobis_distances(
    profiles: ArrayLike,
    core: ArrayLike,
    n_components: int = 2,
    start_fraction: float = 1 / 3,
    floor_cov: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Robust Mahalanobis distance of each radial profile to the profile
    population of the beads, in the space of its first principal components.

    The population centre and covariance are estimated on the darkest
    profiles first (gold is what is darkest), then re-estimated on every
    profile within the 97.5% chi-square quantile until stable (reweighted
    estimator with the consistency factor of a truncated Gaussian), so that
    distractors do not inflate the spread that judges them, even when they
    are many.

    Parameters
    ----------
    profiles : numpy.ndarray, shape (n, m)
        One radial profile per row.
    core : numpy.ndarray, shape (n,)
        Darkness of each object's core (mean of the first profile bins);
        lower is darker.
    n_components : int
        Principal components kept (paper: 2).
    start_fraction : float
        Fraction of darkest profiles that starts the estimate.
    floor_cov : numpy.ndarray, shape (m, m), optional
        Covariance of profiles taken at random background positions: a
        bead's profile carries its surroundings, so the population spread
        is never taken as smaller than theirs (identical beads would
        otherwise make every bead near a neighbour an outlier).

    Returns
    -------
    distance : numpy.ndarray, shape (n,)
        Distances in standard deviations (chi-distributed with
        ``n_components`` degrees of freedom for a Gaussian population).
    brighter : numpy.ndarray, shape (n,), bool
        Whether each core is brighter (less bead-like) than the population
        centre's.
    """
    from scipy.stats import chi2

    x = np.asarray(profiles, float)
    core = np.asarray(core, float)
    n = len(x)
    k = int(min(n_components, x.shape[1], max(n - 3, 1)))
    start = max(k + 3, int(np.ceil(start_fraction * n)))
    inliers = np.zeros(n, bool)
    inliers[np.argsort(core, kind="stable")[:start]] = True
    cut = chi2.ppf(0.975, k)
    # Covariance of a Gaussian truncated at the cut is too small by this.
    consistency = 0.975 / chi2.cdf(cut, k + 2)
    d2 = np.zeros(n)
    mu_core = core.mean()
    for it in range(20):
        mu = x[inliers].mean(axis=0)
        mu_core = core[inliers].mean()
        _, _, vt = np.linalg.svd(x[inliers] - mu, full_matrices=False)
        scores = (x - mu) @ vt[:k].T
        cov = np.atleast_2d(np.cov(scores[inliers].T))
        if it > 0:
            cov = cov * consistency
        if floor_cov is not None:
            cov = cov + vt[:k] @ floor_cov @ vt[:k].T
        # A tiny floor keeps identical profiles (synthetic data) finite.
        cov = cov + np.eye(k) * 1e-9 * max(np.trace(cov), 1e-12)
        d2 = np.einsum("ij,jk,ik->i", scores, np.linalg.inv(cov), scores)
        new = d2 <= cut
        if new.sum() < k + 3 or np.array_equal(new, inliers):
            break
        inliers = new
    return np.sqrt(np.maximum(d2, 0)), core > mu_core


def merge_close(
    xyz: np.ndarray, distance: float, scores: np.ndarray, same_object: float
) -> tuple[np.ndarray, np.ndarray]:
    """Remove duplicates: one coordinate per group of coordinates closer than
    ``distance``.

    Greedy by decreasing score: the best remaining coordinate absorbs all
    remaining coordinates within ``distance``; it is replaced by the average
    of those within ``same_object`` of it (the same object found twice),
    while farther ones (a weaker neighbour) are dropped rather than averaged
    in, which would move the centre off both objects.

    Parameters
    ----------
    xyz : numpy.ndarray, shape (n, 3)
        Coordinates in voxels.
    distance : float
        Merge radius in voxels (paper: 1.5 bead diameters).
    scores : numpy.ndarray, shape (n,)
        Higher is better (mirror correlation).
    same_object : float
        Radius in voxels within which coordinates are averaged.

    Returns
    -------
    merged : numpy.ndarray, shape (m, 3)
    kept : numpy.ndarray, shape (m,), int
        Index of the coordinate that absorbed each group.
    """
    xyz = np.asarray(xyz, float).reshape(-1, 3)
    n = len(xyz)
    if n == 0:
        return xyz, np.zeros(0, int)
    tree = cKDTree(xyz)
    free = np.ones(n, bool)
    merged, kept = [], []
    for i in np.argsort(-np.asarray(scores, float), kind="stable"):
        if not free[i]:
            continue
        near = np.array(tree.query_ball_point(xyz[i], distance), int)
        near = near[free[near]]
        free[near] = False
        close = near[np.linalg.norm(xyz[near] - xyz[i], axis=1) <= same_object]
        merged.append(xyz[close].mean(axis=0))
        kept.append(i)
    return np.array(merged), np.array(kept, int)
