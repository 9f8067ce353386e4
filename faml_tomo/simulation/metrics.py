"""Measurements on simulated data: bead centres and shape, SNR, correlation."""

import logging

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["ncc", "bead_centroids", "bead_distortion", "bead_spread", "pair_snr", "extract_box"]


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Normalised cross-correlation (Pearson r) of two arrays, optionally
    within a boolean ``mask``."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0


def pair_snr(a: np.ndarray, b: np.ndarray) -> float:
    """SNR of two noisy copies of one signal, ``r / (1 - r)`` with ``r`` their
    correlation (Frank & Al-Ali 1975, the estimator of the FAML paper)."""
    r = ncc(a, b)
    return r / (1 - r) if r < 1 else np.inf


def extract_box(vol: np.ndarray, center: ArrayLike, box: int) -> np.ndarray:
    """Box of ``box`` voxels around ``center = (x, y, z)`` (rounded), padded
    with the volume mean where it crosses the border."""
    vol = np.asarray(vol)
    c = np.round(np.asarray(center, float)[::-1]).astype(int)  # z, y, x
    lo = c - box // 2
    out = np.full((box,) * 3, vol.mean(), dtype=vol.dtype)
    src = tuple(slice(max(l, 0), min(l + box, n)) for l, n in zip(lo, vol.shape))
    dst = tuple(slice(s.start - l, s.stop - l) for s, l in zip(src, lo))
    if all(s.stop > s.start for s in src):
        out[dst] = vol[src]
    return out


def _sphere(h):
    zz, yy, xx = np.mgrid[-h : h + 1, -h : h + 1, -h : h + 1]
    return xx, yy, zz, (xx**2 + yy**2 + zz**2) <= h * h


def bead_centroids(
    tomo: np.ndarray, approx: ArrayLike, radius: float, iterations: int = 2
) -> np.ndarray:
    """Refine bead centres in a tomogram (beads dark).

    Parameters
    ----------
    tomo : numpy.ndarray, shape (nz, ny, nx)
    approx : array_like, shape (n, 3)
        Starting ``(x, y, z)`` in voxels.
    radius : float
        Search / integration radius in voxels (about 1.5 bead radii).
    iterations : int
        Re-centring passes.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Centroid of the density darker than the tomogram median within the
        sphere, ``(x, y, z)`` in voxels.
    """
    tomo = np.asarray(tomo)
    pts = np.atleast_2d(np.asarray(approx, float)).copy()
    h = max(1, int(np.ceil(radius)))
    xx, yy, zz, ball = _sphere(h)
    med = float(np.median(tomo))
    for _ in range(iterations):
        for k, p in enumerate(pts):
            sub = extract_box(tomo, p, 2 * h + 1).astype(np.float64)
            w = np.clip(med - sub, 0, None) * ball
            if w.sum() == 0:
                continue
            c = np.round(p)
            pts[k] = c + np.array([(w * xx).sum(), (w * yy).sum(), (w * zz).sum()]) / w.sum()
    return pts


def bead_distortion(
    tomo: np.ndarray,
    reference: np.ndarray,
    centers: np.ndarray,
    box: int,
    mask_radius: float | None = None,
) -> np.ndarray:
    """Shape change of beads against a reference reconstruction.

    Parameters
    ----------
    tomo, reference : numpy.ndarray or sequence of numpy.ndarray
        Whole tomograms (then ``centers`` locate the beads), or sequences of
        local boxes already centred on the beads (``centers`` ignored).
    centers : array_like, shape (n, 3)
        Bead centres ``(x, y, z)``.
    box : int
        Box size around each bead.
    mask_radius : float, optional
        Compare within this radius only (default ``box / 2``).

    Returns
    -------
    numpy.ndarray, shape (n,)
        ``1 - r`` per bead (0 = unchanged; grows with misalignment).
    """
    if isinstance(tomo, np.ndarray) and tomo.ndim == 3 and centers is not None:
        a = [extract_box(tomo, c, box) for c in centers]
        b = [extract_box(reference, c, box) for c in centers]
    else:
        a, b = list(tomo), list(reference)
    if len(a) != len(b):
        raise InputError(f"{len(a)} boxes against {len(b)} reference boxes")
    h = box // 2
    r = h if mask_radius is None else mask_radius
    zz, yy, xx = np.mgrid[:box, :box, :box] - h
    mask = xx**2 + yy**2 + zz**2 <= r * r
    return np.array([1 - ncc(x, y, mask) for x, y in zip(a, b)])


def bead_spread(boxes: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Reference-free bead shape measure: RMS radius (voxels) of the voxels
    darker than ``threshold`` times the darkest one, per centred box.  An
    isolated well-aligned bead gives about its radius (elongated along z by
    the missing wedge); misalignment smears it and the value grows."""
    out = []
    for b in boxes:
        b = np.asarray(b, np.float64)
        b = b - np.median(b)
        lo = b.min()
        if lo >= 0:
            out.append(0.0)
            continue
        h = np.array(b.shape) // 2
        zz, yy, xx = np.indices(b.shape)
        sel = b <= threshold * lo
        d2 = (xx - h[2]) ** 2 + (yy - h[1]) ** 2 + (zz - h[0]) ** 2
        w = -b[sel]
        out.append(float(np.sqrt((w * d2[sel]).sum() / w.sum())))
    return np.array(out)
