"""Training batches of the misalignment networks: class proportions per
network, balanced batches with flip augmentation, validation arrays.

Augmentation uses the 8 sign flips of the box axes (the 180-degree rotations
about Z, Y and X and the mirrors; they map a single-axis tilt geometry about
Y onto another valid one).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..models.network import scale_feature
from ..tfutil import import_tensorflow
from .dataset import ALIGNED_ID, CLASSES, STRONG_ID, WEAK_ID, BoxData

__all__ = [
    "STRONG_GROUPS",
    "WEAK_GROUPS",
    "augment_flips",
    "balanced_batch",
    "make_batches",
    "validation_arrays",
]

# (class id, fraction of each batch, target: 1 = aligned)
STRONG_GROUPS = ((STRONG_ID, 0.5, 0.0), (ALIGNED_ID, 0.25, 1.0), (WEAK_ID, 0.25, 1.0))
WEAK_GROUPS = ((WEAK_ID, 0.5, 0.0), (ALIGNED_ID, 0.5, 1.0))

# Inputs ``(boxes (n, 32, 32, 32, 1), scale feature (n, 1))`` and targets ``(n,)``.
Batch = tuple[tuple[np.ndarray, np.ndarray], np.ndarray]


def augment_flips(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flip each box along a random subset of its three axes (in place
    where possible); returns the array."""
    flips = rng.random((len(boxes), 3)) < 0.5
    for i, f in enumerate(flips):
        axes = tuple(int(a) for a in np.nonzero(f)[0])
        if axes:
            boxes[i] = np.flip(boxes[i], axis=axes)
    return boxes


def balanced_batch(
    data: BoxData,
    groups: Sequence[tuple[int, float, float]],
    batch_size: int,
    rng: np.random.Generator,
    augment: bool = True,
) -> Batch:
    """One batch drawn with fixed class proportions.

    Parameters
    ----------
    data : BoxData
    groups : sequence of (class id, fraction, target)
    batch_size : int
    rng : numpy.random.Generator
    augment : bool

    Returns
    -------
    (x, scale) : numpy.ndarray, (batch, 32, 32, 32, 1) and (batch, 1) float32
        Boxes and their :func:`~faml_tomo.models.network.scale_feature`.
    y : numpy.ndarray, (batch,) float32
    """
    counts = [int(round(f * batch_size)) for _, f, _ in groups]
    counts[0] += batch_size - sum(counts)
    idx, ys = [], []
    for (cid, _, target), n in zip(groups, counts):
        pool = np.flatnonzero(data.label == cid)
        if len(pool) == 0:
            raise InputError(f"no training boxes of class {CLASSES[cid]!r}")
        idx.append(rng.choice(pool, n, replace=len(pool) < n))
        ys.append(np.full(n, target, np.float32))
    idx = np.concatenate(idx)
    x = data.boxes[idx].astype(np.float32)
    if augment:
        augment_flips(x, rng)
    return (x[..., None], scale_feature(data.scale[idx])), np.concatenate(ys)


def make_batches(
    data: BoxData,
    groups: Sequence[tuple[int, float, float]],
    batch_size: int,
    steps: int,
    seed: int,
    augment: bool = True,
) -> Any:
    """A ``keras.utils.PyDataset`` of ``steps`` balanced batches per epoch,
    different every epoch, reproducible from ``seed``."""
    tf = import_tensorflow()

    class _Batches(tf.keras.utils.PyDataset):  # type: ignore[name-defined]
        def __init__(self):
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0

        def __len__(self):
            return int(steps)

        def __getitem__(self, i):
            rng = np.random.default_rng([int(seed), self.epoch, int(i)])
            return balanced_batch(data, groups, batch_size, rng, augment)

        def on_epoch_end(self):
            self.epoch += 1

    return _Batches()


def validation_arrays(
    data: BoxData,
    groups: Sequence[tuple[int, float, float]],
    seed: int,
    max_per_group: int = 600,
) -> Batch:
    """Class-balanced validation boxes (no augmentation)."""
    rng = np.random.default_rng([int(seed), 99])
    idx, ys = [], []
    n = min(max_per_group, *(int(np.sum(data.label == cid)) for cid, _, _ in groups))
    for cid, _, target in groups:
        pool = np.flatnonzero(data.label == cid)
        idx.append(np.sort(rng.choice(pool, n, replace=False)))
        ys.append(np.full(n, target, np.float32))
    idx = np.concatenate(idx)
    return (
        (data.boxes[idx].astype(np.float32)[..., None], scale_feature(data.scale[idx])),
        np.concatenate(ys),
    )
