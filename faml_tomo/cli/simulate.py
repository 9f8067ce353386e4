"""``faml-tomo simulate``: simulated subtomograms and fiducial tomograms with
known ground truth.

Examples
--------
Two similar classes, 50 particles each, at the FAML paper's defaults::

    faml-tomo simulate subtomograms --structure ring7 ring7_cap --count 50 50 \\
        --snr 0.01 --out results/sim_subtomos --seed 1

A 512 x 512 x 128 tomogram with 10 nm beads and a bananas misalignment::

    faml-tomo simulate tomogram --size 512 512 --thickness 128 --pixel-size 15 \\
        --misalignment bananas --magnitude 80 --out results/sim_tomo --seed 1
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..typealiases import PathLike

if TYPE_CHECKING:
    from ..simulation.job import SubtomogramSimJob, TomogramSimJob

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..jobs import add_arguments
    from ..simulation.job import SubtomogramSimJob, TomogramSimJob

    p = subparsers.add_parser(
        "simulate",
        help="simulate subtomograms or tomograms with known ground truth",
        description="Simulate cryo-ET data with known ground truth: subtomograms of "
        "phantoms or density maps (random rigid transforms, CTF, MTF, missing "
        "wedge, noise at a target SNR), or tilt series of a slab with gold "
        "beads and their weighted back-projection, optionally misaligned.",
    )
    sub = p.add_subparsers(dest="simulate_what", metavar="WHAT")
    sub.required = True
    q = sub.add_parser(
        "subtomograms",
        help="subtomograms with random rigid transforms",
        description=(SubtomogramSimJob.__doc__ or "").split("\n\n")[0]
        + " Writes one MRC per particle, the noise-free references, "
        "particles.star (RELION labels plus the ground truth) and job.json.",
    )
    q.add_argument("--out", required=True, type=Path, help="output folder")
    add_arguments(q, SubtomogramSimJob)
    q.set_defaults(func=run, simulate_what="subtomograms")
    q = sub.add_parser(
        "tomogram",
        help="tilt series of a slab with gold beads + WBP",
        description=(TomogramSimJob.__doc__ or "").split("\n\n")[0]
        + " Writes the tilt series (.mrcs, .tlt, per-image STAR), the "
        "tomogram, true bead coordinates in the tomogram's voxel frame and "
        "job.json.",
    )
    q.add_argument("--out", required=True, type=Path, help="output folder")
    add_arguments(q, TomogramSimJob)
    q.set_defaults(func=run, simulate_what="tomogram")
    return p


def _job_class(what: str) -> type[SubtomogramSimJob] | type[TomogramSimJob]:
    from ..simulation.job import SubtomogramSimJob, TomogramSimJob

    return SubtomogramSimJob if what == "subtomograms" else TomogramSimJob


def run(args: argparse.Namespace) -> int:
    from ..jobs import check_job, from_args

    job = from_args(_job_class(args.simulate_what), args)
    check_job(job)
    return run_job(job, args.out)


def run_job(job: SubtomogramSimJob | TomogramSimJob, out: PathLike, restart: bool = False) -> int:
    """Run a simulation job into ``out`` with a summary on stdout
    (``restart``: nothing to restart, a simulation starts afresh)."""
    from ..simulation.job import SubtomogramSimJob, run_subtomograms, run_tomogram

    if isinstance(job, SubtomogramSimJob):
        run_subtomograms(job, out, progress=lambda line: print(line))
    else:
        run_tomogram(job, out, progress=lambda line: print(line))
    return 0
