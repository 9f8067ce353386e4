"""Orientation of an average's symmetry axes (what ``relion_align_symmetry``
does): the rotation that brings an average made without symmetry into the
frame where its point group has the standard axes of :mod:`.symmetry`.

A reference-free average comes out in an arbitrary frame.  Imposing a point
group ``G`` on it as it stands averages it with rotated copies of itself
about the wrong axes and blurs it; so a symmetric run without references
first iterates in C1, then turns each average into its symmetry frame.

Search: the self-correlation ``c(R) = corr(A, R A)`` is computed once for all
rotations on the Euler grid of the fast alignment (:mod:`.so3`); a frame
``F`` (the average is symmetric under ``F g F^T``) scores the mean of
``c(F g F^T)`` over ``g != e``, looked up on the grid for ``n_samples``
Haar-random frames; the best few are polished by maximising the real-space
correlation of the average with its symmetrised self.
"""

import logging
import warnings

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import minimize
from scipy.spatial.transform import Rotation

from ..geometry import transform_volume
from .align import (
    AlignParams,
    band_geometry,
    prepare_reference,
    prepare_subtomogram,
    rotation_scores,
)
from .coverage import GAP_LEVEL
from .fourier import spectrum, volume_from_spectrum
from .voronoi import haar_rotations

logger = logging.getLogger(__name__)

__all__ = ["find_symmetry_frame", "symmetry_score"]


def symmetry_score(volume: ArrayLike, group: np.ndarray, frame: ArrayLike | None = None) -> float:
    """Correlation of a volume with its average over ``F g F^T``.

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
    group : numpy.ndarray, shape (G, 3, 3)
    frame : numpy.ndarray, shape (3, 3), optional
        ``F`` (default: identity, the standard axes).

    Returns
    -------
    float
        1 for a volume with that symmetry; lower the less symmetric.
    """
    f = np.eye(3) if frame is None else np.asarray(frame, float)
    v = np.asarray(volume, float)
    others = [f @ g @ f.T for g in group[1:]]
    if not others:
        return 1.0
    sym = np.mean([transform_volume(v, r, order=1) for r in others], axis=0)
    a, b = v - v.mean(), sym - sym.mean()
    return float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b) + 1e-300))


def _grid_lookup(score, rotations):
    """Nearest Euler-grid value of ``score`` at each rotation."""
    n = score.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: any split will do
        ang = Rotation.from_matrix(rotations).as_euler("ZYZ")
    idx = np.rint(np.mod(ang, 2 * np.pi) * n / (2 * np.pi)).astype(int) % n
    return score[idx[:, 0], idx[:, 1], idx[:, 2]]


def find_symmetry_frame(
    volume: ArrayLike,
    group: ArrayLike,
    params: AlignParams | None = None,
    n_samples: int = 4000,
    n_polish: int = 3,
    seed: int = 0,
    coverage: ArrayLike | None = None,
) -> tuple[np.ndarray, float]:
    """Rotation ``F`` under which a volume is most symmetric: ``F^T``
    applied to it (actively) puts its symmetry axes on the standard ones.

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
        An average, ``[z, y, x]``, centred.
    group : numpy.ndarray, shape (G, 3, 3)
        The point group (:func:`.symmetry.symmetry_group`).
    params : AlignParams, optional
        Band and Euler grid of the self-correlation.
    n_samples : int
        Random frames scored on the grid.
    n_polish : int
        Best frames refined in real space (Nelder-Mead on a rotation vector).
    seed : int
    coverage : numpy.ndarray, shape (M,), optional
        Fraction of the subtomograms that observed each band point of the
        average (:func:`.coverage.class_coverage`).  The band points below
        :data:`.coverage.GAP_LEVEL` hold no data (a missing wedge the poses
        left open): they are set to zero and the self-correlation on the
        grid is constrained to the rest.  Measured on a C1 average of a D7
        proteasome with 34 % of the band in such gaps: without, a frame 84°
        off (score 0.36).

    Returns
    -------
    frame : numpy.ndarray, shape (3, 3)
    score : float
        :func:`symmetry_score` at ``frame``.
    """
    group = np.asarray(group, float)
    if len(group) == 1:
        return np.eye(3), 1.0
    params = params or AlignParams()
    v = np.asarray(volume, float)
    observed = None
    if coverage is not None:
        n = v.shape[0]
        geom = band_geometry(n, *params.band(n))
        observed = np.asarray(coverage, float).reshape(-1) >= GAP_LEVEL
        spec = spectrum(v).reshape(-1)
        spec[geom.index[~observed]] = 0.0
        v = volume_from_spectrum(spec.reshape(n, n, n // 2 + 1), n)
    part = prepare_subtomogram(v, (-90.0, 90.0), params, observed=observed)
    c = rotation_scores(part, prepare_reference(v, params), params)
    rng = np.random.default_rng(seed)
    frames = np.concatenate([np.eye(3)[None], haar_rotations(int(n_samples), rng)])
    conj = np.einsum("fij,gjk,flk->fgil", frames, group[1:], frames)
    vals = _grid_lookup(c, conj.reshape(-1, 3, 3)).reshape(len(frames), -1).mean(axis=1)
    best = np.argsort(-vals, kind="stable")[: max(1, int(n_polish))]
    out, out_score = np.eye(3), -np.inf
    for j in best:
        f0 = Rotation.from_matrix(frames[j])

        def cost(rv, f0=f0):
            return -symmetry_score(v, group, (Rotation.from_rotvec(rv) * f0).as_matrix())

        res = minimize(
            cost,
            np.zeros(3),
            method="Nelder-Mead",
            options={
                "initial_simplex": np.vstack([np.zeros(3), 0.05 * np.eye(3)]),
                "xatol": 2e-3,
                "fatol": 1e-5,
                "maxiter": 80,
            },
        )
        if -res.fun > out_score:
            out_score = float(-res.fun)
            out = (Rotation.from_rotvec(res.x) * f0).as_matrix()
    logger.info("symmetry frame found: correlation with the symmetrised average %.3f", out_score)
    return out, out_score
