"""``faml-tomo detect-misalignment``: score the gold beads of tomograms with
the strong and weak misalignment networks and classify each tomogram as
aligned, weakly or strongly misaligned.

Example::

    faml-tomo detect-misalignment TS_01.mrc TS_02.mrc \\
        --coords TS_01_beads.star TS_02_beads.star --bead-size-nm 10 \\
        --weak-threshold 0.5 --out results/misalignment

Coordinates are STAR tables with ``rlnCoordinateX/Y/Z`` in tomogram voxels.
Give one STAR file per tomogram (paired in order), or any number of files
whose ``rlnTomoName`` (or ``rlnMicrographName``) names the tomogram (its
file name without extension).  Writes ``scores.star`` (one row per
coordinate, input order, with whether it was scored and why not, the bead's own
verdict and whether it disagrees with its tomogram), ``tomograms.star`` (one
row per tomogram: label, scores, spread of the bead scores, beads that
disagree, coordinates excluded, message), ``misalignment_results.json`` (the
same per tomogram, :mod:`faml_tomo.misalignment.results`) and ``job.json``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..typealiases import PathLike

if TYPE_CHECKING:
    from ..misalignment.job import MisalignmentJob

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..jobs import add_arguments
    from ..misalignment.job import MisalignmentJob

    p = subparsers.add_parser(
        "detect-misalignment",
        help="detect misaligned tomograms from their gold beads",
        description="Extract 32^3 boxes around gold-bead coordinates (resampled so the "
        "bead spans 16 voxels), score them and their sampling with the "
        "strong and weak misalignment networks and classify each tomogram "
        "(mean or votes of its bead scores). Writes scores.star, tomograms.star, "
        "misalignment_results.json and job.json.",
    )
    add_arguments(p, MisalignmentJob)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..jobs import check_job, from_args
    from ..misalignment.job import MisalignmentJob

    job = from_args(MisalignmentJob, args)
    check_job(job)
    return run_job(job, args.out)


def run_job(job: MisalignmentJob, out: PathLike, restart: bool = False) -> int:
    """Run ``job`` into ``out`` with the summary on stdout (``restart``:
    nothing to restart, every run starts afresh)."""
    from ..misalignment.job import run as run_detection

    run_detection(job, out, progress=lambda line: print(line))
    return 0
