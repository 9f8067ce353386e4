"""Voxelised specimen of the independent model: the potential relative to
ice of protein-like objects, lipid vesicles, pasted density maps and a
carbon film, cut to the ice slab and cleared where the beads are.

Protein-like objects are random ellipsoids (semi-axes 15-130 Å, random
orientation) and clusters of 3-12 small spheres (15-35 Å radius), added
until their nominal volume reaches the requested fraction of the slab.
Vesicles are bilayer shells of 150-600 Å radius that fit the local
thickness. The carbon film is an amorphous layer (potential modulated by
25 % smoothed noise) under the top surface on one side of a straight edge.
"""

import logging
from functools import lru_cache
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ...errors import InputError
from .beads import BeadSet
from .params import IndependentParams
from .shapes import add_ellipsoid, add_shell, add_sphere_cluster, local_box, occupancy, paste_map
from .slab import SlabGeometry

logger = logging.getLogger(__name__)

__all__ = ["build_specimen", "load_density_maps", "EDGE_A"]

EDGE_A = 8.0  # Å, smallest edge width of objects


def _random_centre(slab: SlabGeometry, reach_vox: float, rng: np.random.Generator):
    nz, ny, nx = slab.shape
    x, y = rng.uniform(0, nx), rng.uniform(0, ny)
    lo, hi = slab.bounds(x)
    if hi - lo > 2 * reach_vox:
        z = rng.uniform(lo + reach_vox, hi - reach_vox)
    else:
        z = 0.5 * (lo + hi)
    return np.array([x, y, z])


def _add_proteins(
    vol: np.ndarray, slab: SlabGeometry, fraction: float, value: float, rng: np.random.Generator
) -> int:
    """Ellipsoids and sphere clusters up to a nominal volume fraction."""
    px = slab.pixel_size_A
    nz, ny, nx = slab.shape
    edge = max(EDGE_A, px)
    target = fraction * float(np.mean(slab.thickness_at(np.arange(nx)))) * nx * ny * px * px
    filled, count = 0.0, 0
    while filled < target:
        count += 1
        if rng.random() < 0.55:
            a = rng.uniform(25, 100) * rng.uniform(0.6, 1.3, 3)
            c = _random_centre(slab, a.max() / px, rng)
            rot = Rotation.random(random_state=rng).as_matrix()
            add_ellipsoid(vol, c, a, rot, value, px, edge)
            filled += 4 / 3 * np.pi * np.prod(a)
        else:
            k = int(rng.integers(3, 13))
            radii = rng.uniform(15, 35, k)
            spread = rng.uniform(20, 60)
            c = _random_centre(slab, (spread + 35) / px, rng)
            offs = rng.normal(scale=spread / px, size=(k, 3)) * np.array([1, 1, 0.8])
            add_sphere_cluster(vol, c + offs, radii, value, px, edge)
            filled += float(np.sum(4 / 3 * np.pi * radii**3))
    return count


def _add_vesicles(
    vol: np.ndarray, slab: SlabGeometry, n: int, value: float, rng: np.random.Generator
) -> None:
    px = slab.pixel_size_A
    for _ in range(n):
        x = rng.uniform(0, slab.shape[2])
        rmax = min(600.0, 0.45 * float(slab.thickness_at(x)) - 25.0)
        if rmax < 150.0:
            logger.info("slab too thin for a vesicle at x = %.0f", x)
            continue
        r = rng.uniform(150.0, rmax)
        c = _random_centre(slab, (r + 25) / px, rng)
        c[0] = x
        lo, hi = slab.bounds(x)
        c[2] = np.clip(c[2], lo + (r + 25) / px, hi - (r + 25) / px)
        add_shell(vol, c, r, value, px)


def _add_carbon(
    vol: np.ndarray, slab: SlabGeometry, value: float, rng: np.random.Generator
) -> None:
    """Amorphous carbon layer under the top surface, one side of the edge."""
    if slab.carbon_coverage <= 0:
        return
    px = slab.pixel_size_A
    nz, ny, nx = slab.shape
    x = np.arange(nx)
    top = slab.bounds(x)[1]  # (nx,)
    depth = slab.carbon_thickness_A / px
    z0 = max(int(np.floor(top.min() - depth)) - 2, 0)
    z1 = min(int(np.ceil(top.max())) + 2, nz)
    zz = np.arange(z0, z1)[:, None, None].astype(np.float32)
    edge = max(EDGE_A, px)
    in_z = np.maximum(zz - top[None, None, :], (top[None, None, :] - depth) - zz) * px
    side = slab.carbon_distance(x[None, None, :], np.arange(ny)[None, :, None]) * px
    occ = occupancy(in_z, edge) * occupancy(-side, edge)
    tex = ndimage.gaussian_filter(
        rng.standard_normal(occ.shape).astype(np.float32), max(1.0, 10.0 / px)
    )
    tex *= 0.25 / max(float(tex.std()), 1e-6)
    block = vol[z0:z1]
    vol[z0:z1] = occ * value * (1 + tex) + (1 - occ) * block


