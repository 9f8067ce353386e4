"""The border rule of the fiducial finder: which coordinates' boxes lie
inside the tomogram."""

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["box_inside"]


def box_inside(
    xyz: ArrayLike, shape: Sequence[int], box_size: int, z_size: int | None = None
) -> np.ndarray:
    """Whether the box of each coordinate lies inside the tomogram.

    Parameters
    ----------
    xyz : numpy.ndarray, shape (n, 3)
        Coordinates ``(x, y, z)`` in voxels.
    shape : tuple of int
        ``(nz, ny, nx)``.
    box_size : int
        Box edge in voxels; the box of a coordinate spans voxels
        ``round(c) - box // 2 ... round(c) - box // 2 + box - 1``.
    z_size : int, optional
        Box edge along Z, if different (e.g. only the bead's cube).

    Returns
    -------
    numpy.ndarray, shape (n,), bool
    """
    c = np.rint(np.asarray(xyz, float).reshape(-1, 3))
    size = np.array([box_size, box_size, box_size if z_size is None else z_size])
    lo = c - size // 2
    hi = lo + size
    dims = np.asarray(shape)[::-1]
    return np.all((lo >= 0) & (hi <= dims), axis=1)
