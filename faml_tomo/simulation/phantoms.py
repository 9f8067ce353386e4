"""Structures to simulate: procedural phantoms and density maps from MRC files.

All structures are density volumes indexed ``[z, y, x]`` with values >= 0
(protein is positive; the acquisition simulators turn it into cryo-ET
contrast), centred on voxel ``n // 2`` (the rotation centre of
:mod:`faml_tomo.geometry`).

Procedural phantoms need no file, so demos and tests never depend on
external data.  They are unions of soft-edged ellipsoids defined in units of
the phantom's diameter and rendered at any pixel size and box:

``ring7``
    A GroEL-like double ring: two stacked rings of 7 subunits about Y.
``ring7_cap``
    The same double ring with a GroES-like dome on one end (a pair of similar
    shapes for classification tests).
``twolobe``
    A ribosome-like asymmetric pair of lobes with a stalk.
``lshape``
    Two rods joined at a right angle with a knob (clearly different from the
    rings).
"""

import logging
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from ..errors import InputError
from ..io.mrc import read_mrc, require_voxel_size
from ..typealiases import PathLike

logger = logging.getLogger(__name__)

__all__ = [
    "PHANTOMS",
    "make_phantom",
    "load_structure",
    "get_structure",
    "structure_extent",
    "check_box",
]


def _ring7(cap):
    prims = []
    for ring, y in enumerate((-0.15, 0.15)):
        for j in range(7):
            a = 2 * np.pi * j / 7
            c = (0.28 * np.cos(a), y, 0.28 * np.sin(a))
            # Subunits elongated along Y and tangentially, like GroEL's.
            rot = Rotation.from_euler("y", -a).as_matrix()
            prims.append((c, (0.10, 0.14, 0.12), rot))
    if cap:
        prims.append(((0.0, 0.35, 0.0), (0.22, 0.06, 0.22), None))
        prims.append(((0.0, 0.41, 0.0), (0.10, 0.04, 0.10), None))
    return prims


def _twolobe():
    large = Rotation.from_euler("zyx", (20, 10, 0), degrees=True).as_matrix()
    small = Rotation.from_euler("zyx", (-30, 25, 10), degrees=True).as_matrix()
    return [
        ((-0.06, -0.10, 0.00), (0.30, 0.24, 0.27), large),
        ((0.10, 0.20, 0.05), (0.25, 0.13, 0.19), small),
        ((0.30, -0.12, -0.12), (0.11, 0.05, 0.05), None),  # stalk
        ((-0.25, 0.10, 0.12), (0.08, 0.08, 0.06), None),
    ]  # knob


def _lshape():
    return [
        ((0.0, -0.25, 0.0), (0.36, 0.10, 0.12), None),
        ((-0.26, 0.05, 0.0), (0.10, 0.30, 0.12), None),
        ((0.20, 0.04, 0.10), (0.10, 0.10, 0.10), None),
    ]


# name -> (primitives, family): members of a family share one scale, so
# ``ring7`` and ``ring7_cap`` have identical rings.
PHANTOMS = {
    "ring7": (lambda: _ring7(cap=False), "ring7_cap"),
    "ring7_cap": (lambda: _ring7(cap=True), "ring7_cap"),
    "twolobe": (_twolobe, "twolobe"),
    "lshape": (_lshape, "lshape"),
}


def _bounding_radius(prims):
    return max(np.linalg.norm(c) + max(r) for c, r, _ in prims)


def _primitives(name):
    make, family = PHANTOMS[name]
    return make(), _bounding_radius(PHANTOMS[family][0]())


def check_box(extent_px: float, box: int, what: str) -> None:
    """Raise :class:`InputError` when a structure ``extent_px`` voxels across
    does not fit in a ``box``."""
    if extent_px > box:
        raise InputError(
            f"box of {box} px is smaller than the structure {what} "
            f"({extent_px:.1f} px across after resampling); use a larger "
            f"box or a larger pixel size"
        )


