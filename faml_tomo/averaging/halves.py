"""Half-sets of a classification run: the split, the per-class FSC and the
gold-standard bookkeeping (independent half-set averages joined only at low
resolution).

Gold standard (Scheres & Chen 2012; RELION's auto-refine): the subtomograms
are split into two random halves before the first iteration and each half
is aligned only against averages made from its own half, so that the Fourier
shell correlation of the two half averages measures signal, not the shared
noise of a common reference.  Below a join radius both halves use the joined
average (RELION's ``--low_resol_join_halves``): this keeps the two halves'
classes and frames in register without sharing the resolution of interest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .alignsetup import BandGeometry
    from .em.estep import LeaveOneOut
    from .prepared import PreparedReference

__all__ = [
    "HalfSets",
    "FSC_GOLD",
    "random_halves",
    "shell_index",
    "class_fsc",
    "fsc_radius",
    "joined_spectra",
    "combine_halves",
    "subset_numbers",
]

FSC_GOLD = 0.143  # Rosenthal & Henderson 2003: resolution of independent halves


@dataclass
class HalfSets:
    """What the E-step needs to know about the half-sets.

    Attributes
    ----------
    first : numpy.ndarray of bool, shape (N,)
        Subtomogram in the first half-set (its statistics also go to the
        ``*_half`` sums).
    refs : list of PreparedReference, optional
        Gold standard: the second half-set's references (the E-step's
        ``refs`` are then the first half-set's).
    loo : LeaveOneOut, optional
        Gold standard: the second half-set's leave-one-out data.
    """

    first: np.ndarray
    refs: list[PreparedReference] | None = None
    loo: LeaveOneOut | None = None

    def side(
        self, index: int, refs: list[PreparedReference], loo: LeaveOneOut | None
    ) -> tuple[list[PreparedReference], LeaveOneOut | None, bool]:
        """References, leave-one-out data and whether it is in the first
        half-set, for subtomogram ``index``."""
        first = bool(self.first[index])
        if first or self.refs is None:
            return refs, loo, first
        return self.refs, self.loo, first


def random_halves(n_particles: int, seed: int) -> np.ndarray:
    """Seeded random split into two halves of sizes ``ceil(N/2)`` and
    ``floor(N/2)``; returns the first half's indicator, shape (N,)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x601D]))
    first = np.zeros(int(n_particles), dtype=bool)
    first[rng.permutation(int(n_particles))[: (int(n_particles) + 1) // 2]] = True
    return first


def subset_numbers(first: np.ndarray) -> np.ndarray:
    """RELION's ``rlnRandomSubset`` (1 or 2) of each subtomogram."""
    return np.where(np.asarray(first, bool), 1, 2)


def shell_index(geom: BandGeometry) -> np.ndarray:
    """Fourier shell (rounded radius in cycles per box) of each band point."""
    return np.rint(np.linalg.norm(geom.freq, axis=1)).astype(int)


def class_fsc(a: np.ndarray, b: np.ndarray, geom: BandGeometry) -> np.ndarray:
    """FSC of two sets of band spectra, per class.

    Parameters
    ----------
    a, b : numpy.ndarray, complex, shape (K, M)
        Half-set sums (or averages) at the band points.
    geom : BandGeometry

    Returns
    -------
    numpy.ndarray, shape (K, r_max + 1 - r_min)
        Curves over shells ``r_min..r_max`` (0 where a half is empty).
    """
    shell = shell_index(geom)
    nb = geom.r_max + 1
    h = geom.herm
    out = np.zeros((len(a), nb))
    for k in range(len(a)):
        cr = np.bincount(shell, weights=h * np.real(a[k] * np.conj(b[k])), minlength=nb)
        pa = np.bincount(shell, weights=h * np.abs(a[k]) ** 2, minlength=nb)
        pb = np.bincount(shell, weights=h * np.abs(b[k]) ** 2, minlength=nb)
        den = np.sqrt(pa * pb)
        out[k] = np.divide(cr, den, out=np.zeros(nb), where=den > 0)[:nb]
    return out[:, geom.r_min :]


def fsc_radius(curve: np.ndarray, geom: BandGeometry, threshold: float) -> int:
    """Last shell before ``curve`` (shells ``r_min..``) first drops below
    ``threshold`` (``r_min - 1`` if it starts below)."""
    radius = geom.r_min - 1
    for r, v in zip(range(geom.r_min, geom.r_max + 1), curve):
        if v < threshold:
            break
        radius = r
    return int(radius)


def joined_spectra(
    half: np.ndarray, combined: np.ndarray, geom: BandGeometry, join_radius: int
) -> np.ndarray:
    """A half-set's averages with the shells up to ``join_radius`` taken
    from the combined averages (shape (K, M) in and out)."""
    low = shell_index(geom) <= int(join_radius)
    return np.where(low[None, :], combined, half)


def combine_halves(half_spectra: np.ndarray, half_gamma: np.ndarray) -> np.ndarray:
    """Class averages of the whole set from the two half-sets' averages,
    weighted by the half-sets' class masses (the FAML M step is linear in
    the sums, so this is the average the whole set would give).

    Parameters
    ----------
    half_spectra : numpy.ndarray, complex, shape (2, K, M)
    half_gamma : numpy.ndarray, shape (2, K)
    """
    g = np.asarray(half_gamma, float)
    tot = g.sum(axis=0)
    w = np.divide(g, tot, out=np.full_like(g, 0.5), where=tot > 0)
    return w[0][:, None] * half_spectra[0] + w[1][:, None] * half_spectra[1]
