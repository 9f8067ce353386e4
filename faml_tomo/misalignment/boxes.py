"""Boxes around fiducials, as the misalignment networks see them.

Each box is 32^3 voxels at a sampling chosen so that the bead diameter spans
16 voxels (target sampling = bead diameter / 16 Å/px), so one network serves
every pixel size and bead size; the box voxel size in tomogram pixels
(``BoxSet.scale``) goes to the network beside the box, because the classes
are defined by residuals in tomogram pixels.  A box is normalised to zero mean and unit
standard deviation using the voxels outside a central sphere (the
background), which keeps the bead's contrast relative to the local noise.

Coordinates are voxel positions ``(x, y, z)`` in the tomogram array
``[z, y, x]``.  Boxes that reach past the tomogram border are padded with the
mean of their valid voxels and reported through ``outside_fraction``; no
coordinate is ever dropped, so scores stay in sync with coordinates.
"""

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ..errors import InputError
from ..models.network import BOX_SIZE

logger = logging.getLogger(__name__)

BEAD_SPAN_PX = 16  # bead diameter in box voxels
BACKGROUND_RADIUS = 12.0  # box voxels; the bead (radius 8) and its rim lie inside

__all__ = ["BoxSet", "target_sampling", "extract_boxes", "normalise_boxes"]


@dataclass
class BoxSet:
    """Boxes extracted around coordinates.

    Attributes
    ----------
    boxes : numpy.ndarray, shape (n, 32, 32, 32), float32
        Normalised boxes, indexed ``[i, z, y, x]``.
    coords : numpy.ndarray, shape (n, 3)
        The coordinates ``(x, y, z)`` in tomogram voxels, in input order.
    outside_fraction : numpy.ndarray, shape (n,)
        Fraction of each box that lay outside the tomogram (padded).
    sampling : float
        Sampling of the boxes in Å/voxel.
    scale : float
        Box voxel size in tomogram voxels (> 1 means the tomogram was
        binned, < 1 interpolated).
    """

    boxes: np.ndarray
    coords: np.ndarray
    outside_fraction: np.ndarray
    sampling: float
    scale: float


def target_sampling(bead_diameter_A: float) -> float:
    """Box sampling in Å/voxel for a bead diameter in Å (diameter / 16)."""
    return float(bead_diameter_A) / BEAD_SPAN_PX


def _check(
    tomogram: Any, coords: ArrayLike, sampling_rate: float, bead_diameter_A: float
) -> np.ndarray:
    if tomogram.ndim != 3:
        raise InputError(f"tomogram must be 3D, got shape {tomogram.shape}")
    if not (np.isfinite(sampling_rate) and sampling_rate > 0):
        raise InputError(f"sampling rate must be > 0 Å/px, got {sampling_rate}")
    if not (np.isfinite(bead_diameter_A) and bead_diameter_A > 0):
        raise InputError(f"bead diameter must be > 0 Å, got {bead_diameter_A}")
    bead_px = bead_diameter_A / sampling_rate
    if bead_px < 2:
        raise InputError(
            f"bead diameter {bead_diameter_A:g} Å is {bead_px:.2f} px at "
            f"{sampling_rate:g} Å/px: too small to see (check the units: "
            f"bead size in Å, sampling in Å/px)"
        )
    coords = np.asarray(coords, dtype=float).reshape(-1, 3)
    if not np.all(np.isfinite(coords)):
        raise InputError("coordinates contain NaN or Inf")
    return coords


