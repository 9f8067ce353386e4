"""The specimen slab of the tilt-series simulator (:mod:`.tiltseries`): ice
with gold beads, protein-like blobs, vesicles and carbon, as real-space
potential."""

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InputError
from .gold import n_orientations
from .tiltparams import SlabParams

logger = logging.getLogger(__name__)

_BLOB_SIGMAS = (15.0, 25.0, 40.0, 60.0)  # Å, protein-like size classes


@dataclass
class Slab:
    """Ground truth of a simulated specimen.

    Attributes
    ----------
    params : SlabParams
    beads : numpy.ndarray, shape (n_beads, 3)
        Bead centres ``(x, y, z)`` in full-resolution tomogram voxels.
    blobs : numpy.ndarray, shape (m, 3)
        Protein blob centres (voxels; may lie outside the field of view).
    blob_sigma : numpy.ndarray, shape (m,)
        Blob standard deviations in Å.
    vesicles : numpy.ndarray, shape (k, 3)
        Vesicle centres (voxels).
    vesicle_radius : numpy.ndarray, shape (k,)
        Mid-membrane radii in Å.
    bead_orientation : numpy.ndarray of int, shape (n_beads,), optional
        Lattice orientation of each bead in the multislice table (see
        :func:`.gold.n_orientations`); None or -1: the mean bead.
    """

    params: SlabParams
    beads: np.ndarray
    blobs: np.ndarray
    blob_sigma: np.ndarray
    vesicles: np.ndarray
    vesicle_radius: np.ndarray
    bead_orientation: Optional[np.ndarray] = None

    @property
    def bead_radius_px(self) -> float:
        """Bead radius in pixels."""
        return 0.5 * self.params.bead_diameter / self.params.pixel_size


def _place_beads(p: SlabParams, rng: np.random.Generator) -> np.ndarray:
    n = int(p.n_beads)
    px = p.pixel_size
    r_px = 0.5 * p.bead_diameter / px
    dmin = (3 * p.bead_diameter if p.bead_min_distance is None else p.bead_min_distance) / px
    margin = max(16.0, 2 * r_px) if p.bead_margin is None else p.bead_margin
    zc, half = p.nz // 2, 0.5 * p.slab_thickness / px
    zlo, zhi = zc - half + r_px, zc + half - r_px
    if p.nx - 1 - 2 * margin < 0 or p.ny - 1 - 2 * margin < 0:
        raise InputError(
            f"bead_margin ({margin:g} px) leaves no room in a {p.nx} x {p.ny} field of view"
        )
    beads = np.empty((0, 3))
    for _ in range(50):
        before = len(beads)
        if before >= n:
            break
        m = 20 * n + 100
        cand = np.column_stack(
            [
                rng.uniform(margin, p.nx - 1 - margin, m),
                rng.uniform(margin, p.ny - 1 - margin, m),
                rng.uniform(zlo, zhi, m),
            ]
        )
        if p.bead_layout == "surfaces":
            cand[:, 2] = np.where(rng.random(m) < 0.5, zlo, zhi)
        for c in cand:
            if len(beads) and np.min(np.sum((beads - c) ** 2, axis=1)) < dmin**2:
                continue
            beads = np.vstack([beads, c])
            if len(beads) >= n:
                break
        if len(beads) == before:  # a whole batch rejected: the slab is full
            break
    if len(beads) < n:
        raise InputError(
            f"cannot place {n} beads at least {dmin * px:g} Å apart in the "
            f"field of view (placed {len(beads)}); lower n_beads or "
            f"bead_min_distance"
        )
    n_pairs = int(round(p.bead_pair_fraction * n / 2))
    for i in range(n_pairs):
        # the last beads become partners touching the first ones
        j = n - 1 - i
        if j <= i:
            break
        direction = rng.normal(size=3)
        direction[2] *= 0.5
        direction /= np.linalg.norm(direction)
        partner = beads[i] + 2 * r_px * rng.uniform(1.0, 1.1) * direction
        partner[2] = np.clip(partner[2], zlo, zhi)
        partner[:2] = np.clip(partner[:2], margin, [p.nx - 1 - margin, p.ny - 1 - margin])
        beads[j] = partner
    return beads


def make_slab(
    params: SlabParams, rng: np.random.Generator | int | None = None, max_tilt: float = 60.0
) -> Slab:
    """Draw a random specimen.

    Parameters
    ----------
    params : SlabParams
    rng : numpy.random.Generator or int, optional
    max_tilt : float
        Largest |tilt| in degrees: the background extends sideways far
        enough to fill the field of view at that tilt.

    Returns
    -------
    Slab
    """
    p = params.validate()
    rng = np.random.default_rng(rng)
    beads = _place_beads(p, rng)
    px = p.pixel_size
    half = 0.5 * p.slab_thickness / px
    zc = p.nz // 2
    side = half * np.tan(np.radians(min(abs(max_tilt), 80))) + 8
    x0, x1 = -side, p.nx - 1 + side
    y0, y1 = -8, p.ny - 1 + 8
    volume = (x1 - x0) * (y1 - y0) * 2 * half * px**3  # Å^3
    pos, sig = [], []
    for s in _BLOB_SIGMAS:
        # Equal share of the protein mass per size class.
        m = int(
            round(p.protein_fraction * volume / len(_BLOB_SIGMAS) / ((2 * np.pi) ** 1.5 * s**3))
        )
        lim = max(half - s / px, 0)
        pos.append(
            np.column_stack(
                [rng.uniform(x0, x1, m), rng.uniform(y0, y1, m), zc + rng.uniform(-lim, lim, m)]
            )
        )
        sig.append(np.full(m, s))
    blobs = np.vstack(pos) if pos else np.empty((0, 3))
    blob_sigma = np.concatenate(sig) if sig else np.empty(0)
    k = int(p.n_vesicles)
    rmax_fit = 0.5 * p.slab_thickness - p.membrane_thickness
    lo, hi = min(p.vesicle_radius[0], rmax_fit), min(p.vesicle_radius[1], rmax_fit)
    if k and hi <= p.membrane_thickness:
        logger.warning("slab too thin for vesicles; none simulated")
        k = 0
    radius = rng.uniform(lo, hi, k)
    zlim = np.maximum(half - (radius + p.membrane_thickness) / px, 0)
    vesicles = np.column_stack(
        [
            rng.uniform(0, p.nx - 1, k),
            rng.uniform(0, p.ny - 1, k),
            zc + rng.uniform(-1, 1, k) * zlim,
        ]
    )
    orient = rng.integers(0, n_orientations(), len(beads)) if p.gold == "multislice" else None
    return Slab(p, beads, blobs, blob_sigma, vesicles.reshape(-1, 3), radius, orient)
