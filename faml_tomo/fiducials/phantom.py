"""A small synthetic tomogram with gold beads, for tests and quick checks.

Dark solid spheres (gold beads) among a denser-than-water protein-like
background (blobs of a few nm), vesicle membranes, noise, and a single-axis
missing wedge (tilt about Y, applied in Fourier space) that elongates
everything along Z and adds the streaks of a limited tilt range.  It is not a
projection/back-projection simulation (see :mod:`faml_tomo.simulation` for
that); it gives the fiducial finder realistic distractors in a second.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

logger = logging.getLogger(__name__)

__all__ = ["BeadPhantom", "bead_phantom", "wedge_mask"]


@dataclass
class BeadPhantom:
    """Phantom tomogram and its ground truth.

    Attributes
    ----------
    volume : numpy.ndarray, shape (nz, ny, nx), float32
        The tomogram (beads dark).
    beads : numpy.ndarray, shape (n, 3)
        Bead centres ``(x, y, z)`` in voxels.
    sampling_rate : float
        Å/voxel.
    bead_diameter_nm : float
        Bead diameter in nm.
    """

    volume: np.ndarray
    beads: np.ndarray
    sampling_rate: float
    bead_diameter_nm: float


def wedge_mask(shape: Sequence[int], tilt_min: float = -60.0, tilt_max: float = 60.0) -> np.ndarray:
    """Fourier mask (rfftn layout) of a single-axis tilt about Y.

    A component ``(kx, ky, kz)`` is kept when the direction of ``(kx, kz)``
    lies within the tilt range (its angle from the kx axis).

    Parameters
    ----------
    shape : tuple of int
        Volume shape ``(nz, ny, nx)``.
    tilt_min, tilt_max : float
        Tilt range in degrees.

    Returns
    -------
    numpy.ndarray, shape (nz, ny, nx // 2 + 1), float32
    """
    from ..simulation.optics import wedge_mask as _wedge_mask  # one wedge geometry

    return _wedge_mask(tuple(shape), tilt_min, tilt_max, rfft=True)


def _place_spheres(vol, centres, radius, value, shell=None):
    """Add ``value`` inside (anti-aliased) spheres, or in shells of thickness
    ``shell``, at ``centres`` (x, y, z)."""
    nz, ny, nx = vol.shape
    r_out = radius + 1.5
    for cx, cy, cz in centres:
        lo = [int(np.floor(c - r_out)) for c in (cz, cy, cx)]
        hi = [int(np.ceil(c + r_out)) + 1 for c in (cz, cy, cx)]
        lo = [max(v, 0) for v in lo]
        hi = [min(v, n) for v, n in zip(hi, (nz, ny, nx))]
        if any(h <= lo_ for lo_, h in zip(lo, hi)):
            continue
        z, y, x = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
        if shell is None:
            w = np.clip(radius + 0.5 - d, 0, 1)
        else:
            w = np.clip(shell / 2 + 0.5 - np.abs(d - radius), 0, 1)
        vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += value * w


def bead_phantom(
    shape: tuple[int, int, int] = (64, 160, 160),
    sampling_rate: float = 10.0,
    bead_diameter_nm: float = 10.0,
    n_beads: int = 20,
    n_proteins: int = 600,
    n_vesicles: int = 3,
    bead_contrast: float = 10.0,
    noise: float = 1.0,
    tilt_range: tuple[float, float] | None = (-60.0, 60.0),
    seed: int = 0,
    slab: tuple[float, float] = (0.2, 0.8),
) -> BeadPhantom:
    """Make a synthetic tomogram with gold beads and distractors.

    Parameters
    ----------
    shape : tuple of int
        ``(nz, ny, nx)`` in voxels.
    sampling_rate : float
        Å/voxel.
    bead_diameter_nm : float
        Bead diameter in nm.
    n_beads, n_proteins, n_vesicles : int
        Number of beads, protein-like blobs (2-8 nm, random ellipsoids) and
        vesicles (membranes 4 nm thick, 15-35 nm radius).
    bead_contrast : float
        Density of gold relative to protein (protein density is 1; the mean
        inner potential of gold is about 12 times that of protein).
    noise : float
        SD of the white noise added before the wedge, relative to protein.
    tilt_range : tuple of float or None
        Tilt range in degrees for the missing wedge (None: no wedge).
    seed : int
        Random seed.
    slab : tuple of float
        Fractions of ``nz`` bounding the specimen in Z; beads sit anywhere in
        it, at least one box half away from the XY borders.

    Returns
    -------
    BeadPhantom
    """
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    vol = np.zeros(shape, np.float32)
    d_px = bead_diameter_nm * 10.0 / sampling_rate
    z0, z1 = slab[0] * nz, slab[1] * nz

    # Protein-like background: ellipsoidal blobs, some as dense as a small bead.
    for _ in range(n_proteins):
        c = rng.uniform([0, 0, z0], [nx, ny, z1])
        size = rng.uniform(2.0, 8.0) * 10.0 / sampling_rate  # nm -> px
        _place_spheres(vol, [c], size / 2, rng.uniform(0.6, 1.4))
    for _ in range(n_vesicles):
        r = rng.uniform(15.0, 35.0) * 10.0 / sampling_rate
        c = rng.uniform([r, r, z0], [nx - r, ny - r, z1])
        _place_spheres(vol, [c], r, 1.5, shell=4.0 * 10.0 / sampling_rate)

    # Beads well separated (>= 2 diameters) so that the truth is unambiguous.
    margin = max(d_px, 4.0)
    placed: list[np.ndarray] = []
    tries = 0
    while len(placed) < n_beads and tries < 100 * n_beads:
        tries += 1
        c = rng.uniform(
            [margin, margin, max(z0, margin)], [nx - margin, ny - margin, min(z1, nz - margin)]
        )
        if all(np.linalg.norm(c - b) >= 2.5 * d_px for b in placed):
            placed.append(c)
    beads = np.array(placed, float).reshape(-1, 3)
    _place_spheres(vol, beads, d_px / 2, bead_contrast)

    vol += rng.normal(0, noise, shape).astype(np.float32)
    if tilt_range is not None:
        spec = sfft.rfftn(vol, workers=1)
        spec *= wedge_mask(shape, *tilt_range)
        vol = sfft.irfftn(spec, s=shape, workers=1).astype(np.float32)
    # Slight blur (reconstruction interpolation), then density -> dark.
    vol = ndimage.gaussian_filter(vol, 0.5)
    return BeadPhantom(
        volume=-vol.astype(np.float32),
        beads=beads,
        sampling_rate=float(sampling_rate),
        bead_diameter_nm=float(bead_diameter_nm),
    )
