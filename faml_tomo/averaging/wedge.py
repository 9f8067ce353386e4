"""Missing-wedge masks for single-axis tilt series about the Y axis.

Geometry (beam along Z, tilt axis Y).  By the projection-slice theorem, the
image recorded at tilt angle ``theta`` fills the central section of Fourier
space that contains the Y axis and the direction ``(cos theta, 0, sin theta)``
in ``(kx, kz)``.  A Fourier component ``k = (kx, ky, kz)`` is therefore
observed when the angle of its projection onto the XZ plane,
``phi = atan2(kz, kx)`` folded into ``(-90, 90]`` (a central section contains
``k`` and ``-k``), lies inside the acquired tilt range
``[tilt_min, tilt_max]``.  Components on the tilt axis (``kx = kz = 0``) are in
every section and always observed.  A symmetric ``±60°`` range keeps 2/3 of
the directions; an asymmetric range such as ``(-50, 70)`` is allowed.  If your
tilt angles use the opposite sign convention, pass ``(-tilt_max, -tilt_min)``.

Frequencies are integer indices ``k`` of a box of ``n`` voxels (cycles per box);
arrays follow the package layout ``[z, y, x]`` and numpy's unshifted FFT order.
"""

import logging
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["check_tilt_range", "wedge_observed", "wedge_mask", "apply_wedge", "observed_fraction"]

# Angles are compared with a small tolerance so that components exactly on a
# boundary section (e.g. phi = 60 for a ±60° range) count as observed.
_ANGLE_TOL_DEG = 1e-6


def check_tilt_range(tilt_range: "float | Sequence[float]") -> tuple[float, float]:
    """Validate a tilt range and return it as ``(tilt_min, tilt_max)``.

    Parameters
    ----------
    tilt_range : float or (float, float)
        Acquired tilt range in degrees; a single number ``a`` means ``(-a, a)``.

    Returns
    -------
    tuple of float
        ``(tilt_min, tilt_max)`` with ``-90 <= tilt_min < tilt_max <= 90``.

    Raises
    ------
    InputError
        If the range is not finite, has the wrong length, lies outside
        ``[-90, 90]`` or is empty.
    """
    arr = np.atleast_1d(np.asarray(tilt_range, dtype=float))
    if arr.shape == (1,):
        arr = np.array([-abs(arr[0]), abs(arr[0])])
    if arr.shape != (2,):
        raise InputError(f"tilt range must be (min, max) in degrees, got {tilt_range!r}")
    lo, hi = float(arr[0]), float(arr[1])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise InputError(f"tilt range must be finite, got ({lo}, {hi})")
    if lo < -90 or hi > 90:
        raise InputError(f"tilt range ({lo:g}, {hi:g}) lies outside [-90, 90] degrees")
    if not lo < hi:
        raise InputError(f"tilt range ({lo:g}, {hi:g}) is empty: need min < max")
    return lo, hi


def wedge_observed(
    kx: ArrayLike, ky: ArrayLike, kz: ArrayLike, tilt_range: "float | Sequence[float]"
) -> np.ndarray:
    """Observed-component indicator at arbitrary Fourier positions.

    Used for rotated masks: the mask of a particle seen in the reference frame
    is ``wedge_observed(R k)``, evaluated exactly rather than interpolated.

    Parameters
    ----------
    kx, ky, kz : array_like
        Fourier coordinates (any units, broadcastable).
    tilt_range : float or (float, float)
        Tilt range in degrees, see :func:`check_tilt_range`.

    Returns
    -------
    numpy.ndarray of bool
        True where the component is observed.
    """
    lo, hi = check_tilt_range(tilt_range)
    kx, ky, kz = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (kx, ky, kz)))
    del ky  # the tilt axis does not enter the angle
    if lo <= -90 + _ANGLE_TOL_DEG and hi >= 90 - _ANGLE_TOL_DEG:
        return np.ones(kx.shape, dtype=bool)
    # Fold k -> -k so that kx >= 0: phi then lies in [-90, 90].
    flip = kx < 0
    fx = np.where(flip, -kx, kx)
    fz = np.where(flip, -kz, kz)
    phi = np.degrees(np.arctan2(fz, fx))
    obs = (phi >= lo - _ANGLE_TOL_DEG) & (phi <= hi + _ANGLE_TOL_DEG)
    # kx == 0: phi = +-90 are the same direction (the beam-parallel axis).
    on_z = (fx == 0) & (fz != 0)
    if np.any(on_z):
        obs_z = (lo <= -90 + _ANGLE_TOL_DEG) | (hi >= 90 - _ANGLE_TOL_DEG)
        obs = np.where(on_z, obs_z, obs)
    obs |= (fx == 0) & (fz == 0)  # tilt axis (and DC): in every section
    return obs


def _freqs(n, half):
    k = np.fft.fftfreq(n, 1.0 / n)
    kxs = np.fft.rfftfreq(n, 1.0 / n) if half else k
    return k[:, None, None], k[None, :, None], kxs[None, None, :]


def wedge_mask(n: int, tilt_range: "float | Sequence[float]", half: bool = True) -> np.ndarray:
    """Missing-wedge mask of a cubic box in numpy FFT layout.

    Parameters
    ----------
    n : int
        Box size in voxels.
    tilt_range : float or (float, float)
        Tilt range in degrees, see :func:`check_tilt_range`.
    half : bool
        Return the ``rfftn`` half-spectrum layout ``(n, n, n//2 + 1)``
        (default); otherwise the full layout ``(n, n, n)``.

    Returns
    -------
    numpy.ndarray of bool, shape (n, n, n//2 + 1) or (n, n, n)
        True for observed components, indexed ``[kz, ky, kx]`` unshifted.
    """
    kz, ky, kx = _freqs(int(n), half)
    return wedge_observed(kx, ky, kz, tilt_range)


def apply_wedge(volume: ArrayLike, tilt_range: "float | Sequence[float]") -> np.ndarray:
    """Remove the missing wedge from a volume (zero its unobserved components).

    Parameters
    ----------
    volume : numpy.ndarray, shape (n, n, n)
        Real volume ``[z, y, x]``.
    tilt_range : float or (float, float)
        Tilt range in degrees.

    Returns
    -------
    numpy.ndarray, shape (n, n, n), float64
        The wedge-filtered volume.
    """
    vol = np.asarray(volume, dtype=float)
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise InputError(f"apply_wedge needs a cubic 3D volume, got shape {vol.shape}")
    n = vol.shape[0]
    # The mask is point-symmetric, so the box origin does not matter here.
    spec = np.fft.rfftn(vol)
    spec *= wedge_mask(n, tilt_range, half=True)
    return np.fft.irfftn(spec, s=vol.shape)


def observed_fraction(tilt_range: "float | Sequence[float]") -> float:
    """Fraction of Fourier directions observed for a tilt range (e.g. 2/3
    for ±60°)."""
    lo, hi = check_tilt_range(tilt_range)
    return (hi - lo) / 180.0
