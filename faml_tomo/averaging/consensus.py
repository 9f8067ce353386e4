"""Classes started from a consensus alignment: wedge-masked differences,
their principal components and k-means (the initial split of ``init="consensus"``).

A random split (paper §2.4) starts ``K`` averages that differ only by
noise; when the classes differ by a small part of the mass, EM from such a
start at low SNR rarely finds the true split (measured, 4v4r with and
without 9 % of its mass, 100 + 100, 32^3 at 12 Å/px, SNR 0.01: F1 0.46-0.78
over three data seeds, where classification at the true poses reaches
0.97).  Aligning all subtomograms to one consensus average first is
reliable at that SNR; at the consensus poses each subtomogram minus the
consensus over its observed components -- the *wedge-masked difference*
(Heumann, Hoenger & Mastronarde 2011, JSB 175:288) -- holds the class
difference and noise, but not the missing wedge (zero where unobserved on
both sides), so its leading principal components separate the classes.
The subtomograms that fit the consensus worst (mostly misaligned ones) are
left out of the principal-component fit and only projected.
"""

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..errors import InputError
from .backrotate import back_rotate, padded_observed
from .halves import shell_index

if TYPE_CHECKING:
    from .alignsetup import BandGeometry
    from .parallel import SerialRunner

logger = logging.getLogger(__name__)

__all__ = ["kmeans", "wmd_split", "FIT_FRACTION", "MAX_FIT"]

FIT_FRACTION = 0.75  # best-fitting share of the subtomograms that fits the components
MAX_FIT = 2000  # at most this many (a random subset beyond: memory)


def kmeans(
    x: ArrayLike, k: int, rng: np.random.Generator, restarts: int = 10, n_iter: int = 100
) -> tuple[np.ndarray, float]:
    """Seeded k-means (k-means++ starts, Lloyd iterations), best of ``restarts``
    by within-cluster sum of squares.

    Parameters
    ----------
    x : array_like, shape (N, D)
    k : int
    rng : numpy.random.Generator

    Returns
    -------
    labels : numpy.ndarray of int, shape (N,)
        No cluster is left empty.
    inertia : float
    """
    x = np.asarray(x, float)
    n = len(x)
    best: tuple = (None, np.inf)
    for _ in range(int(restarts)):
        centres = [x[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((x[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1), axis=1)
            tot = d2.sum()
            pick = rng.choice(n, p=d2 / tot) if tot > 0 else rng.integers(n)
            centres.append(x[pick])
        c = np.asarray(centres)
        labels = None
        for _ in range(int(n_iter)):
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            new = np.argmin(d2, axis=1)
            for j in range(k):  # refill an emptied cluster
                if not np.any(new == j):
                    far = int(np.argmax(d2[np.arange(n), new]))
                    new[far] = j
            if labels is not None and np.array_equal(new, labels):
                break
            labels = new
            c = np.stack([x[labels == j].mean(0) for j in range(k)])
        assert labels is not None  # at least one pass ran
        inertia = float(((x - c[labels]) ** 2).sum())
        if inertia < best[1]:
            best = (labels.copy(), inertia)
    return best


def _difference(part, rotations, shifts, consensus, geom, pad, inband):
    """Real feature vector of one subtomogram's wedge-masked difference:
    ``sqrt(h) (R^-1 (w X) - R^-1 w A)`` on the band points ``inband``
    (``h`` the Hermitian weight, so that dot products are full-spectrum
    sums), real and imaginary parts, single precision."""
    vals, mask = back_rotate(
        part, padded_observed(part, geom, pad), rotations[part.index], shifts[part.index], geom
    )
    d = ((vals - mask * consensus) * np.sqrt(geom.herm))[inband]
    return np.concatenate([d.real, d.imag]).astype(np.float32)


def _fit_rows(parts, rows, rotations, shifts, consensus, geom, pad, inband):
    """Chunk function: ``(index, feature)`` of the subtomograms in ``rows``."""
    return [
        (p.index, _difference(p, rotations, shifts, consensus, geom, pad, inband))
        for p in parts
        if p.index in rows
    ]


def _project(parts, rotations, shifts, consensus, geom, pad, inband, mean, basis):
    """Chunk function: ``(index, coordinates)`` of every subtomogram in the
    principal components ``basis`` (rows) about ``mean``."""
    return [
        (p.index, basis @ (_difference(p, rotations, shifts, consensus, geom, pad, inband) - mean))
        for p in parts
    ]


def wmd_split(
    runner: "SerialRunner",
    rotations: np.ndarray,
    shifts: np.ndarray,
    fit: ArrayLike,
    consensus: np.ndarray,
    geom: "BandGeometry",
    k: int,
    radius: int,
    pad: int,
    seed: int,
    restarts: int = 10,
) -> np.ndarray:
    """Initial class labels from the wedge-masked differences at consensus poses.

    Parameters
    ----------
    runner : parallel runner
        Holds the prepared subtomograms (:mod:`.parallel`).
    rotations, shifts : numpy.ndarray, shapes (N, 3, 3) and (N, 3)
        Consensus transforms (reference onto particle).
    fit : numpy.ndarray, shape (N,)
        How well each subtomogram fits the consensus (e.g. its constrained
        correlation); the lowest ``1 - FIT_FRACTION`` are only projected.
    consensus : numpy.ndarray, complex, shape (M,)
        Consensus average at the band points (wedge-compensated mean of the
        subtomograms at ``rotations, shifts``).
    geom : BandGeometry
    k : int
        Number of classes; ``k`` principal components are kept.
    radius : int
        Band radius (shells) of the differences: the resolution the
        consensus reached (beyond it the poses are not reliable).
    pad : int
        Oversampling of the interpolation.
    seed : int
        Seeds the subset of a large set and k-means.
    restarts : int
        k-means starts.

    Returns
    -------
    numpy.ndarray of int, shape (N,)

    Raises
    ------
    InputError
        Fewer than ``k + 1`` subtomograms to fit the components.
    """
    n_part = runner.n_particles
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x574D44]))
    order = np.argsort(-np.asarray(fit, float), kind="stable")
    rows = order[: max(int(np.ceil(FIT_FRACTION * n_part)), k + 1)]
    if len(rows) > MAX_FIT:
        rows = rng.choice(rows, MAX_FIT, replace=False)
    if len(rows) < k + 1:
        raise InputError(
            f"consensus initialisation needs more than K={k} subtomograms, got {n_part}"
        )
    inband = shell_index(geom) <= radius
    feats = dict(
        item
        for chunk in runner.map(
            _fit_rows, set(rows.tolist()), rotations, shifts, consensus, geom, pad, inband
        )
        for item in chunk
    )
    x = np.stack([feats[i] for i in sorted(feats)]).astype(float)
    mean = x.mean(axis=0)
    _, sv, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[:k].astype(np.float32)
    coords = np.zeros((n_part, len(basis)))
    for chunk in runner.map(
        _project, rotations, shifts, consensus, geom, pad, inband, mean.astype(np.float32), basis
    ):
        for i, c in chunk:
            coords[i] = c
    labels, _ = kmeans(coords, k, rng, restarts)
    logger.info(
        "consensus split: wedge-masked differences of %d subtomograms to %d shells, "
        "%d principal components (singular values %s), class sizes %s",
        len(rows),
        radius,
        len(basis),
        np.round(sv[: len(basis)], 1).tolist(),
        np.bincount(labels, minlength=k).tolist(),
    )
    return labels
