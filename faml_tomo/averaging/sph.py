"""Spherical-harmonic expansion of Fourier shells.

A real function ``f(k)`` on Fourier space (e.g. a spectral magnitude times a
missing-wedge mask) is sampled on the spheres ``|k| = r`` for integer radii
``r = r_min .. r_max`` and each shell is expanded in orthonormal spherical
harmonics (scipy's ``sph_harm``: Condon-Shortley phase)::

    f(r, w) ~ sum_{l <= L_r} sum_{|m| <= l} f_lm(r) Y_lm(w)

with a per-shell degree ``L_r = min(lmax, ceil(pi r))`` (a shell of radius
``r`` holds about ``4 pi r^2`` voxels, i.e. no more information than degree
``~ 2 sqrt(pi) r``).  Each shell is sampled on a Gauss-Legendre (polar) x
uniform (azimuth) grid by trilinear interpolation of the centred cube and
transformed exactly with an FFT over the azimuth and a quadrature over the
polar angle.

All functions used for rotational matching are even (``f(-k) = f(k)``: the
magnitude spectrum of a real volume and point-symmetric wedge masks), so odd
degrees vanish and only even ``l`` are kept.  Coefficients are packed per shell
as ``[l0 block, l2 block, ...]`` with ``m = -l .. l`` inside each block; see
:class:`ShellLayout`.
"""

import functools
import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage
from scipy.special import roots_legendre, sph_harm

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["ShellLayout", "shell_layout", "expand_shells"]


@dataclass(frozen=True, eq=False)
class ShellLayout:
    """Sampling and coefficient layout of the shell expansion for one box.

    Attributes
    ----------
    n : int
        Box size in voxels.
    radii : numpy.ndarray of int, shape (R,)
        Shell radii in frequency units (cycles per box).
    degrees : numpy.ndarray of int, shape (R,)
        Expansion degree ``L_r`` of each shell.
    lmax : int
        Largest degree.
    ls : numpy.ndarray of int
        Degrees kept (even ``0 .. lmax``).
    offsets : dict
        ``offsets[l]`` is the start of degree ``l``'s block (length ``2l+1``)
        in a packed coefficient vector of length ``ncoef``.
    ncoef : int
        Length of a packed coefficient vector.
    """

    n: int
    radii: np.ndarray
    degrees: np.ndarray
    lmax: int
    ls: np.ndarray
    offsets: dict
    ncoef: int
    # Per shell: (cube coordinates (3, P), grid shape (nt, nphi), table (nt, nc_r)).
    _shells: list = field(repr=False, default_factory=list)
    _coords: np.ndarray | None = field(repr=False, default=None)

    def block(self, l: int) -> slice:
        """Slice of degree ``l`` in a packed coefficient vector."""
        o = self.offsets[l]
        return slice(o, o + 2 * l + 1)


def _shell_degree(r, lmax):
    return int(min(lmax, max(2, int(np.ceil(np.pi * r)))))


@functools.lru_cache(maxsize=64)
def _shell_table(L, ls_tuple):
    """Quadrature grid and weighted Y_lm(theta, 0) table for degree ``L``.

    The polar grid has ``L + 2`` Gauss-Legendre nodes and the azimuth
    ``2L + 4`` points: exact for band-limited shells, with mild oversampling
    to damp aliasing of the interpolated data.
    """
    nt = L + 2
    nphi = 2 * L + 4
    x, wq = roots_legendre(nt)
    theta = np.arccos(x)
    cols, midx = [], []
    for l in ls_tuple:
        if l > L:
            break
        for m in range(-l, l + 1):
            cols.append(np.real(sph_harm(m, l, 0.0, theta)))  # Y_lm(theta, 0) is real
            midx.append(m % nphi)
    table = np.stack(cols, axis=1) * wq[:, None] * (2 * np.pi / nphi)
    return theta, nphi, table, np.asarray(midx)


