"""Tilt schemes of the independent model: tilt angles, acquisition order
(dose-symmetric, bidirectional, sequential), accumulated exposure per image
and the angular weights of back-projection."""

import logging
from typing import Tuple

import numpy as np

from ...errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["tilt_angles", "acquisition_order", "accumulated_exposure", "angular_weights"]


def tilt_angles(tilt_min_deg: float, tilt_max_deg: float, step_deg: float) -> np.ndarray:
    """Tilt angles from ``tilt_min_deg`` up to ``tilt_max_deg`` in steps.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Ascending angles in degrees; the last is the largest not above
        ``tilt_max_deg`` (within 1e-6 degrees).
    """
    if not step_deg > 0 or not tilt_max_deg > tilt_min_deg:
        raise InputError(
            f"tilt range {tilt_min_deg}..{tilt_max_deg} with step {step_deg} gives no angles"
        )
    n = int(np.floor((tilt_max_deg - tilt_min_deg) / step_deg + 1e-6)) + 1
    return tilt_min_deg + step_deg * np.arange(n, dtype=np.float64)


def acquisition_order(
    angles_deg: np.ndarray, scheme: str = "dose-symmetric", start_deg: float = 0.0, group: int = 2
) -> np.ndarray:
    """Order in which the images were recorded.

    Parameters
    ----------
    angles_deg : numpy.ndarray, shape (n,)
        Ascending tilt angles, degrees.
    scheme : str
        ``"dose-symmetric"`` (Hagen et al. 2017: the image nearest
        ``start_deg``, then ``group`` images on the positive side, ``group``
        on the negative side, alternating; the longer side finishes alone),
        ``"bidirectional"`` (from ``start_deg`` up to the largest angle, then
        from below ``start_deg`` down to the smallest) or ``"sequential"``
        (smallest to largest).
    start_deg : float
        First tilt of the dose-symmetric and bidirectional schemes.
    group : int
        Images per side and turn, dose-symmetric scheme.

    Returns
    -------
    numpy.ndarray of int, shape (n,)
        Indices into ``angles_deg`` in acquisition order.
    """
    angles = np.asarray(angles_deg, float)
    n = len(angles)
    if scheme == "sequential":
        return np.arange(n)
    i0 = int(np.argmin(np.abs(angles - start_deg)))
    up = list(range(i0 + 1, n))
    down = list(range(i0 - 1, -1, -1))
    if scheme == "bidirectional":
        return np.array([i0] + up + down)
    if scheme != "dose-symmetric":
        raise InputError(f"unknown tilt scheme {scheme!r}")
    if group < 1:
        raise InputError(f"tilt group must be >= 1, got {group}")
    order = [i0]
    while up or down:
        for side in (up, down):
            order += side[:group]
            del side[:group]
    return np.array(order)


def accumulated_exposure(order: np.ndarray, dose_e_per_A2: float) -> Tuple[np.ndarray, np.ndarray]:
    """Exposure of each image and the exposure its specimen has received.

    Parameters
    ----------
    order : numpy.ndarray of int, shape (n,)
        Acquisition order from :func:`acquisition_order`.
    dose_e_per_A2 : float
        Total exposure of the series (split evenly), e/Å².

    Returns
    -------
    dose : numpy.ndarray, shape (n,)
        Exposure of each image, e/Å² (in angle order).
    exposure : numpy.ndarray, shape (n,)
        Accumulated exposure at the middle of each image (all earlier images
        plus half of its own), e/Å², in angle order.
    """
    order = np.asarray(order, int)
    n = len(order)
    per = float(dose_e_per_A2) / n
    rank = np.empty(n, int)
    rank[order] = np.arange(n)
    return np.full(n, per), per * (rank + 0.5)


def angular_weights(angles_deg: np.ndarray) -> np.ndarray:
    """Back-projection weight of each image: the angular interval it stands
    for, in radians (half the distance to each neighbour; the end images get
    their one neighbour's distance)."""
    a = np.radians(np.asarray(angles_deg, float))
    if len(a) < 2:
        return np.full(len(a), np.pi)
    d = np.diff(a)
    w = np.empty_like(a)
    w[1:-1] = 0.5 * (d[1:] + d[:-1])
    w[0], w[-1] = d[0], d[-1]
    return w
