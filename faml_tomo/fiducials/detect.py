"""Candidate detection of the peak-high-contrast finder (paper §2.3, steps 2
and 3): dark outliers in each filtered XY slice, 2D connected components
filtered by size and circularity, and 3D voting of the 2D objects across
consecutive slices."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

logger = logging.getLogger(__name__)

__all__ = ["SliceObjects", "slice_objects", "SliceVoter", "Candidates"]

EIGHT_CONNECTED = np.ones((3, 3), bool)


@dataclass
class SliceObjects:
    """2D objects kept in one slice.

    Attributes
    ----------
    labels : numpy.ndarray, shape (ny, nx), int32
        0 outside objects, ``1..n`` inside the kept objects.
    x, y : numpy.ndarray, shape (n,)
        Centroids weighted by depth below the threshold, in voxels.
    area : numpy.ndarray, shape (n,)
        Voxels per object.
    mass : numpy.ndarray, shape (n,)
        Sum of (threshold - value) over the object.
    minimum : numpy.ndarray, shape (n,)
        Darkest filtered value of the object.
    """

    labels: np.ndarray
    x: np.ndarray
    y: np.ndarray
    area: np.ndarray
    mass: np.ndarray
    minimum: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


def _measure(lab, xs, ys, vals, n, threshold):
    """Per-object statistics from the voxels of labelled objects ``1..n``."""
    idx = np.arange(1, n + 1)
    area = ndimage.sum_labels(np.ones(len(lab)), lab, idx)
    cx = ndimage.mean(xs, lab, idx)
    cy = ndimage.mean(ys, lab, idx)
    r2 = (xs - cx[lab - 1]) ** 2 + (ys - cy[lab - 1]) ** 2
    r2max = ndimage.maximum(r2, lab, idx)
    with np.errstate(divide="ignore"):
        circularity = np.where(r2max > 0, area / (np.pi * r2max), np.inf)
    depth = (threshold - vals).astype(np.float64)
    mass = ndimage.sum_labels(depth, lab, idx)
    wx = ndimage.sum_labels(depth * xs, lab, idx) / mass
    wy = ndimage.sum_labels(depth * ys, lab, idx) / mass
    minimum = ndimage.minimum(vals, lab, idx)
    return area, circularity, wx, wy, mass, np.asarray(minimum, float)


def slice_objects(
    filtered: np.ndarray,
    threshold: float,
    min_area: float,
    min_circularity: float,
    margin: int = 0,
    split_levels: Sequence[float] = (1 / 3, 2 / 3),
) -> SliceObjects:
    """Dark-outlier objects of one filtered slice.

    Parameters
    ----------
    filtered : numpy.ndarray, shape (ny, nx)
        Filtered slice (beads negative).
    threshold : float
        Voxels below it are outliers.
    min_area : float
        Smallest object kept, in voxels.
    min_circularity : float
        Smallest ``area / (pi * r_max ** 2)`` kept, where ``r_max`` is the
        largest distance from the centroid to a voxel centre of the object:
        1 for a disc, ``b / a`` for an ellipse of semi-axes ``a > b``.
    margin : int
        Voxels along the slice edges that are ignored (FFT wrap-around).
    split_levels : sequence of float
        A component that is not round enough (a bead fused with dense
        protein) is thresholded again deeper, at ``threshold + f * (min -
        threshold)`` for each fraction ``f``, and the round cores that
        appear are kept.  Empty: no splitting.

    Returns
    -------
    SliceObjects
    """
    mask = filtered < threshold
    if margin > 0:
        mask[:margin] = False
        mask[-margin:] = False
        mask[:, :margin] = False
        mask[:, -margin:] = False
    labels, n = ndimage.label(mask, structure=EIGHT_CONNECTED)
    empty = np.zeros(0)
    if n == 0:
        return SliceObjects(labels, empty, empty, empty, empty, empty)
    ys, xs = np.nonzero(mask)
    lab = labels[ys, xs]
    vals = filtered[ys, xs]
    area, circ, wx, wy, mass, minimum = _measure(lab, xs, ys, vals, n, threshold)
    keep = (area >= min_area) & (circ >= min_circularity)
    out_labels = np.zeros(n + 1, np.int32)
    out_labels[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    out_labels = out_labels[labels]
    rows = [np.column_stack([wx, wy, area, mass, minimum])[keep]]
    count = int(keep.sum())

    # Split fused components at deeper levels (only those big enough to hold
    # a bead core; few per slice).
    retry = np.nonzero(~keep & (area >= min_area))[0]
    if len(split_levels) and len(retry):
        boxes = ndimage.find_objects(labels)
        for i in retry:
            sl = boxes[i]
            sub = filtered[sl]
            inside = labels[sl] == i + 1
            for f in split_levels:
                level = threshold + f * (minimum[i] - threshold)
                sub_lab, m = ndimage.label(inside & (sub < level), structure=EIGHT_CONNECTED)
                if m == 0:
                    break
                sy, sx = np.nonzero(sub_lab)
                sl_lab = sub_lab[sy, sx]
                a, c, px, py, ms, mn = _measure(
                    sl_lab, sx.astype(float), sy.astype(float), sub[sy, sx], m, threshold
                )
                ok = (a >= min_area) & (c >= min_circularity)
                if not ok.any():
                    continue
                ids = np.zeros(m + 1, np.int32)
                ids[1:][ok] = np.arange(count + 1, count + 1 + int(ok.sum()), dtype=np.int32)
                piece = ids[sub_lab]
                region = out_labels[sl]
                region[piece > 0] = piece[piece > 0]
                rows.append(np.column_stack([px + sl[1].start, py + sl[0].start, a, ms, mn])[ok])
                count += int(ok.sum())
                inside &= ~np.isin(sub_lab, np.nonzero(ok)[0] + 1)
    x, y, a, ms, mn = np.concatenate(rows).T if count else (empty,) * 5
    return SliceObjects(out_labels, x, y, a, ms, mn)


@dataclass
class Candidates:
    """3D candidates: chains of 2D objects in consecutive slices.

    Attributes
    ----------
    xyz : numpy.ndarray, shape (n, 3)
        Mass-weighted centres ``(x, y, z)`` in voxels.
    voxels : numpy.ndarray, shape (n,)
        Outlier voxels attracted to each centre.
    n_slices : numpy.ndarray, shape (n,)
        Length of each chain in slices.
    minimum : numpy.ndarray, shape (n,)
        Darkest filtered value of each chain.
    """

    xyz: np.ndarray
    voxels: np.ndarray
    n_slices: np.ndarray
    minimum: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)

    def take(self, index: np.ndarray) -> "Candidates":
        return Candidates(
            self.xyz[index], self.voxels[index], self.n_slices[index], self.minimum[index]
        )


class SliceVoter:
    """Accumulate the 2D objects of consecutive slices and link those that
    overlap in adjacent slices (each object votes for the objects it
    overlaps in the slices above and below).

    Objects nobody votes for are removed; since voting is mutual, one pass is
    the fixed point of the paper's iteration.  A chain of linked objects is
    one 3D object whose mass-weighted centre is a candidate.

    Examples
    --------
    >>> voter = SliceVoter()                                  # doctest: +SKIP
    >>> for z, objs in enumerate(per_slice_objects):          # doctest: +SKIP
    ...     voter.add(z, objs)
    >>> cands = voter.candidates(min_slices=2, min_voxels=50)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._rows: list[np.ndarray] = []  # per slice: arrays z, x, y, area, mass, minimum
        self._edges: list[np.ndarray] = []  # (global id a, global id b)
        self._count = 0
        self._prev: tuple[int, np.ndarray, int] | None = None  # (z, labels, first global id)

    def add(self, z: int, objects: SliceObjects) -> None:
        """Add the objects of slice ``z`` (slices must come in increasing z)."""
        n = len(objects)
        first = self._count
        if n:
            self._rows.append(
                np.column_stack(
                    [
                        np.full(n, float(z)),
                        objects.x,
                        objects.y,
                        objects.area,
                        objects.mass,
                        objects.minimum,
                    ]
                )
            )
        if self._prev is not None and n and self._prev[0] == z - 1:
            prev_labels, prev_first = self._prev[1], self._prev[2]
            both = (prev_labels > 0) & (objects.labels > 0)
            if both.any():
                pairs = np.unique(
                    prev_labels[both].astype(np.int64) * (n + 1) + objects.labels[both]
                )
                a = pairs // (n + 1) - 1 + prev_first
                b = pairs % (n + 1) - 1 + first
                self._edges.append(np.column_stack([a, b]))
        self._prev = (z, objects.labels, first)
        self._count += n

    @property
    def n_objects(self) -> int:
        """Number of 2D objects added so far."""
        return self._count

    def candidates(self, min_slices: int = 2, min_voxels: float = 1) -> "Candidates":
        """3D candidates from the chains of voted objects.

        Parameters
        ----------
        min_slices : int
            Chains shorter than this are dropped (2: an object must be voted
            for by a neighbour).
        min_voxels : float
            Minimum number of outlier voxels in a chain.

        Returns
        -------
        Candidates
        """
        if not self._rows:
            return Candidates(np.zeros((0, 3)), np.zeros(0), np.zeros(0, int), np.zeros(0))
        rows = np.concatenate(self._rows)
        n = len(rows)
        edges = np.concatenate(self._edges) if self._edges else np.zeros((0, 2), np.int64)
        graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
        n_comp, comp = connected_components(graph, directed=False)
        z, x, y, area, mass, minimum = rows.T
        idx = np.arange(n_comp)
        m = ndimage.sum_labels(mass, comp, idx)
        xyz = np.column_stack(
            [
                ndimage.sum_labels(mass * x, comp, idx) / m,
                ndimage.sum_labels(mass * y, comp, idx) / m,
                ndimage.sum_labels(mass * z, comp, idx) / m,
            ]
        )
        voxels = ndimage.sum_labels(area, comp, idx)
        n_slices = np.bincount(comp, minlength=n_comp)
        mins = ndimage.minimum(minimum, comp, idx)
        keep = (n_slices >= min_slices) & (voxels >= min_voxels)
        return Candidates(xyz[keep], voxels[keep], n_slices[keep], np.asarray(mins)[keep])