@lru_cache(maxsize=32)
def _read_map(path: str, pixel_size_A: float) -> np.ndarray:
    from ...io.mrc import read_mrc, require_voxel_size

    data, voxel = read_mrc(path)
    voxel = require_voxel_size(voxel, path)
    data = np.clip(np.asarray(data, np.float32), 0, None)
    if abs(voxel - pixel_size_A) > 1e-3 * pixel_size_A:
        data = ndimage.zoom(data, voxel / pixel_size_A, order=1)
    return data


def load_density_maps(folder: str, pixel_size_A: float) -> Tuple[np.ndarray, ...]:
    """All ``.mrc`` maps of a folder resampled to a voxel size, values
    clipped at 0 (protein positive)."""
    paths = sorted(Path(folder).glob("*.mrc"))
    if not paths:
        raise InputError(f"structures_dir {folder!r} holds no .mrc files")
    return tuple(_read_map(str(p), float(pixel_size_A)) for p in paths)


def _add_structures(
    vol: np.ndarray,
    slab: SlabGeometry,
    folder: Optional[str],
    n: int,
    value: float,
    rng: np.random.Generator,
) -> None:
    """Paste ``n`` maps in random orientations, scaled so that their
    dense part (above 20 % of the maximum) has the protein potential."""
    if folder is None:
        raise InputError("structures need a folder of density maps (structures_dir)")
    maps = load_density_maps(folder, slab.pixel_size_A)
    for _ in range(n):
        m = maps[int(rng.integers(len(maps)))]
        rot = Rotation.random(random_state=rng).as_matrix()[::-1, ::-1]  # zyx
        c = (np.array(m.shape) - 1) / 2.0
        out = ndimage.affine_transform(m, rot.T, offset=c - rot.T @ c, order=1)
        dense = out > 0.2 * out.max()
        scale = value / max(float(out[dense].mean()), 1e-6) if dense.any() else 0.0
        centre = _random_centre(slab, max(m.shape) / 2, rng)
        paste_map(vol, np.clip(out * scale, 0, 1.5 * value), centre)


def _cut_to_slab(vol: np.ndarray, slab: SlabGeometry) -> None:
    nz, ny, nx = slab.shape
    lo, hi = slab.bounds(np.arange(nx))
    z = np.arange(nz, dtype=np.float32)[:, None]
    out = np.maximum(z - hi[None, :], lo[None, :] - z) * slab.pixel_size_A
    vol *= occupancy(out, max(EDGE_A, slab.pixel_size_A))[:, None, :]


def _clear_beads(vol: np.ndarray, beads: BeadSet, pixel_size_A: float) -> None:
    edge = max(EDGE_A, pixel_size_A)
    for p, d in zip(beads.positions, beads.diameters_A):
        box = local_box(vol.shape, p, (0.5 * d + edge) / pixel_size_A + 1)
        if box is None:
            continue
        sl, dz, dy, dx = box
        r = np.sqrt(dx * dx + dy * dy + dz * dz) * np.float32(pixel_size_A)
        vol[sl] *= 1 - occupancy(r - 0.5 * d, edge)


def build_specimen(
    params: IndependentParams, slab: SlabGeometry, beads: BeadSet, rng: np.random.Generator
) -> np.ndarray:
    """The specimen's potential relative to ice.

    Parameters
    ----------
    params : IndependentParams
        Uses the specimen fields (protein, vesicles, carbon, structures).
    slab : SlabGeometry
    beads : BeadSet
        Bead volumes are cleared (gold is added in the images).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, float32, shape (nz, ny, nx)
        Potential in V (relative to vitreous ice) per voxel.
    """
    vol = np.zeros(slab.shape, np.float32)
    n_obj = 0
    if params.protein_fraction > 0:
        n_obj = _add_proteins(vol, slab, params.protein_fraction, params.protein_potential_V, rng)
    _add_vesicles(vol, slab, params.n_vesicles, params.lipid_potential_V, rng)
    if params.n_structures > 0:
        _add_structures(
            vol, slab, params.structures_dir, params.n_structures, params.protein_potential_V, rng
        )
    _add_carbon(vol, slab, params.carbon_potential_V, rng)
    _cut_to_slab(vol, slab)
    _clear_beads(vol, beads, slab.pixel_size_A)
    logger.debug(
        "specimen: %d protein objects, %.1f %% of voxels above half the protein potential",
        n_obj,
        100 * float(np.mean(vol > 0.5 * params.protein_potential_V)),
    )
    return vol
