"""Voxelised primitives with smooth edges, drawn into a potential volume in
place: ellipsoids, spheres, bilayer shells and pasted maps.

Each primitive is evaluated in its bounding box only. Edges are linear
ramps of width ``edge_A`` (at least one voxel) across the surface, which is
close to the partial-volume (anti-aliased) voxelisation. Objects combine as
a union: a voxel keeps the stronger of the old and the new value, so
overlapping protein does not exceed its mean inner potential.
"""

import logging
from typing import Optional, Sequence, Tuple

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "local_box",
    "occupancy",
    "add_ellipsoid",
    "add_sphere",
    "add_sphere_cluster",
    "add_shell",
    "paste_map",
    "union",
]


def local_box(
    shape: Tuple[int, ...], centre_xyz: Sequence[float], half_vox: float
) -> Optional[Tuple[tuple, np.ndarray, np.ndarray, np.ndarray]]:
    """Slices of the box of half-size ``half_vox`` around a centre and the
    voxel offsets from the centre.

    Parameters
    ----------
    shape : tuple
        Volume shape ``(nz, ny, nx)``.
    centre_xyz : sequence of float
        Centre ``(x, y, z)`` in voxels.
    half_vox : float
        Half-size of the box, voxels.

    Returns
    -------
    (slices, dz, dy, dx) or None
        ``slices`` index the volume ``[z, y, x]``; ``dz, dy, dx`` are open
        grids (broadcastable) of offsets in voxels. ``None`` when the box
        misses the volume.
    """
    cz, cy, cx = (float(v) for v in centre_xyz[::-1])
    bounds = []
    for c, n in ((cz, shape[0]), (cy, shape[1]), (cx, shape[2])):
        lo, hi = max(int(np.floor(c - half_vox)), 0), min(int(np.ceil(c + half_vox)) + 1, n)
        if hi <= lo:
            return None
        bounds.append((lo, hi))
    (z0, z1), (y0, y1), (x0, x1) = bounds
    dz = (np.arange(z0, z1, dtype=np.float32) - np.float32(cz)).reshape(-1, 1, 1)
    dy = (np.arange(y0, y1, dtype=np.float32) - np.float32(cy)).reshape(1, -1, 1)
    dx = (np.arange(x0, x1, dtype=np.float32) - np.float32(cx)).reshape(1, 1, -1)
    return (slice(z0, z1), slice(y0, y1), slice(x0, x1)), dz, dy, dx


def occupancy(signed_distance_A: np.ndarray, edge_A: float) -> np.ndarray:
    """Fraction of a voxel inside a surface from the signed distance
    (negative inside), a linear ramp of width ``edge_A``."""
    return np.clip(0.5 - signed_distance_A / edge_A, 0.0, 1.0).astype(np.float32)


def union(vol: np.ndarray, slices: tuple, values: np.ndarray) -> None:
    """Keep, per voxel, the value of larger magnitude (in place)."""
    old = vol[slices]
    vol[slices] = np.where(np.abs(values) > np.abs(old), values, old)


def add_ellipsoid(
    vol: np.ndarray,
    centre_xyz: Sequence[float],
    semi_axes_A: "Sequence[float] | np.ndarray",
    rotation: np.ndarray,
    value: float,
    pixel_size_A: float,
    edge_A: float,
) -> None:
    """Draw a uniform ellipsoid (in place, union).

    Parameters
    ----------
    vol : numpy.ndarray, shape (nz, ny, nx), float32
    centre_xyz : sequence of float
        Centre ``(x, y, z)``, voxels.
    semi_axes_A : sequence of float
        Semi-axes along the body axes, Å.
    rotation : numpy.ndarray, shape (3, 3)
        Body-to-volume rotation acting on ``(x, y, z)``.
    value : float
        Potential inside, V.
    pixel_size_A, edge_A : float
        Voxel size and edge width, Å.
    """
    a = np.asarray(semi_axes_A, float)
    box = local_box(vol.shape, centre_xyz, (a.max() + edge_A) / pixel_size_A + 1)
    if box is None:
        return
    sl, dz, dy, dx = box
    r = np.asarray(rotation, np.float32).T * np.float32(pixel_size_A)  # volume -> body, Å
    body = [r[i, 0] * dx + r[i, 1] * dy + r[i, 2] * dz for i in range(3)]
    q = sum((b / np.float32(ai)) ** 2 for b, ai in zip(body, a))
    rho = np.sqrt(q)
    grad = np.sqrt(sum((b / np.float32(ai * ai)) ** 2 for b, ai in zip(body, a)))
    dist = (rho - 1) * rho / np.maximum(grad, 1e-6)  # ~ signed distance, Å
    union(vol, sl, value * occupancy(dist, edge_A))


