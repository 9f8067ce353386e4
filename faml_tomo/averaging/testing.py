"""Small procedural test data for the averaging package (tests, benchmarks).

Not a tomography simulator (no CTF, no tilt-series reconstruction): an
asymmetric phantom is rotated and shifted with
:func:`faml_tomo.geometry.transform_volume`, white Gaussian noise is added at
a given SNR (``var(signal) / var(noise)`` over the box, before the wedge) and
the missing wedge is removed in Fourier space from the sum, as in a
reconstruction from a limited tilt range.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage

from ..geometry import random_rotations, transform_volume
from ..simulation.metrics import ncc as correlation  # one home of Pearson r
from .fourier import spectrum, volume_from_spectrum
from .wedge import wedge_mask

if TYPE_CHECKING:
    from .alignsetup import AlignParams

logger = logging.getLogger(__name__)

__all__ = [
    "phantom",
    "SimulatedSet",
    "simulate_subtomograms",
    "correlation",
    "aligned_correlation",
    "f1_score",
    "relative_pose_errors",
]


def phantom(
    n: int = 32,
    seed: int = 0,
    n_blobs: int = 8,
    radius: float | None = None,
    sigma: float = 0.8,
) -> np.ndarray:
    """Asymmetric blob phantom, smooth, inside a sphere around the centre.

    Parameters
    ----------
    n : int
        Box size in voxels.
    seed : int
        Different seeds give different structures (classes).
    n_blobs : int
        Number of Gaussian blobs (plus one elongated arm).
    radius : float, optional
        Radius in voxels within which blob centres lie (default ``n / 4``).
    sigma : float
        Final Gaussian smoothing in voxels.

    Returns
    -------
    numpy.ndarray, float64, shape (n, n, n)
        Non-negative density, centred on voxel ``n // 2``.
    """
    rng = np.random.default_rng(seed)
    radius = n / 4.0 if radius is None else radius
    c = n // 2
    z, y, x = np.mgrid[:n, :n, :n] - c
    vol = np.zeros((n, n, n))
    for _ in range(n_blobs):
        d = rng.normal(size=3)
        d *= radius * rng.uniform(0.45, 1.0) / np.linalg.norm(d)
        # Ellipsoidal blob: random axes lengths and orientation.
        s = radius * rng.uniform(0.1, 0.3, size=3)
        rot = random_rotations(1, rng)[0]
        u = np.stack([x - d[0], y - d[1], z - d[2]], axis=-1) @ rot
        amp = rng.uniform(0.5, 1.0)
        vol += amp * np.exp(-0.5 * np.sum((u / s) ** 2, axis=-1))
    # An elongated arm breaks any near-symmetry of a few blobs.
    a = rng.normal(size=3)
    a /= np.linalg.norm(a)
    t = x * a[0] + y * a[1] + z * a[2]
    perp2 = x**2 + y**2 + z**2 - t**2
    vol += (
        0.7
        * np.exp(-perp2 / (2 * (0.12 * radius) ** 2))
        * (np.abs(t - 0.4 * radius) < 0.6 * radius)
    )
    return ndimage.gaussian_filter(vol, sigma)


@dataclass
class SimulatedSet:
    """Simulated subtomograms with their ground truth.

    Attributes
    ----------
    volumes : numpy.ndarray, shape (N, n, n, n)
    rotations : numpy.ndarray, shape (N, 3, 3)
        True ``R`` (reference onto particle).
    shifts : numpy.ndarray, shape (N, 3)
        True ``t`` in voxels.
    classes : numpy.ndarray of int, shape (N,)
    references : numpy.ndarray, shape (K, n, n, n)
        Noise-free structures.
    tilt_range : tuple
    snr : float
    """

    volumes: np.ndarray
    rotations: np.ndarray
    shifts: np.ndarray
    classes: np.ndarray
    references: np.ndarray
    tilt_range: tuple
    snr: float


def simulate_subtomograms(
    references: Sequence[ArrayLike],
    n_per_class: int | Sequence[int],
    snr: float,
    tilt_range: Sequence[float] = (-60, 60),
    seed: int = 0,
    max_shift: float = 2.0,
    axis: str | None = None,
    integer_shifts: bool = False,
) -> "SimulatedSet":
    """Rotated, shifted, noisy, wedge-filtered copies of reference structures.

    Parameters
    ----------
    references : sequence of numpy.ndarray, shape (n, n, n)
    n_per_class : int or sequence of int
    snr : float
        ``var(signal) / var(noise)`` over the box (``np.inf``: no noise).
    tilt_range : (float, float)
    seed : int
    max_shift : float
        Shifts are uniform in ``[-max_shift, max_shift]`` per axis (voxels).
    axis : {None, "x", "y", "z"}
        Rotations about one axis only (preferred orientation).
    integer_shifts : bool
        Round shifts to whole voxels.

    Returns
    -------
    SimulatedSet
    """
    rng = np.random.default_rng(seed)
    refs = np.asarray([np.asarray(r, dtype=float) for r in references])
    k = len(refs)
    counts: list[int] = (
        [cast(int, n_per_class)] * k
        if np.isscalar(n_per_class)
        else list(cast(Sequence[int], n_per_class))
    )
    classes = np.repeat(np.arange(k), counts)
    nt = len(classes)
    n = refs.shape[1]
    rots = random_rotations(nt, rng, axis=axis)
    shifts = rng.uniform(-max_shift, max_shift, size=(nt, 3))
    if integer_shifts:
        shifts = np.round(shifts)
    mask = wedge_mask(n, tilt_range, half=True)
    vols = np.empty((nt, n, n, n))
    for i in range(nt):
        sig = transform_volume(refs[classes[i]], rots[i], shifts[i], order=3)
        vol = sig
        if np.isfinite(snr):
            vol = sig + rng.normal(scale=np.sqrt(sig.var() / snr), size=sig.shape)
        vols[i] = volume_from_spectrum(spectrum(vol) * mask, n)
    return SimulatedSet(
        volumes=vols,
        rotations=rots,
        shifts=shifts,
        classes=classes,
        references=refs,
        tilt_range=tuple(tilt_range),
        snr=float(snr),
    )


def aligned_correlation(
    average: np.ndarray, truth: np.ndarray, params: "AlignParams | None" = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """Correlation of an average with the truth after aligning the truth onto it.

    Both are compared at the same resolution (the alignment band), without a
    wedge.  Returns ``(r, R, t)``.
    """
    from .align import AlignParams, fast_align

    params = params or AlignParams()
    res = fast_align(average, truth, (-90, 90), params)
    moved = transform_volume(truth, res.rotations[0], res.shifts[0], order=3)
    n = moved.shape[0]
    r_max = params.band(n)[1]
    kz = np.fft.fftfreq(n, 1.0 / n)
    kx = np.fft.rfftfreq(n, 1.0 / n)
    lp = kz[:, None, None] ** 2 + kz[None, :, None] ** 2 + kx[None, None, :] ** 2 <= r_max**2
    a = volume_from_spectrum(spectrum(average) * lp, n)
    b = volume_from_spectrum(spectrum(moved) * lp, n)
    return correlation(a, b), res.rotations[0], res.shifts[0]


def f1_score(true_classes: ArrayLike, pred_classes: ArrayLike) -> float:
    """Mean F1 over true classes after the best one-to-one matching of labels."""
    from itertools import permutations

    t = np.asarray(true_classes)
    p = np.asarray(pred_classes)
    kt = int(t.max()) + 1
    kp = max(int(p.max()) + 1, kt)
    best = 0.0
    for perm in permutations(range(kp), kt):
        f1s = []
        for c in range(kt):
            tp = np.sum((t == c) & (p == perm[c]))
            prec = tp / max(np.sum(p == perm[c]), 1)
            rec = tp / max(np.sum(t == c), 1)
            f1s.append(0.0 if tp == 0 else 2 * prec * rec / (prec + rec))
        best = max(best, float(np.mean(f1s)))
    return best


def relative_pose_errors(
    rotations: ArrayLike, shifts: ArrayLike, true_rotations: ArrayLike, true_shifts: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Pose errors of a reference-free run, up to the frame of its average.

    A reference-free average sits in its own frame, the truth turned by a
    global ``(G, g)``: estimated poses follow ``R_i = R*_i G`` and
    ``t_i = t*_i + R*_i g``.  ``G`` is the mean of ``R*_i^T R_i`` (chordal
    L2 mean) and ``g`` the median of ``R*_i^T (t_i - t*_i)``; the errors are
    each particle's departure from them.  Use it per class, on asymmetric
    structures.

    Parameters
    ----------
    rotations, true_rotations : numpy.ndarray, shape (N, 3, 3)
    shifts, true_shifts : numpy.ndarray, shape (N, 3)
        Voxels ``(x, y, z)``, :mod:`faml_tomo.geometry` convention.

    Returns
    -------
    angle_deg : numpy.ndarray, shape (N,)
        Rotation error in degrees.
    shift_px : numpy.ndarray, shape (N,)
        Translation error in voxels.
    """
    from scipy.spatial.transform import Rotation

    r = np.asarray(rotations, dtype=float)
    rt = np.asarray(true_rotations, dtype=float)
    g_i = np.einsum("nji,njk->nik", rt, r)  # R*^T R
    g = Rotation.from_matrix(g_i).mean().as_matrix()
    angle = np.degrees(np.arccos(np.clip((np.einsum("nij,ij->n", g_i, g) - 1) / 2, -1, 1)))
    d = np.einsum("nji,nj->ni", rt, np.asarray(shifts, float) - np.asarray(true_shifts, float))
    shift = np.linalg.norm(d - np.median(d, axis=0), axis=1)
    return angle, shift
