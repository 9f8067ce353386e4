"""``faml-tomo peak-high-contrast``: find gold fiducials in MRC tomograms.

Examples
--------
Two tomograms at 15 Å/voxel with 10 nm beads::

    faml-tomo peak-high-contrast TS_01.mrc TS_02.mrc --sampling-rate 15 \\
        --bead-size-nm 10 --out results/fiducials

writes, in ``results/fiducials``:

* ``coordinates.star``: one row per fiducial of every tomogram
  (``rlnTomoName``, ``rlnMicrographName``, ``rlnCoordinateX/Y/Z`` in voxels
  of the tomogram, ``rlnAutopickFigureOfMerit`` = mirror correlation);
* ``<tomogram>.star`` and ``<tomogram>.txt`` per tomogram, named after the
  tomogram (the STAR for RELION-style coordinate imports, the ``x y z`` text
  for Scipion's ``tomo - import coordinates 3D``, which matches files to
  tomograms by name);
* ``<tomogram>_fiducials.json`` per tomogram: coordinates, scores, relaxed
  mode, warnings and search statistics (:mod:`faml_tomo.fiducials.results`);
* ``job.json``: parameters, counts, warnings, timings;
* ``faml_run.json``: the run marker (all files of a run are published
  together; see :mod:`faml_tomo.io.publish`).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..typealiases import PathLike

if TYPE_CHECKING:
    from ..fiducials.job import FiducialJob

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..fiducials.job import FiducialJob
    from ..jobs import add_arguments

    p = subparsers.add_parser(
        "peak-high-contrast",
        help="find gold fiducials (beads) in tomograms",
        description="Locate gold fiducials in MRC tomograms with the peak-high-contrast "
        "algorithm (de Isidro-Gómez et al. 2024, §2.3) and write their "
        "coordinates as STAR and text files plus a job record.",
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    add_arguments(p, FiducialJob)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..fiducials.job import FiducialJob
    from ..jobs import check_job, from_args

    job = from_args(FiducialJob, args)
    check_job(job)
    return run_job(job, args.out)


def run_job(job: FiducialJob, out: PathLike, restart: bool = False) -> int:
    """Run ``job`` into ``out`` with progress on stdout (``restart``: nothing
    to restart, every run starts afresh)."""
    from ..fiducials.job import run as run_fiducials

    run_fiducials(job, out, progress=lambda line: print(line, flush=True))
    return 0
