"""Simulated subtomograms with known rigid transforms (FAML paper, §3.1).

Each particle is a structure rotated and shifted by a random rigid transform
(the convention of :mod:`faml_tomo.geometry`: ``particle(x) =
reference(R^T (x - c - t) + c)``), imaged with the CTF and the detector MTF,
restricted to the Fourier components a single-axis tilt series about Y
observes (the missing wedge), and given noise of a chosen SNR.

By the central-slice theorem, a reconstruction from a continuous tilt series
with a constant defocus has in Fourier space the structure's transform times
``CTF(|k|) MTF(|k|)`` on the observed wedge; white image noise becomes white
noise on the same wedge (a weighted back-projection flattens the ``1/|k|``
density of central planes).  This is what is simulated here, directly in 3D;
the finite tilt step and the defocus gradient across tilted images are not
modelled.

SNR is ``var(signal) / var(noise)`` over the box, for each subtomogram: the
noise is scaled to the variance of that particle's noise-free signal.
"""

import logging
from dataclasses import asdict, dataclass, field
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as sfft

from ..errors import InputError
from ..geometry import matrix_to_euler, origin_from_shift, random_rotations, transform_volume
from .optics import CTFParams, check_tilt_range, ctf, detector_mtf, radial_frequency, wedge_mask

logger = logging.getLogger(__name__)

__all__ = [
    "SubtomogramParams",
    "SubtomogramTruth",
    "SubtomogramSet",
    "simulate_subtomograms",
    "random_shifts",
    "acquisition_filter",
    "apply_acquisition",
]


@dataclass
class SubtomogramParams:
    """Acquisition parameters of simulated subtomograms.

    Attributes
    ----------
    box : int
        Box size in voxels (default 32).
    pixel_size : float
        Voxel size in Å (default 20).
    snr : float
        Target ``var(signal) / var(noise)`` per subtomogram, > 0 (default
        0.01, the SNR measured on ribosomes in the FAML paper); ``inf`` gives
        noise-free subtomograms.
    tilt_min, tilt_max : float
        Tilt range in degrees about Y (default -60, 60).
    max_shift : float
        Largest shift in voxels; shifts are uniform in the ball of that
        radius (default 2).
    orientations : {"uniform", "y"}
        Rotations uniform on SO(3), or about Y only (preferred orientation).
    ctf : CTFParams or None
        Microscope; None skips the CTF (the density is then inverted, so
        protein is still dark).
    defocus_spread : float
        Per-particle defocus drawn uniformly in ``defocus +- spread`` µm.
    mtf : bool
        Apply the detector MTF ``sinc(pi w / 2)`` to the signal.
    invert : bool
        Flip the sign of the output so protein is bright (as after the
        contrast inversion most averaging programs expect); default False
        keeps cryo-ET contrast (protein dark).
    """

    box: int = 32
    pixel_size: float = 20.0
    snr: float = 0.01
    tilt_min: float = -60.0
    tilt_max: float = 60.0
    max_shift: float = 2.0
    orientations: str = "uniform"
    ctf: Optional[CTFParams] = field(default_factory=CTFParams)
    defocus_spread: float = 0.0
    mtf: bool = True
    invert: bool = False

    def validate(self) -> "SubtomogramParams":
        """Raise :class:`InputError` naming the first bad parameter."""
        if int(self.box) != self.box or self.box < 8:
            raise InputError(f"box must be an integer >= 8 voxels, got {self.box}")
        if not np.isfinite(self.pixel_size) or self.pixel_size <= 0:
            raise InputError(f"pixel_size must be > 0 Å, got {self.pixel_size}")
        if np.isnan(self.snr) or self.snr <= 0:
            raise InputError(f"snr must be > 0 (var(signal)/var(noise)), got {self.snr}")
        check_tilt_range(self.tilt_min, self.tilt_max)
        if not np.isfinite(self.max_shift) or self.max_shift < 0:
            raise InputError(f"max_shift must be >= 0 voxels, got {self.max_shift}")
        if self.max_shift > self.box / 4:
            raise InputError(
                f"max_shift ({self.max_shift:g} px) must not exceed a quarter "
                f"of the box ({self.box} px)"
            )
        if self.orientations not in ("uniform", "y"):
            raise InputError(f"orientations must be 'uniform' or 'y', got {self.orientations!r}")
        if self.ctf is not None:
            self.ctf.validate()
        if not np.isfinite(self.defocus_spread) or self.defocus_spread < 0:
            raise InputError(f"defocus_spread must be >= 0 µm, got {self.defocus_spread}")
        return self

    def as_dict(self) -> dict:
        """The fields as a plain dict (for the record; the optics as a dict)."""
        return asdict(self)