def add_sphere(
    vol: np.ndarray,
    centre_xyz: Sequence[float],
    radius_A: float,
    value: float,
    pixel_size_A: float,
    edge_A: float,
) -> None:
    """Draw a uniform sphere (in place, union); see :func:`add_ellipsoid`."""
    box = local_box(vol.shape, centre_xyz, (radius_A + edge_A) / pixel_size_A + 1)
    if box is None:
        return
    sl, dz, dy, dx = box
    r = np.sqrt(dx * dx + dy * dy + dz * dz) * np.float32(pixel_size_A)
    union(vol, sl, value * occupancy(r - radius_A, edge_A))


def add_sphere_cluster(
    vol: np.ndarray,
    centres_xyz: np.ndarray,
    radii_A: np.ndarray,
    value: float,
    pixel_size_A: float,
    edge_A: float,
) -> None:
    """Draw the union of several uniform spheres in one pass (in place,
    union with the volume).

    Parameters
    ----------
    vol : numpy.ndarray, shape (nz, ny, nx), float32
    centres_xyz : numpy.ndarray, shape (k, 3)
        Sphere centres ``(x, y, z)``, voxels.
    radii_A : numpy.ndarray, shape (k,)
        Radii, Å.
    value : float
        Potential inside, V.
    pixel_size_A, edge_A : float
        Voxel size and edge width, Å.
    """
    centres = np.asarray(centres_xyz, float).reshape(-1, 3)
    radii = np.asarray(radii_A, float)
    lo = (centres - radii[:, None] / pixel_size_A).min(axis=0)
    hi = (centres + radii[:, None] / pixel_size_A).max(axis=0)
    mid = 0.5 * (lo + hi)
    box = local_box(vol.shape, mid, 0.5 * (hi - lo).max() + edge_A / pixel_size_A + 1)
    if box is None:
        return
    sl, dz, dy, dx = box
    px = np.float32(pixel_size_A)
    dist = None
    for c, r in zip(centres - mid, radii):
        d = np.sqrt((dx - c[0]) ** 2 + (dy - c[1]) ** 2 + (dz - c[2]) ** 2) * px - np.float32(r)
        dist = d if dist is None else np.minimum(dist, d)
    if dist is None:
        return
    union(vol, sl, value * occupancy(dist, edge_A))


def add_shell(
    vol: np.ndarray,
    centre_xyz: Sequence[float],
    radius_A: float,
    head_value: float,
    pixel_size_A: float,
) -> None:
    """Draw a lipid bilayer vesicle (in place, union): two head-group
    layers 36 Å apart (``head_value``, 5 Å Gaussian) around a low-density
    tail layer (``-0.3 * head_value``, 8 Å); layers are widened to half a
    voxel at coarse sampling with their integrated potential kept.

    Parameters
    ----------
    vol : numpy.ndarray, shape (nz, ny, nx), float32
    centre_xyz : sequence of float
        Centre ``(x, y, z)``, voxels.
    radius_A : float
        Radius of the bilayer mid-plane, Å.
    head_value : float
        Potential of the head groups relative to ice, V.
    pixel_size_A : float
        Voxel size, Å.
    """
    s_head = max(5.0, 0.5 * pixel_size_A)
    s_tail = max(8.0, 0.5 * pixel_size_A)
    reach = radius_A + 18.0 + 3 * s_head
    box = local_box(vol.shape, centre_xyz, reach / pixel_size_A + 1)
    if box is None:
        return
    sl, dz, dy, dx = box
    d = np.sqrt(dx * dx + dy * dy + dz * dz) * np.float32(pixel_size_A) - radius_A
    # layers widened for coarse voxels keep their integrated potential
    heads = np.exp(-0.5 * ((d - 18.0) / s_head) ** 2) + np.exp(-0.5 * ((d + 18.0) / s_head) ** 2)
    tails = np.exp(-0.5 * (d / s_tail) ** 2)
    prof = (5.0 / s_head) * heads - 0.3 * (8.0 / s_tail) * tails
    union(vol, sl, (head_value * prof).astype(np.float32))


def paste_map(vol: np.ndarray, density: np.ndarray, centre_xyz: Sequence[float]) -> None:
    """Paste a small density box (union) centred at ``centre_xyz`` (voxels,
    the box's ``n // 2`` voxel), clipped at the volume borders."""
    c = np.round(np.asarray(centre_xyz, float)[::-1]).astype(int)
    n = np.array(density.shape)
    lo = c - n // 2
    src, dst = [], []
    for ax in range(3):
        a, b = max(lo[ax], 0), min(lo[ax] + n[ax], vol.shape[ax])
        if b <= a:
            return
        dst.append(slice(a, b))
        src.append(slice(a - lo[ax], b - lo[ax]))
    sl = tuple(dst)
    union(vol, sl, density[tuple(src)].astype(np.float32))
