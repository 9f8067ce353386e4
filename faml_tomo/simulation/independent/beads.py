"""Gold fiducial beads: placement in or on the slab, and their exit waves
stamped into a rendered wave.

The exit wave of one bead comes from the first-principles table
(:func:`faml_tomo.simulation.gold.exit_wave_profile`, abTEM multislice,
band-limited to 4 Å). A bead inside the ice displaces it: the wave is
multiplied by ``exp((-i sigma V_ice + 1 / (2 mfp_ice)) * chord(r))`` for the
fraction of the bead in the ice. The profile is band-limited to the render
grid by a Hankel-transform low-pass (so that point sampling does not alias)
and stamped as a product, so overlapping beads multiply their
transmissions.
"""

import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import List, Optional, Tuple

import numpy as np
from scipy.special import j0

from ...errors import InputError
from .slab import SlabGeometry

logger = logging.getLogger(__name__)

__all__ = ["BeadSet", "place_beads", "bead_wave_profile", "project_beads", "stamp_beads"]

_MAX_TRIES = 2000


@dataclass(frozen=True)
class BeadSet:
    """Gold beads of one specimen.

    Attributes
    ----------
    positions : numpy.ndarray, shape (n, 3)
        Centres ``(x, y, z)`` in tomogram voxels.
    diameters_A : numpy.ndarray, shape (n,)
        Diameters, Å.
    ice_fraction : numpy.ndarray, shape (n,)
        Fraction of each bead inside the ice (0-1).
    cluster : numpy.ndarray of int, shape (n,)
        Cluster index: touching beads share one (0, 1, ... in order of
        appearance).
    """

    positions: np.ndarray
    diameters_A: np.ndarray
    ice_fraction: np.ndarray
    cluster: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.diameters_A)


def _draw_position(
    slab: SlabGeometry, radius_vox: float, surface: bool, rng: np.random.Generator
) -> Tuple[np.ndarray, float]:
    """One random bead centre (voxels) and its fraction in the ice."""
    nz, ny, nx = slab.shape
    m = radius_vox + 3
    x, y = rng.uniform(m, nx - m), rng.uniform(m, ny - m)
    lo, hi = (float(v) for v in slab.bounds(x))
    if surface:
        # from touching the surface inside to touching it outside
        off = rng.uniform(-1.0, 1.0) * radius_vox
        z = (hi + off) if rng.random() < 0.5 else (lo - off)
        frac = float(np.clip(0.5 - 0.5 * off / radius_vox, 0.0, 1.0))
    else:
        z = (
            rng.uniform(lo + radius_vox, hi - radius_vox)
            if hi - lo > 2 * radius_vox
            else 0.5 * (lo + hi)
        )
        frac = 1.0
    z = float(np.clip(z, radius_vox + 1, nz - radius_vox - 2))
    return np.array([x, y, z]), frac


def _touching(
    parent: np.ndarray, r_parent: float, r_new: float, slab: SlabGeometry, rng: np.random.Generator
) -> Optional[np.ndarray]:
    """A centre touching ``parent``, in a random direction that keeps it in
    the volume (mostly lateral: beads settle side by side)."""
    nz, ny, nx = slab.shape
    for _ in range(50):
        v = rng.normal(size=3) * np.array([1.0, 1.0, 0.4])
        v /= np.linalg.norm(v)
        p = parent + v * (r_parent + r_new + 0.05)
        lim = np.array([nx, ny, nz]) - r_new - 2
        if np.all(p > r_new + 1) and np.all(p < lim):
            return p
    return None


def _fits(
    p: np.ndarray, r: float, group: int, pos: list, radii: list, groups: list, dmin: float
) -> bool:
    """No overlap with any bead; at least ``dmin`` from beads of other
    clusters."""
    for q, rq, g in zip(pos, radii, groups):
        d = float(np.linalg.norm(p - q))
        if d < r + rq - 1e-6 or (g != group and d < dmin):
            return False
    return True


def place_beads(
    slab: SlabGeometry,
    n: int,
    diameter_A: float,
    rng: np.random.Generator,
    diameter_sd: float = 0.0,
    surface_fraction: float = 0.5,
    cluster_fraction: float = 0.0,
    min_distance_A: float = 0.0,
) -> BeadSet:
    """Random gold beads in the slab and on its surfaces.

    Parameters
    ----------
    slab : SlabGeometry
    n : int
        Number of beads.
    diameter_A, diameter_sd : float
        Mean diameter (Å) and relative standard deviation (clipped to
        50-200 Å).
    rng : numpy.random.Generator
    surface_fraction : float
        Fraction of the beads that start a cluster on a slab surface.
    cluster_fraction : float
        Fraction of the beads placed touching an earlier bead (joining its
        cluster: pairs, chains, small clumps).
    min_distance_A : float
        Smallest centre distance between beads of different clusters (0:
        two diameters).

    Returns
    -------
    BeadSet
        Fewer than ``n`` beads (with a warning) when they do not fit.
    """
    px = slab.pixel_size_A
    diam = np.clip(diameter_A * (1 + diameter_sd * rng.standard_normal(n)), 50.0, 200.0)
    dmin = (min_distance_A or 2.0 * diameter_A) / px
    pos: list = []
    radii: list = []
    fr: list = []
    groups: list = []
    for k in range(n):
        r = 0.5 * diam[k] / px
        p, g, f = None, len(pos), 1.0
        if pos and rng.random() < cluster_fraction:
            j = int(rng.integers(len(pos)))
            p, g, f = _touching(pos[j], radii[j], r, slab, rng), groups[j], fr[j]
            if p is None or not _fits(p, r, g, pos, radii, groups, dmin):
                p, g = None, len(pos)
        tries = 0
        while p is None and tries < _MAX_TRIES:
            tries += 1
            cand, f = _draw_position(slab, r, rng.random() < surface_fraction, rng)
            if _fits(cand, r, g, pos, radii, groups, dmin):
                p = cand
        if p is None:
            logger.warning("placed only %d of %d beads (min distance %.0f Å)", k, n, dmin * px)
            break
        pos.append(p)
        radii.append(r)
        fr.append(f)
        groups.append(g)
    _, cluster = np.unique(np.array(groups, int), return_inverse=True)
    return BeadSet(
        np.array(pos, float).reshape(-1, 3),
        2 * px * np.array(radii, float),
        np.array(fr, float),
        cluster.astype(int),
    )