def make_phantom(
    name: str, box: int, pixel_size: float, diameter: float = 240.0, edge: float | None = None
) -> np.ndarray:
    """Render a procedural phantom.

    Parameters
    ----------
    name : str
        One of :data:`PHANTOMS` (``ring7``, ``ring7_cap``, ``twolobe``,
        ``lshape``).
    box : int
        Box size in voxels.
    pixel_size : float
        Voxel size in Å.
    diameter : float
        Diameter of the phantom's bounding sphere in Å (default 240 Å, about
        a ribosome; 12 px at 20 Å/px).
    edge : float, optional
        Width of the soft edge in Å (default 0.6 voxel, which keeps the
        volume band-limited).

    Returns
    -------
    numpy.ndarray, shape (box, box, box), float32
        Density in [0, 1], centred on voxel ``box // 2``.

    Raises
    ------
    InputError
        Unknown name, non-positive sizes, or a phantom larger than the box.
    """
    if name not in PHANTOMS:
        raise InputError(
            f"unknown phantom {name!r}; choose one of {', '.join(PHANTOMS)} or give an MRC file"
        )
    _check_sizes(box, pixel_size)
    if not np.isfinite(diameter) or diameter <= 0:
        raise InputError(f"phantom diameter must be > 0 Å, got {diameter}")
    check_box(diameter / pixel_size, box, f"{name} (diameter {diameter:g} Å)")
    prims, radius = _primitives(name)
    scale = 0.5 * diameter / radius  # Å per phantom unit
    width = 0.6 * pixel_size if edge is None else float(edge)
    c = box // 2
    ax = (np.arange(box) - c) * pixel_size
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij", sparse=True)
    out = np.zeros((box, box, box), np.float32)
    for centre, radii, rot in prims:
        cx, cy, cz = np.asarray(centre) * scale
        r = np.asarray(radii) * scale
        dx, dy, dz = x - cx, y - cy, z - cz
        if rot is not None:  # body coordinates: R^T (x - c)
            dx, dy, dz = (
                rot[0, 0] * dx + rot[1, 0] * dy + rot[2, 0] * dz,
                rot[0, 1] * dx + rot[1, 1] * dy + rot[2, 1] * dz,
                rot[0, 2] * dx + rot[1, 2] * dy + rot[2, 2] * dz,
            )
        q = np.sqrt((dx / r[0]) ** 2 + (dy / r[1]) ** 2 + (dz / r[2]) ** 2)
        # Signed distance approximated on the smallest semi-axis.
        dens = 0.5 * (1 - np.tanh((q - 1) * r.min() / width))
        np.maximum(out, dens, out=out)
    return out


def _check_sizes(box, pixel_size):
    if int(box) != box or box < 4:
        raise InputError(f"box must be an integer >= 4 voxels, got {box}")
    if not np.isfinite(pixel_size) or pixel_size <= 0:
        raise InputError(f"pixel size must be > 0 Å, got {pixel_size}")


def structure_extent(vol: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Extent of a density map about its centre voxel ``n // 2``.

    Parameters
    ----------
    vol : numpy.ndarray, shape (nz, ny, nx)
    threshold : float
        Voxels above ``threshold * max`` count as the structure.

    Returns
    -------
    numpy.ndarray, shape (3,)
        Full extent ``2 max |x - c| + 1`` along x, y, z in voxels.
    """
    vol = np.asarray(vol)
    idx = np.argwhere(vol > threshold * vol.max())
    if idx.size == 0:
        return np.zeros(3)
    c = np.array(vol.shape) // 2
    half = np.abs(idx - c).max(axis=0)[::-1]
    return 2 * half + 1.0


def load_structure(
    path: PathLike, pixel_size: float, box: int, threshold: float = 0.02
) -> np.ndarray:
    """Read a density MRC and resample it to a pixel size and box.

    The map's centre voxel ``n // 2`` stays the centre (no re-centring), so
    the map's own frame is the ground-truth frame.  Downsampling is
    anti-aliased with a Gaussian (sigma = (factor - 1) / 2 source voxels);
    interpolation is a cubic spline; negative overshoots are clipped when
    the source has no negative values.

    Parameters
    ----------
    path : str or Path
        Density map, e.g. ``../shared/data/structures/4v4r.mrc``.
    pixel_size : float
        Requested voxel size in Å.
    box : int
        Requested box size in voxels (cubic).
    threshold : float
        Relative density above which a voxel is part of the structure, for
        the size check.

    Returns
    -------
    numpy.ndarray, shape (box, box, box), float32

    Raises
    ------
    InputError
        The file is not a usable MRC, or the structure is larger than the
        box at the requested pixel size.
    """
    _check_sizes(box, pixel_size)
    src, src_px = read_mrc(path)
    src_px = require_voxel_size(src_px, path)
    factor = pixel_size / src_px
    extent = structure_extent(src, threshold) / factor
    check_box(
        float(extent.max()),
        box,
        f"in {Path(path).name} ({src_px:g} Å/px source, extent "
        f"{' x '.join(f'{e * pixel_size:.0f}' for e in extent)} Å)",
    )
    work = src.astype(np.float64)
    if factor > 1:
        work = ndimage.gaussian_filter(work, (factor - 1) / 2)
    c_src = np.array(src.shape) // 2
    c_out = box // 2
    offset = c_src - factor * c_out
    out = ndimage.affine_transform(
        work,
        np.diag(np.full(3, factor)),
        offset=offset,
        output_shape=(box,) * 3,
        order=3,
        mode="constant",
    )
    if src.min() >= 0:
        np.maximum(out, 0, out=out)
    logger.info(
        "loaded %s: %s at %.2f Å/px -> %d^3 at %.2f Å/px", path, src.shape, src_px, box, pixel_size
    )
    return out.astype(np.float32)


def get_structure(spec: str, box: int, pixel_size: float, diameter: float = 240.0) -> np.ndarray:
    """A phantom by name or a density map by path (see :func:`make_phantom`
    and :func:`load_structure`)."""
    if str(spec) in PHANTOMS:
        return make_phantom(str(spec), box, pixel_size, diameter)
    path = Path(spec)
    if not path.exists():
        raise InputError(
            f"structure {spec!r} is neither a phantom "
            f"({', '.join(PHANTOMS)}) nor an existing MRC file"
        )
    return load_structure(path, pixel_size, box)
