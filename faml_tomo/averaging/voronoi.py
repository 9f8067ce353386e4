"""Monte-Carlo Voronoi weights of candidate transforms (paper §2.2, eqs. 4-6).

The integral over rigid transforms is approximated by a sum over the
candidates of a subtomogram-average pair, each weighted by the normalised
hypervolume of its Voronoi cell on SO(3) x R^3.  The cells are estimated by
sampling points uniformly: rotations from the Haar measure (random unit
quaternions, not uniform Euler angles) and translations uniformly in the
bounding box of the candidates' translations; each sample goes to its nearest
candidate under::

    tau((R1, t1), (R2, t2))^2 = ||I - R1^T R2||_F^2 + alpha_trd ||t1 - t2||^2
                              = 6 - 2 tr(R1^T R2) + alpha_trd ||t1 - t2||^2
"""

import logging

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["haar_rotations", "voronoi_weights"]


def haar_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rotation matrices uniform on SO(3) (Haar measure).

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, shape (n, 3, 3)
    """
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def voronoi_weights(
    rotations: ArrayLike,
    shifts: ArrayLike,
    n_samples: int = 10000,
    alpha_trd: float = 1.0,
    rng: np.random.Generator | int | None = None,
    chunk: int = 4096,
    group: np.ndarray | None = None,
) -> np.ndarray:
    """Normalised Voronoi hypervolumes of candidate transforms.

    Parameters
    ----------
    rotations : numpy.ndarray, shape (C, 3, 3)
    shifts : numpy.ndarray, shape (C, 3)
        Translations in voxels.
    n_samples : int
        Monte-Carlo samples (paper: 10000).
    alpha_trd : float
        Weight of squared translation distance against rotation distance.
    rng : numpy.random.Generator or int, optional
        Source of the samples (seed it for reproducible weights).
    chunk : int
        Samples per vectorised block (bounds memory).
    group : numpy.ndarray, shape (G, 3, 3), optional
        Symmetry of the average: the cells live on ``SO(3) / G``, i.e. a
        sample goes to the candidate with the nearest copy ``R_c g``.

    Returns
    -------
    numpy.ndarray, shape (C,)
        Weights ``v~`` summing to 1 (a candidate may get 0).
    """
    rots = np.asarray(rotations, dtype=float)
    sh = np.asarray(shifts, dtype=float)
    c = len(rots)
    if c == 0:
        raise InputError("voronoi_weights needs at least one candidate")
    if n_samples < 1:
        raise InputError(f"n_samples must be >= 1, got {n_samples}")
    if alpha_trd < 0:
        raise InputError(f"alpha_trd must be >= 0, got {alpha_trd}")
    if c == 1:
        return np.ones(1)
    rng = np.random.default_rng(rng)
    lo, hi = sh.min(axis=0), sh.max(axis=0)
    n_g = 1
    if group is not None and len(group) > 1:
        n_g = len(group)
        rots = np.einsum("cij,gjk->cgik", rots, np.asarray(group)).reshape(c * n_g, 3, 3)
    flat = rots.reshape(c * n_g, 9)
    sh_all = np.repeat(sh, n_g, axis=0)
    counts = np.zeros(c, dtype=np.int64)
    for s in range(0, n_samples, chunk):
        m = min(chunk, n_samples - s)
        sr = haar_rotations(m, rng).reshape(m, 9)
        st = rng.uniform(lo, hi, size=(m, 3))
        # tau^2 up to the constant 6: -2 tr(R_s^T R_c) + alpha |t_s - t_c|^2
        d = -2.0 * (sr @ flat.T)
        if alpha_trd > 0:
            d += alpha_trd * (
                np.sum(st**2, axis=1)[:, None]
                - 2.0 * st @ sh_all.T
                + np.sum(sh_all**2, axis=1)[None, :]
            )
        counts += np.bincount(np.argmin(d, axis=1) // n_g, minlength=c)
    return counts / float(n_samples)