@lru_cache(maxsize=256)
def bead_wave_profile(
    diameter_A: float,
    voltage_kv: float,
    kmax: float,
    ice_fraction: float = 0.0,
    ice_potential_V: float = 4.5,
    ice_mfp_A: float = 3500.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Radial exit wave of one bead, band-limited for a render grid.

    Parameters
    ----------
    diameter_A, voltage_kv : float
        Bead diameter (Å) and voltage (kV).
    kmax : float
        Band limit, cycles/Å (half the render grid's sampling frequency; the
        table's own band is 0.25); a cosine roll-off over its last 15 %.
    ice_fraction, ice_potential_V, ice_mfp_A : float
        Fraction of the bead in ice, the ice's potential (V) and inelastic
        mean free path (Å): the ice the bead displaces.

    Returns
    -------
    r : numpy.ndarray, shape (m,)
        Radii, Å (0.25 Å steps).
    psi : numpy.ndarray, complex128, shape (m,)
        Exit wave, 1 far from the bead.
    """
    from ..gold import exit_wave_profile
    from .electron_optics import interaction_constant

    if not kmax > 0:
        raise InputError(f"kmax must be > 0, got {kmax}")
    rad = 0.5 * diameter_A
    r_in, psi = exit_wave_profile(diameter_A, voltage_kv, np.arange(0.25, rad * 1.5 + 30, 0.5))
    chord = 2 * np.sqrt(np.clip(rad * rad - r_in * r_in, 0, None))
    sigma = interaction_constant(voltage_kv)
    psi = psi * np.exp(ice_fraction * chord * (-1j * sigma * ice_potential_V + 0.5 / ice_mfp_A))
    g = psi - 1.0
    dr = r_in[1] - r_in[0]
    band = min(kmax, 0.25)
    k = np.linspace(0.0, band, int(np.ceil(band * 8 * r_in[-1])) + 2)
    dk = k[1] - k[0]
    spec = (j0(2 * np.pi * np.outer(k, r_in)) @ (g * r_in)) * 2 * np.pi * dr
    edge = np.clip((k - 0.85 * band) / (0.15 * band), 0, 1)
    spec *= 0.5 * (1 + np.cos(np.pi * edge))
    r_out = np.arange(0.0, r_in[-1] + 40.0, 0.25)
    g_out = (j0(2 * np.pi * np.outer(r_out, k)) @ (spec * k)) * 2 * np.pi * dk
    return r_out, 1.0 + g_out


def project_beads(positions: np.ndarray, angle_deg: float, shape: Tuple[int, ...]) -> np.ndarray:
    """Image positions ``(u, v)`` (tomogram pixels) of bead centres at a
    tilt: ``u = (x - cx) cos + (z - cz) sin + cx``, ``v = y``; shape (n, 2)."""
    nz, ny, nx = shape
    p = np.asarray(positions, float).reshape(-1, 3)
    th = np.radians(angle_deg)
    u = (p[:, 0] - nx // 2) * np.cos(th) + (p[:, 2] - nz // 2) * np.sin(th) + nx // 2
    return np.column_stack([u, p[:, 1]])


def stamp_beads(
    wave: np.ndarray,
    centres_fine: np.ndarray,
    profiles: List[Tuple[np.ndarray, np.ndarray]],
    sampling_A: float,
) -> None:
    """Multiply a rendered wave by bead exit waves (in place).

    Parameters
    ----------
    wave : numpy.ndarray, complex, shape (my, mx)
        Wave on the render grid.
    centres_fine : numpy.ndarray, shape (n, 2)
        Bead centres ``(column, row)`` on the render grid (fractional).
    profiles : list of (r, psi)
        Radial profile of each bead (:func:`bead_wave_profile`).
    sampling_A : float
        Render-grid sampling, Å.
    """
    my, mx = wave.shape
    for (cu, cv), (r, psi) in zip(np.asarray(centres_fine, float), profiles):
        reach = r[-1] / sampling_A
        u0, u1 = max(int(np.floor(cu - reach)), 0), min(int(np.ceil(cu + reach)) + 1, mx)
        v0, v1 = max(int(np.floor(cv - reach)), 0), min(int(np.ceil(cv + reach)) + 1, my)
        if u1 <= u0 or v1 <= v0:
            continue
        du = (np.arange(u0, u1) - cu) * sampling_A
        dv = (np.arange(v0, v1) - cv) * sampling_A
        rr = np.sqrt(dv[:, None] ** 2 + du[None, :] ** 2)
        wave[v0:v1, u0:u1] *= np.interp(rr, r, psi, right=1.0).astype(wave.dtype)