def normalise_boxes(boxes: np.ndarray, radius: float = BACKGROUND_RADIUS) -> np.ndarray:
    """Z-score each box with the mean and SD of its voxels outside a
    central sphere of ``radius`` voxels; works in place on float32 boxes.

    Parameters
    ----------
    boxes : numpy.ndarray, shape (n, b, b, b)

    Returns
    -------
    numpy.ndarray
        The normalised boxes (same array).
    """
    b = boxes.shape[-1]
    grid = np.indices((b, b, b), dtype=np.float32) - b // 2
    outside = np.sum(grid**2, axis=0) > radius**2
    bg = boxes[:, outside]
    mean = bg.mean(axis=1)
    sd = bg.std(axis=1)
    sd[sd <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0)))] = 1.0
    boxes -= mean[:, None, None, None]
    boxes /= sd[:, None, None, None]
    return boxes


def extract_boxes(
    tomogram: Any,
    coords: ArrayLike,
    sampling_rate: float,
    bead_diameter_A: float,
    box_size: int = BOX_SIZE,
    normalise: bool = True,
) -> "BoxSet":
    """Extract resampled boxes around coordinates.

    Parameters
    ----------
    tomogram : numpy.ndarray or numpy.memmap, shape (nz, ny, nx)
        Only the neighbourhood of each coordinate is read (memory-mapped
        tomograms stay on disk).
    coords : array_like, shape (n, 3)
        Bead centres ``(x, y, z)`` in tomogram voxels.
    sampling_rate : float
        Tomogram sampling in Å/voxel.
    bead_diameter_A : float
        Bead diameter in Å (e.g. 100 for 10 nm gold).
    box_size : int
        Box edge in voxels (32).
    normalise : bool
        Apply :func:`normalise_boxes`.

    Returns
    -------
    BoxSet
    """
    coords = _check(tomogram, coords, sampling_rate, bead_diameter_A)
    sampling = target_sampling(bead_diameter_A)
    scale = sampling / sampling_rate
    n = len(coords)
    boxes = np.empty((n, box_size, box_size, box_size), np.float32)
    outside = np.zeros(n)
    # box voxel j sits at centre + (j - box//2) * scale, in tomogram voxels
    offsets = (np.arange(box_size) - box_size // 2) * scale
    half = int(np.ceil(box_size / 2 * scale)) + 4  # crop margin for the spline
    shape_xyz = np.array(tomogram.shape[::-1])
    # anti-alias before binning: Gaussian of ~half a box voxel
    sigma = 0.5 * np.sqrt(max(scale**2 - 1.0, 0.0))
    for i, c in enumerate(coords):
        lo = np.floor(c).astype(int) - half
        hi = np.floor(c).astype(int) + half + 1
        lo_c = np.clip(lo, 0, shape_xyz)
        hi_c = np.clip(hi, 0, shape_xyz)
        crop = np.asarray(
            tomogram[lo_c[2] : hi_c[2], lo_c[1] : hi_c[1], lo_c[0] : hi_c[0]], dtype=np.float32
        )
        pts = [c[ax] + offsets for ax in (2, 1, 0)]  # z, y, x
        inside = [(p >= 0) & (p <= shape_xyz[ax] - 1) for p, ax in zip(pts, (2, 1, 0))]
        mask = inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]
        outside[i] = 1.0 - mask.mean()
        if crop.size == 0 or not mask.any():
            boxes[i] = 0.0
            outside[i] = 1.0
            continue
        if sigma > 0.1:
            crop = ndimage.gaussian_filter(crop, sigma, mode="nearest")
        zz, yy, xx = np.meshgrid(
            pts[0] - lo_c[2], pts[1] - lo_c[1], pts[2] - lo_c[0], indexing="ij"
        )
        box = ndimage.map_coordinates(
            crop, [zz, yy, xx], order=3, mode="nearest", prefilter=True
        ).astype(np.float32)
        if not mask.all():
            box[~mask] = box[mask].mean()
        boxes[i] = box
    if np.any(outside > 0):
        logger.info(
            "%d of %d boxes reach past the tomogram border (padded)",
            int(np.count_nonzero(outside > 0)),
            n,
        )
    if normalise and n:
        normalise_boxes(boxes)
    return BoxSet(boxes, coords, outside, sampling, scale)
