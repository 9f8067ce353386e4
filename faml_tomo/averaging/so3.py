"""Rotational correlation of shell expansions over all rotations at once.

For two real functions ``p`` (particle side) and ``q`` (reference side) on
Fourier space with shell coefficients ``p_lm(r)``, ``q_lm(r)`` (see
:mod:`.sph`), the correlation of ``p`` with the rotated ``q``::

    C(R) = sum_k p(k) (Lambda(R) q)(k),   (Lambda(R) q)(k) = q(R^-1 k)

is evaluated on a regular ``N^3`` grid of ZYZ Euler angles
``(a, b, g) = 2 pi (i, j, l) / N`` with ``R = Rz(a) Ry(b) Rz(g)`` (scipy's
intrinsic ``"ZYZ"``, the rotation convention of :mod:`faml_tomo.geometry`)
through one inverse FFT (Kovacs & Wriggers 2002)::

    C(a, b, g) = sum_{m, h, m'} T[m, h, m'] e^{i (m a + h b + m' g)}
    T[m, h, m'] = i^{m' - m} sum_l Delta^l_{hm} Delta^l_{hm'} I^l_{mm'}
    I^l_{mm'} = sum_r w_r r^2 p_lm(r) conj(q_lm'(r))

with ``Delta^l = d^l(pi/2)`` the Wigner small-d matrix at 90 degrees (cached per
``l``).  ``C`` is real for real ``p`` and ``q``, so only ``m' >= 0`` is built
and an ``irfftn`` is used.  The grid covers SO(3) twice:
``(a, b, g) ~ (a + pi, 2 pi - b, g + pi)``; :func:`find_peaks` keeps
``b <= pi`` and merges peaks that are the same rotation.

The conventions are those verified numerically by
``shared/docs/so3_convention_check.py``; the tests compare against it.
"""

import functools
import logging

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy import fft as sfft
from scipy.spatial.transform import Rotation

from .fourier import WORKERS
from .sph import ShellLayout

logger = logging.getLogger(__name__)

__all__ = [
    "wigner_d",
    "wigner_d_half_pi",
    "shell_inner_products",
    "so3_correlation",
    "euler_grid_angles",
    "find_peaks",
]


def wigner_d(l: int, beta: float) -> np.ndarray:
    """Wigner small-d matrix ``d^l_{mm'}(beta)``, rows ``m``, columns ``m'``
    (``m, m' = -l .. l``), from the eigen-decomposition of ``J_y``.

    Returns
    -------
    numpy.ndarray, shape (2l + 1, 2l + 1)
    """
    m = np.arange(-l, l + 1, dtype=float)
    jp = np.diag(np.sqrt(l * (l + 1) - m[:-1] * (m[:-1] + 1)), -1)  # J+ |m> -> |m+1>
    jy = (jp - jp.T) / 2j
    vals, vecs = np.linalg.eigh(jy)
    d = (vecs * np.exp(-1j * beta * vals)) @ vecs.conj().T
    return np.ascontiguousarray(d.real)


@functools.lru_cache(maxsize=None)
def wigner_d_half_pi(l: int) -> np.ndarray:
    """``d^l(pi/2)``, cached per degree (read-only)."""
    d = wigner_d(l, np.pi / 2)
    d.setflags(write=False)
    return d


@functools.lru_cache(maxsize=None)
def _delta_products(l):
    """``P[m, h, m'] = i^{m'-m} Delta_hm Delta_hm'`` for ``m' >= 0`` (complex)."""
    d = wigner_d_half_pi(l)  # rows h, cols m
    m = np.arange(-l, l + 1)
    mp = m[l:]
    phase = 1j ** ((mp[None, :] - m[:, None]) % 4)  # (m, m')
    prod = d.T[:, :, None] * d[None, :, l:]  # (m, h, m')
    out = prod * phase[:, None, :]
    out.setflags(write=False)
    return out


