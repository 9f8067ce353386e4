"""``faml-tomo classify``: FAML (or FA) subtomogram averaging and classification.

Examples
--------
Two classes from a RELION-style particle STAR file, 20 iterations::

    faml-tomo classify --star particles.star --classes 2 --tilt-range -60 60 \\
        --out results/faml --seed 1

All MRC files of a folder, alignment-only comparator, four processes::

    faml-tomo classify --folder subtomos/ --mode fa --workers 4 --out results/fa

Across MPI ranks (the same command on every rank; rank 0 writes)::

    mpirun -n 16 faml-tomo classify --star particles.star --classes 2 --out results/mpi
    # SLURM: srun -n 16 faml-tomo classify ...

Per-particle tilt ranges (subtomograms from tomograms with different tilt
ranges) come from the optional STAR columns ``famlTiltMin`` / ``famlTiltMax``
(degrees); rows without them use ``--tilt-range``.

Outputs in ``--out``: ``class_NN.mrc`` (averages), ``particles.star``
(per-particle class, max posterior, number of candidates, log-likelihood and
the best transform as RELION ZYZ Euler angles ``rlnAngleRot/Tilt/Psi`` in
degrees and ``rlnOriginX/Y/ZAngst``: the transform maps the class average
onto the particle, ``particle(x) = average(R^T (x - c - t) + c)``, ``R`` =
RELION's matrix, ``t = -origin / voxel size``; a RELION 5 file with the input
table's columns kept, see :mod:`faml_tomo.io.relion`), ``history.json``
(log-likelihood, class sizes and more per iteration), ``iterations/`` (the
averages and per-particle results of every iteration), ``job.json``
(version, parameters, seed), the run marker ``faml_run.json`` ("complete"
once the final files are published; see :mod:`faml_tomo.io.publish`) and the
checkpoint ``faml_checkpoint.npz``:
running the same command again resumes after the last finished iteration,
and a larger ``--iterations`` continues a finished run.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..typealiases import PathLike

if TYPE_CHECKING:
    from mpi4py.MPI import Comm as MPIComm

    from ..averaging.job import ClassifyJob

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..averaging.job import ClassifyJob
    from ..jobs import add_arguments

    p = subparsers.add_parser(
        "classify",
        help="FAML subtomogram averaging and classification",
        description="Reference-free (or reference-started) averaging and classification "
        "of subtomograms by FAML: fast rotational alignment gives candidate "
        "transforms, maximum likelihood integrates over them (Zhao et al.). "
        "--mode fa runs the alignment-only comparator.",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_arguments(p, ClassifyJob, exclusive=[("star", "folder")])
    p.add_argument(
        "--restart",
        action="store_true",
        help="ignore an existing checkpoint in --out (and remove its per-iteration files)",
    )
    p.set_defaults(func=run)
    return p


def _mpi_comm() -> MPIComm | None:
    """COMM_WORLD when running under an MPI launcher with several ranks."""
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    comm = MPI.COMM_WORLD
    return comm if comm.Get_size() > 1 else None


def run(args: argparse.Namespace) -> int:
    from ..averaging.job import ClassifyJob
    from ..jobs import check_job, from_args

    job = from_args(ClassifyJob, args)
    check_job(job)
    return run_job(job, args.out, restart=args.restart)


def run_job(job: ClassifyJob, out: PathLike, restart: bool = False) -> int:
    """Run ``job`` into ``out`` with progress and a summary on stdout."""
    from ..averaging.job import run as run_classify

    run_classify(
        job, out, progress=lambda line: print(line, flush=True), comm=_mpi_comm(), restart=restart
    )
    return 0
