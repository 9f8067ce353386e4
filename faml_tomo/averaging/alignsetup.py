"""Settings, shell band geometry and volume checks of the fast alignment
(:mod:`.align`)."""

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .fourier import half_frequencies, hermitian_weights


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignParams:
    """Settings of the fast alignment.

    Attributes
    ----------
    lmax : int
        Largest spherical-harmonic degree of the shell expansions (shell
        ``r`` uses ``min(lmax, ceil(pi r))``).
    n_euler : int, optional
        Euler grid size per angle (step ``360 / n_euler`` degrees); default
        ``2 lmax + 2`` (72, i.e. 5 degrees, for ``lmax = 35``).
    r_min, r_max : int, optional
        Band of Fourier shells used (cycles per box); ``r_max`` defaults to
        ``n // 2 - 1``.  Lowering ``r_max`` low-passes alignment and EM alike.
    max_candidates : int
        Cap on candidate rotations per pair (paper: typically < 50).
    min_separation_deg : float, optional
        Peaks closer than this to a better one are merged (default two
        Euler grid steps).
    max_shift : float, optional
        Largest translation searched, in voxels (default ``n / 4``).
    pad : int
        Oversampling of the average's spectrum for interpolation.
    shell_mean : bool
        Subtract the per-shell mean of the observed ``|X|`` in the
        rotational score, so that noise-dominated shells add no
        rotation-dependent bias (keeps the upper-bound form otherwise).
    refine : int
        Number of best candidates whose rotation is refined off the Euler
        grid by maximising the full score ``c(R, t)`` (0: none).  The
        magnitude-only bound locates peaks to a few degrees at low SNR; the
        phases bring the best candidate to about a degree.
    refine_rounds : int
        Rounds of the local refinement (each halves the stencil).
    symmetry : str
        Point group of the average (:mod:`.symmetry`; ``"C1"``: none):
        candidates are distinct modulo the group.
    """

    lmax: int = 35
    n_euler: int | None = None
    r_min: int = 1
    r_max: int | None = None
    max_candidates: int = 50
    min_separation_deg: float | None = None
    max_shift: float | None = None
    pad: int = 2
    shell_mean: bool = True
    refine: int = 1
    refine_rounds: int = 3
    symmetry: str = "C1"

    def euler_grid(self) -> int:
        """Euler grid size ``N``."""
        return int(self.n_euler) if self.n_euler else 2 * int(self.lmax) + 2

    def grid_step_deg(self) -> float:
        """Euler grid step in degrees."""
        return 360.0 / self.euler_grid()

    def band(self, n: int) -> tuple[int, int]:
        """``(r_min, r_max)`` for a box of ``n`` voxels."""
        r_max = n // 2 - 1 if self.r_max is None else int(self.r_max)
        return int(self.r_min), r_max

    def shift_limit(self, n: int) -> float:
        """Largest shift searched for a box of ``n`` voxels."""
        return n / 4.0 if self.max_shift is None else float(self.max_shift)


@dataclass(frozen=True, eq=False)
class BandGeometry:
    """Half-spectrum points of a box inside the shell band (shared, cached).

    Attributes
    ----------
    n : int
        Box size.
    index : numpy.ndarray of int, shape (M,)
        Flat indices into a half spectrum ``(n, n, n//2 + 1)``.
    freq : numpy.ndarray, shape (M, 3)
        Their frequencies ``(kx, ky, kz)``.
    herm : numpy.ndarray, shape (M,)
        Full-spectrum multiplicity (1 or 2).
    n_full : float
        Number of full-spectrum components in the band (``J`` of the paper).
    """

    n: int
    r_min: int
    r_max: int
    index: np.ndarray
    freq: np.ndarray
    herm: np.ndarray
    n_full: float


@functools.lru_cache(maxsize=8)
def band_geometry(n: int, r_min: int, r_max: int) -> BandGeometry:
    """:class:`BandGeometry` of a box (cached)."""
    kz, ky, kx = half_frequencies(n)
    r = np.sqrt(kx**2 + ky**2 + kz**2)
    sel = (r >= r_min - 0.5) & (r <= r_max + 0.5)
    sel &= r > 0
    index = np.flatnonzero(sel)
    shape = (n, n, n // 2 + 1)
    iz, iy, ix = np.unravel_index(index, shape)
    k = np.fft.fftfreq(n, 1.0 / n)
    freq = np.stack([ix.astype(float), k[iy], k[iz]], axis=1)
    herm = hermitian_weights(n)[ix]
    for a in (index, freq, herm):
        a.setflags(write=False)
    return BandGeometry(
        n=n, r_min=r_min, r_max=r_max, index=index, freq=freq, herm=herm, n_full=float(herm.sum())
    )


def check_volume(
    vol: Any, index: int, n: int | None = None, name: str = "subtomogram"
) -> np.ndarray:
    """Check one volume: 3D, cubic, box ``n`` (if given), finite, not constant.

    Parameters
    ----------
    vol : array_like
    index : int
        Its position, for the error message.
    n : int, optional
        Required box size.
    name : str
        How the message calls it.

    Returns
    -------
    numpy.ndarray, float64

    Raises
    ------
    InputError
        Naming the volume and the problem.
    """
    v = np.asarray(vol)
    if v.ndim != 3:
        raise InputError(f"{name} {index}: expected a 3D volume, got shape {v.shape}")
    if len(set(v.shape)) != 1:
        raise InputError(f"{name} {index}: box {v.shape} is not cubic; FAML needs cubic boxes")
    if n is not None and v.shape[0] != n:
        raise InputError(
            f"{name} {index}: box {v.shape[0]}^3 differs from the first "
            f"{name}'s {n}^3; all must have the same box size"
        )
    if v.shape[0] < 8:
        raise InputError(f"{name} {index}: box {v.shape[0]} is too small (need >= 8)")
    v = np.asarray(v, dtype=float)
    if not np.all(np.isfinite(v)):
        raise InputError(f"{name} {index}: contains NaN or Inf values")
    if np.ptp(v) == 0:
        raise InputError(f"{name} {index}: is constant (no signal to align)")
    return v


def check_volumes(volumes: Any, name: str = "subtomogram") -> int:
    """Check a stack of volumes (see :func:`check_volume`); returns the box
    size ``n``."""
    n = None
    for i, v in enumerate(volumes):
        n = check_volume(v, i, n, name).shape[0]
    if n is None:
        raise InputError(f"no {name}s given")
    return n
