"""The demo's simulated dataset with ground truth: tomograms with gold beads
(aligned, weakly and strongly misaligned) and a two-class subtomogram set,
written as MRC files, with the settings the demo's workflows use for them.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..io import write_mrc
from ..typealiases import PathLike

logger = logging.getLogger(__name__)

__all__ = [
    "TOMO_CASES",
    "PIXEL_SIZE",
    "BEAD_NM",
    "SUB_BOX",
    "SUB_PIXEL",
    "SUB_SNR",
    "SUB_STRUCTURES",
    "TILT",
    "simulate_tomograms",
    "simulate_subtomograms",
]

#: (name, simulated misalignment, magnitude in Å, expected decision)
TOMO_CASES = [
    ("TS_aligned", "none", 0.0, "aligned"),
    ("TS_weak_birds", "birds", 22.0, "weak"),
    ("TS_strong_bananas", "bananas", 300.0, "strong"),
]
PIXEL_SIZE = 15.0
BEAD_NM = 10.0
SUB_BOX, SUB_PIXEL, SUB_SNR = 32, 20.0, 0.05
SUB_STRUCTURES = ("twolobe", "ring7")
TILT = (-60.0, 60.0, 3.0)


def simulate_tomograms(
    folder: PathLike, seed: int, quick: bool, say: Callable[[str], None] = print
) -> list[dict]:
    """Simulate and reconstruct the demo tomograms (MRC, one per case).

    Returns
    -------
    list of dict
        Per tomogram: ``name``, ``kind``, ``magnitude``, ``expected``
        decision, true bead positions ``beads`` (x, y, z voxels), ``shape``
        (nz, ny, nx) and ``path``.
    """
    from ..simulation import (
        AcquisitionParams,
        SlabParams,
        misalignment_preset,
        reconstruct_wbp,
        simulate_tilt_series,
    )

    size, nz = (256, 64) if quick else (384, 96)
    acq = AcquisitionParams(tilt_min=TILT[0], tilt_max=TILT[1], tilt_step=TILT[2])
    cases = []
    for i, (name, kind, magnitude, expected) in enumerate(TOMO_CASES):
        slab = SlabParams(
            nx=size,
            ny=size,
            nz=nz,
            pixel_size=PIXEL_SIZE,
            slab_thickness=0.8 * nz * PIXEL_SIZE,
            bead_diameter=BEAD_NM * 10,
            n_beads=14 if quick else 25,
        )
        ts = simulate_tilt_series(
            slab, acq, misalignment_preset(kind, magnitude, acq.angles().size), rng=seed * 100 + i
        )
        tomo = reconstruct_wbp(ts.images, ts.angles, thickness=nz)
        path = write_mrc(Path(folder) / f"{name}.mrc", tomo, PIXEL_SIZE)
        cases.append(
            {
                "name": name,
                "kind": kind,
                "magnitude": magnitude,
                "expected": expected,
                "beads": np.asarray(ts.slab.beads).tolist(),
                "shape": list(tomo.shape),
                "path": str(path),
            }
        )
        say(
            f"simulated {name}: {size}x{size}x{nz} voxels at {PIXEL_SIZE:g} Å/px, "
            f"{len(ts.slab.beads)} beads of {BEAD_NM:g} nm, misalignment {kind}"
            + (f" {magnitude:g} Å" if magnitude else "")
        )
    return cases


def simulate_subtomograms(
    folder: PathLike, seed: int, quick: bool, say: Callable[[str], None] = print
) -> dict:
    """Simulate the two-class subtomogram set (one MRC per subtomogram).

    Returns
    -------
    dict
        ``files`` (MRC paths), ``truth`` (``{file name: class index}``),
        ``structures``, ``references`` (MRC paths of the true maps).
    """
    from ..simulation import SubtomogramParams, make_phantom, simulate_subtomograms as sim
    from ..simulation.writers import write_subtomograms

    n_per = 16 if quick else 40
    structures = {n: make_phantom(n, SUB_BOX, SUB_PIXEL) for n in SUB_STRUCTURES}
    params = SubtomogramParams(
        box=SUB_BOX, pixel_size=SUB_PIXEL, snr=SUB_SNR, tilt_min=TILT[0], tilt_max=TILT[1]
    )
    sset = sim(structures, [n_per] * len(structures), params, np.random.default_rng(seed))
    paths = write_subtomograms(folder, sset)
    truth = {Path(p).name: int(c) for p, c in zip(paths["subtomograms"], sset.truth.class_index)}
    say(
        f"simulated {len(sset)} subtomograms ({' and '.join(SUB_STRUCTURES)}, "
        f"{n_per} each), {SUB_BOX}^3 voxels at {SUB_PIXEL:g} Å/px, SNR {SUB_SNR:g}, "
        f"tilt {TILT[0]:g}..{TILT[1]:g} deg"
    )
    return {
        "files": [str(p) for p in paths["subtomograms"]],
        "truth": truth,
        "structures": list(SUB_STRUCTURES),
        "references": {k: str(v) for k, v in paths["references"].items()},
    }