def shell_inner_products(
    p: np.ndarray, q: np.ndarray, layout: ShellLayout, radial_weights: np.ndarray | None = None
) -> dict[int, np.ndarray]:
    """Per-degree matrices ``I^l_{mm'} = sum_r w_r r^2 p_lm(r) conj(q_lm'(r))``.

    Parameters
    ----------
    p, q : numpy.ndarray, shape (C, R, ncoef)
        Packed shell coefficients of ``C`` particle-side and reference-side
        functions (pairs ``p[c]`` with ``q[c]``).
    layout : ShellLayout
    radial_weights : numpy.ndarray, shape (R,), optional
        Extra per-shell weights ``w_r`` (default 1).

    Returns
    -------
    dict
        ``{l: ndarray (C, 2l+1, 2l+1)}`` for the even degrees of the layout.
    """
    r2 = layout.radii.astype(float) ** 2
    if radial_weights is not None:
        r2 = r2 * radial_weights
    pw = p * r2[None, :, None]
    out = {}
    for l in layout.ls:
        l = int(l)
        sl = layout.block(l)
        out[l] = np.matmul(pw[:, :, sl].transpose(0, 2, 1), np.conj(q[:, :, sl]))
    return out


def so3_correlation(
    inner: dict[int, np.ndarray], n_grid: int, dtype: DTypeLike = np.float64
) -> np.ndarray:
    """Rotational correlations on the ``N^3`` Euler grid.

    Parameters
    ----------
    inner : dict
        Output of :func:`shell_inner_products`, ``{l: (C, 2l+1, 2l+1)}``.
    n_grid : int
        Grid size ``N`` per Euler angle (step ``360 / N`` degrees); must be
        at least ``2 lmax + 2``.
    dtype : numpy dtype
        Precision of the transform and the result: ``float32`` is 3x faster
        and enough to rank candidate rotations.

    Returns
    -------
    numpy.ndarray, shape (C, N, N, N)
        ``C[c, i, j, l]`` at ``(a, b, g) = 2 pi (i, j, l) / N``.
    """
    from .kernels import accumulate_so3

    ls = sorted(inner)
    lmax = ls[-1]
    nc = inner[ls[0]].shape[0]
    if n_grid < 2 * lmax + 2:
        raise ValueError(
            f"Euler grid N={n_grid} too coarse for degree {lmax} (need N >= {2 * lmax + 2})"
        )
    # Frequencies m, h = -L..L straight into FFT order (negative ones wrap to
    # the end); m' >= 0 only (the result is real).
    t = np.zeros((nc, n_grid, n_grid, n_grid // 2 + 1), dtype=complex)
    for l in ls:
        accumulate_so3(t, np.ascontiguousarray(inner[l], dtype=complex), _delta_products(l), l)
    ctype = np.result_type(dtype, np.complex64)
    return sfft.irfftn(
        t.astype(ctype, copy=False),
        s=(n_grid,) * 3,
        axes=(1, 2, 3),
        norm="forward",
        workers=WORKERS,
    )


def euler_grid_angles(index: ArrayLike, n_grid: int) -> np.ndarray:
    """Euler angles ``(a, b, g)`` in radians of (fractional) grid indices."""
    return 2 * np.pi * np.asarray(index, dtype=float) / n_grid


def _subgrid_offsets(score, idx):
    """Parabolic sub-grid offset per axis (clipped to +-0.5) at integer peaks."""
    n = score.shape[0]
    offs = np.zeros(idx.shape, dtype=float)
    s0 = score[idx[:, 0], idx[:, 1], idx[:, 2]].astype(float)
    for ax in range(3):
        lo = idx.copy()
        hi = idx.copy()
        lo[:, ax] = (lo[:, ax] - 1) % n
        hi[:, ax] = (hi[:, ax] + 1) % n
        sm = score[lo[:, 0], lo[:, 1], lo[:, 2]].astype(float)
        sp = score[hi[:, 0], hi[:, 1], hi[:, 2]].astype(float)
        den = sm - 2 * s0 + sp
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(den < 0, 0.5 * (sm - sp) / den, 0.0)
        offs[:, ax] = np.clip(d, -0.5, 0.5)
    return offs


_NEIGHBOURS = np.array(
    [
        (i, j, k)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        for k in (-1, 0, 1)
        if (i, j, k) != (0, 0, 0)
    ]
)


def _local_maxima(score, keep):
    """Up to ``keep`` best local maxima (26 periodic neighbours) with
    ``b <= pi``, sorted by value: ``(indices (P, 3), values (P,))``.

    Every grid point of the half is tested against its neighbours, with an
    early exit (a pre-selection of the best grid values was tried first:
    with ``keep`` in the hundreds it almost never held enough maxima)."""
    from .kernels import local_maxima_mask

    n = score.shape[0]
    # b in (pi, 2 pi) is the double cover: only j <= n // 2 is tested.
    is_max = local_maxima_mask(np.ascontiguousarray(score), n // 2)
    flat = np.flatnonzero(is_max)
    vals = score.ravel()[flat]
    if len(flat) > keep:
        # the best `keep` values, ties broken by index as in a full sort
        part = np.argpartition(-vals, keep - 1)[:keep]
        cut = vals[part].min()
        sel = vals >= cut
        flat, vals = flat[sel], vals[sel]
    idx = np.stack(np.unravel_index(flat, score.shape), axis=1)
    order = np.lexsort((idx[:, 2], idx[:, 1], idx[:, 0], -vals))[:keep]
    return idx[order], vals[order]


def find_peaks(
    score: np.ndarray,
    max_peaks: int = 50,
    min_separation_deg: float | None = None,
    refine: bool = True,
    group: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rotations at the local maxima of a score on the Euler grid.

    Local maxima are taken over the 26 neighbours on the periodic grid, for
    ``b <= pi`` only (the other half is the double cover), refined to sub-grid
    precision by a parabola per axis, sorted by score and merged greedily:
    a peak closer than ``min_separation_deg`` to a better one is dropped (this
    also removes the double cover and the ``b ~ 0`` degeneracy of ZYZ angles).

    Parameters
    ----------
    score : numpy.ndarray, shape (N, N, N)
        Score on the grid of :func:`so3_correlation`.
    max_peaks : int
        Cap on the number of rotations returned.
    min_separation_deg : float, optional
        Merge radius in degrees (default: two grid steps, ``720 / N``).
    refine : bool
        Parabolic sub-grid refinement of each peak.
    group : numpy.ndarray, shape (G, 3, 3), optional
        Symmetry of the average: ``R`` and ``R g`` are the same pose, so a
        peak within ``min_separation_deg`` of ``R g`` for a better ``R`` and
        any ``g`` is merged too (one candidate per pose, not ``G`` copies).

    Returns
    -------
    rotations : numpy.ndarray, shape (P, 3, 3)
        Active rotation matrices, best first.
    values : numpy.ndarray, shape (P,)
        Score at the (integer) grid peak.
    """
    n = score.shape[0]
    if min_separation_deg is None:
        min_separation_deg = 720.0 / n
    idx, vals = _local_maxima(score, max(20 * max_peaks, 200))
    frac = idx + (_subgrid_offsets(score, idx) if refine else 0.0)
    rots = Rotation.from_euler("ZYZ", euler_grid_angles(frac, n)).as_matrix()
    # Greedy merge, vectorised over the accepted set; cos of the merge angle
    # compared through traces: angle < d  <=>  tr(R1^T R2) > 1 + 2 cos d.
    thr = 1.0 + 2.0 * np.cos(np.radians(min_separation_deg))
    flat9 = rots.reshape(len(rots), 9)
    if group is not None and len(group) > 1:
        # every symmetry copy R g of each peak, (P * G, 9), copy-major per peak
        copies = np.einsum("pij,gjk->pgik", rots, np.asarray(group)).reshape(-1, 9)
        n_g = len(group)
    else:
        copies, n_g = flat9, 1
    accepted: list[int] = []
    kept: list[int] = []
    for i in range(len(rots)):
        if accepted:
            tr = copies[kept] @ flat9[i]
            if np.any(tr > thr):
                continue
        accepted.append(i)
        kept.extend(range(i * n_g, (i + 1) * n_g))
        if len(accepted) >= max_peaks:
            break
    best = np.asarray(accepted, dtype=int)
    return rots[best], vals[best].astype(float)