@functools.lru_cache(maxsize=16)
def shell_layout(n: int, lmax: int, r_min: int = 1, r_max: int | None = None) -> ShellLayout:
    """Shell radii, degrees and sampling grids for a box of ``n`` voxels.

    Parameters
    ----------
    n : int
        Box size.
    lmax : int
        Largest spherical-harmonic degree (even degrees up to it are kept).
    r_min, r_max : int
        Shell radii range; ``r_max`` defaults to ``n // 2 - 1`` (the largest
        shell whose trilinear neighbours stay inside the box).

    Returns
    -------
    ShellLayout
    """
    if r_max is None:
        r_max = n // 2 - 1
    if not 1 <= r_min <= r_max <= n // 2 - 1:
        raise InputError(
            f"shell radii must satisfy 1 <= r_min <= r_max <= n/2 - 1 = "
            f"{n // 2 - 1}; got r_min={r_min}, r_max={r_max}"
        )
    if lmax < 2:
        raise InputError(f"lmax must be >= 2, got {lmax}")
    radii = np.arange(r_min, r_max + 1)
    degrees = np.array([_shell_degree(r, lmax) for r in radii])
    lmax = int(degrees.max())
    ls = np.arange(0, lmax + 1, 2)
    offsets, o = {}, 0
    for l in ls:
        offsets[int(l)] = o
        o += 2 * l + 1
    shells, coords = [], []
    c = n // 2
    for r, L in zip(radii, degrees):
        theta, nphi, table, midx = _shell_table(int(L), tuple(int(v) for v in ls))
        phi = 2 * np.pi * np.arange(nphi) / nphi
        st = np.sin(theta)[:, None]
        kx = r * st * np.cos(phi)[None, :]
        ky = r * st * np.sin(phi)[None, :]
        kz = r * np.cos(theta)[:, None] * np.ones_like(phi)[None, :]
        coords.append(np.stack([kz.ravel() + c, ky.ravel() + c, kx.ravel() + c]))
        shells.append(((len(theta), nphi), table, midx))
    return ShellLayout(
        n=n,
        radii=radii,
        degrees=degrees,
        lmax=lmax,
        ls=ls,
        offsets=offsets,
        ncoef=o,
        _shells=shells,
        _coords=np.concatenate(coords, axis=1),
    )


def expand_shells(cubes: ArrayLike, layout: ShellLayout) -> np.ndarray:
    """Spherical-harmonic coefficients of real functions on Fourier shells.

    Parameters
    ----------
    cubes : numpy.ndarray, shape (F, n, n, n) or (n, n, n)
        Real, even functions of frequency on the *centred* (fftshifted) full
        grid, indexed ``[kz, ky, kx]`` with zero frequency at ``n // 2``.
    layout : ShellLayout
        From :func:`shell_layout`.

    Returns
    -------
    numpy.ndarray, complex128, shape (F, R, ncoef)
        Packed coefficients ``f_lm(r)`` (zero for ``l > L_r``).
    """
    cubes = np.asarray(cubes, dtype=float)
    single = cubes.ndim == 3
    if single:
        cubes = cubes[None]
    nf = cubes.shape[0]
    vals = np.stack(
        [
            ndimage.map_coordinates(cube, layout._coords, order=1, mode="nearest", prefilter=False)
            for cube in cubes
        ]
    )
    out = np.zeros((nf, len(layout.radii), layout.ncoef), dtype=complex)
    start = 0
    for i, ((nt, nphi), table, midx) in enumerate(layout._shells):
        v = vals[:, start : start + nt * nphi].reshape(nf, nt, nphi)
        start += nt * nphi
        spec = np.fft.fft(v, axis=2)  # sum_phi f e^{-i m phi}
        g = spec[:, :, midx]  # (F, nt, nc_r)
        out[:, i, : table.shape[1]] = np.einsum("ftc,tc->fc", g, table)
    return out[0] if single else out