@dataclass
class SubtomogramTruth:
    """Ground truth of a simulated set of subtomograms.

    Attributes
    ----------
    class_index : numpy.ndarray, shape (n,), int
        Index into ``class_names`` of each particle.
    class_names : list of str
    rotations : numpy.ndarray, shape (n, 3, 3)
        Active rotation ``R`` (reference -> particle) on ``(x, y, z)``.
    shifts : numpy.ndarray, shape (n, 3)
        Shift ``t = (tx, ty, tz)`` in voxels.
    defocus : numpy.ndarray, shape (n,)
        Defocus in µm (negative = underfocus); NaN without CTF.
    snr : numpy.ndarray, shape (n,)
        ``var(signal) / var(noise)`` measured on each output box.
    pixel_size : float
        Å per voxel.
    """

    class_index: np.ndarray
    class_names: list
    rotations: np.ndarray
    shifts: np.ndarray
    defocus: np.ndarray
    snr: np.ndarray
    pixel_size: float

    @property
    def eulers(self) -> np.ndarray:
        """RELION ZYZ ``(rot, tilt, psi)`` in degrees, shape (n, 3)."""
        return matrix_to_euler(self.rotations)

    @property
    def shifts_angstrom(self) -> np.ndarray:
        """RELION's ``rlnOriginX/Y/ZAngst`` of the shifts (Å, ``-t`` times the
        pixel size), shape (n, 3)."""
        return origin_from_shift(self.shifts, self.pixel_size)

    @property
    def class_number(self) -> np.ndarray:
        """1-based class numbers (``rlnClassNumber``)."""
        return self.class_index + 1


@dataclass
class SubtomogramSet:
    """Simulated subtomograms and their ground truth.

    Attributes
    ----------
    volumes : numpy.ndarray, shape (n, box, box, box), float32
        Subtomograms, each indexed ``[z, y, x]``.
    truth : SubtomogramTruth
    references : dict of str to numpy.ndarray
        The noise-free structure (density, protein positive) of each class.
    params : SubtomogramParams
    clean : numpy.ndarray or None
        Noise-free subtomograms (same shape as ``volumes``) if requested.
    """

    volumes: np.ndarray
    truth: SubtomogramTruth
    references: dict
    params: SubtomogramParams
    clean: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.volumes)


