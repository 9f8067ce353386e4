"""Helpers shared by faml_tomo's tests (unit and Scipion protocol tests).

This module does not import pyworkflow (compute tests use it too); the
protocol-test base class is in :mod:`faml_tomo.tests.protocol_base`.
Skips use ``unittest`` decorators so pytest and Scipion's runner both honour
them.
"""

import os
import unittest
from pathlib import Path

import numpy as np

from faml_tomo.io import write_mrc

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("FAML_TOMO_SHARED", REPO_ROOT.parent / "shared"))
STRUCTURES_DIR = SHARED_DIR / "data" / "structures"

requires_shared = unittest.skipUnless(
    STRUCTURES_DIR.is_dir(),
    f"needs the reference density maps in {STRUCTURES_DIR} (../shared beside the "
    f"repository); absent here",
)


def structure_path(name):
    """Path of a reference density map in ../shared, e.g. ``"4v4r"``."""
    return STRUCTURES_DIR / f"{name}.mrc"


def write_volumes(folder, volumes, voxel_size, prefix="vol"):
    """Write each volume of ``volumes`` as ``<folder>/<prefix>_NNN.mrc``.

    Returns the list of paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_mrc(folder / f"{prefix}_{i:03d}.mrc", vol, voxel_size)
        for i, vol in enumerate(volumes)
    ]


def random_volume(shape=(16, 16, 16), seed=0):
    """Smooth random test volume (float32)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), 1.5).astype(np.float32)