def random_shifts(n: int, max_shift: float, rng: np.random.Generator) -> np.ndarray:
    """Shifts uniform in the ball of radius ``max_shift``: array (n, 3)."""
    d = rng.standard_normal((n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = max_shift * rng.random(n) ** (1 / 3)
    return d * r[:, None]


def acquisition_filter(
    shape: tuple[int, int, int],
    params: SubtomogramParams,
    defocus: float | None = None,
    rfft: bool = True,
) -> np.ndarray:
    """Fourier filter of the signal: ``CTF * MTF * wedge`` (``-MTF * wedge``
    without CTF), sign-flipped when ``params.invert``.

    Parameters
    ----------
    shape : tuple of int
        ``(nz, ny, nx)``.
    params : SubtomogramParams
    defocus : float, optional
        Defocus in µm replacing ``params.ctf.defocus``.
    rfft : bool
        rfftn layout (default) or fftn layout.

    Returns
    -------
    numpy.ndarray, float32
    """
    k = radial_frequency(shape, params.pixel_size, rfft)
    wedge = wedge_mask(shape, params.tilt_min, params.tilt_max, rfft=rfft)
    h = wedge.astype(np.float64)
    if params.mtf:
        h = h * detector_mtf(k * params.pixel_size)
    if params.ctf is None:
        h = -h
    else:
        c = (
            params.ctf
            if defocus is None
            else CTFParams(
                params.ctf.voltage, params.ctf.cs, defocus, params.ctf.amplitude_contrast
            )
        )
        h = h * ctf(k, c)
    if params.invert:
        h = -h
    return h.astype(np.float32)


def apply_acquisition(
    volume: np.ndarray,
    signal_filter: np.ndarray,
    noise_filter: np.ndarray,
    snr: float,
    rng: np.random.Generator,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter one volume and add noise of a given SNR.

    Parameters
    ----------
    volume : numpy.ndarray, shape (nz, ny, nx)
        Transformed structure (density).
    signal_filter, noise_filter : numpy.ndarray
        rfftn-layout filters for the signal and the white noise.
    snr : float
        ``var(signal) / var(noise)``; ``inf`` adds no noise.
    rng : numpy.random.Generator
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    noisy, clean : numpy.ndarray, float32
    """
    shape = volume.shape
    clean = sfft.irfftn(
        sfft.rfftn(volume, workers=workers) * signal_filter, s=shape, workers=workers
    )
    if not np.isfinite(snr):
        return clean.astype(np.float32), clean.astype(np.float32)
    white = rng.standard_normal(shape)
    noise = sfft.irfftn(sfft.rfftn(white, workers=workers) * noise_filter, s=shape, workers=workers)
    vs, vn = clean.var(), noise.var()
    if vs == 0:
        raise InputError(
            "the structure has no signal in the box after the acquisition "
            "filters (empty or constant volume?)"
        )
    noise *= np.sqrt(vs / (snr * vn))
    return (clean + noise).astype(np.float32), clean.astype(np.float32)


def _class_counts(n, n_classes):
    if np.ndim(n) == 0:
        if int(n) != n or n < 1:
            raise InputError(f"number of subtomograms must be a positive integer, got {n}")
        base = [int(n) // n_classes] * n_classes
        for i in range(int(n) % n_classes):
            base[i] += 1
        return base
    counts = [int(c) for c in n]
    if len(counts) != n_classes:
        raise InputError(f"{len(counts)} particle counts given for {n_classes} structures")
    if any(c < 0 for c in counts) or sum(counts) == 0:
        raise InputError(f"particle counts must be >= 0 with a positive total, got {counts}")
    return counts


def simulate_subtomograms(
    structures: Mapping[str, ArrayLike],
    n: int | Sequence[int],
    params: SubtomogramParams | None = None,
    rng: np.random.Generator | int | None = None,
    keep_clean: bool = False,
    workers: int | None = None,
) -> SubtomogramSet:
    """Simulate subtomograms of one or more structures.

    Parameters
    ----------
    structures : dict of str to numpy.ndarray
        Class name -> density volume of shape ``(box, box, box)`` (protein
        positive; see :mod:`.phantoms`).  Class indices follow dict order.
    n : int or sequence of int
        Total number of particles (split evenly over the classes) or one
        count per class.
    params : SubtomogramParams, optional
        Defaults to ``SubtomogramParams()``.
    rng : numpy.random.Generator or int or None
        Source of randomness (a seed is accepted).  The same seed gives
        identical output.
    keep_clean : bool
        Also return the noise-free subtomograms.
    workers : int, optional
        Threads for scipy.fft.

    Returns
    -------
    SubtomogramSet
        Particles in random class order.

    Raises
    ------
    InputError
        Bad parameters, or a structure whose box differs from ``params.box``.
    """
    params = (params or SubtomogramParams()).validate()
    rng = np.random.default_rng(rng)
    if not structures:
        raise InputError("no structure given")
    names = list(structures)
    box = int(params.box)
    refs = {}
    for name in names:
        vol = np.asarray(structures[name], np.float32)
        if vol.shape != (box,) * 3:
            raise InputError(f"structure {name!r} has shape {vol.shape}, expected a {box}^3 box")
        refs[name] = vol
    counts = _class_counts(n, len(names))
    labels = rng.permutation(np.repeat(np.arange(len(names)), counts))
    total = labels.size
    rots = random_rotations(total, rng, axis=None if params.orientations == "uniform" else "y")
    shifts = random_shifts(total, params.max_shift, rng)
    if params.ctf is not None:
        defocus = params.ctf.defocus + rng.uniform(-1, 1, total) * params.defocus_spread
    else:
        defocus = np.full(total, np.nan)

    shape = (box,) * 3
    noise_filter = wedge_mask(shape, params.tilt_min, params.tilt_max, rfft=True)
    fixed_filter = None if params.defocus_spread > 0 else acquisition_filter(shape, params)
    out = np.empty((total, *shape), np.float32)
    clean = np.empty_like(out) if keep_clean else None
    snr = np.empty(total)
    for i in range(total):
        moved = transform_volume(refs[names[labels[i]]], rots[i], shifts[i], order=3)
        filt = (
            fixed_filter
            if fixed_filter is not None
            else acquisition_filter(shape, params, defocus[i])
        )
        noisy, cl = apply_acquisition(moved, filt, noise_filter, params.snr, rng, workers)
        out[i] = noisy
        if clean is not None:  # keep_clean
            clean[i] = cl
        noise_var = np.var(noisy.astype(np.float64) - cl)
        snr[i] = np.inf if noise_var == 0 else cl.var() / noise_var
    truth = SubtomogramTruth(labels, names, rots, shifts, defocus, snr, float(params.pixel_size))
    logger.info(
        "simulated %d subtomograms of %s (%d^3, %.1f Å/px, SNR %g)",
        total,
        ", ".join(names),
        box,
        params.pixel_size,
        params.snr,
    )
    return SubtomogramSet(out, truth, refs, params, clean)
