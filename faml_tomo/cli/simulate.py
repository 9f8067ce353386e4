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

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_parser(subparsers):
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
        description=SubtomogramSimJob.__doc__.split("\n\n")[0]
        + " Writes one MRC per particle, the noise-free references, "
        "particles.star (RELION labels plus the ground truth) and job.json.",
    )
    q.add_argument("--out", required=True, type=Path, help="output folder")
    add_arguments(q, SubtomogramSimJob)
    q.set_defaults(func=run, simulate_what="subtomograms")
    q = sub.add_parser(
        "tomogram",
        help="tilt series of a slab with gold beads + WBP",
        description=TomogramSimJob.__doc__.split("\n\n")[0]
        + " Writes the tilt series (.mrcs, .tlt, per-image STAR), the "
        "tomogram, true bead coordinates in the tomogram's voxel frame and "
        "job.json.",
    )
    q.add_argument("--out", required=True, type=Path, help="output folder")
    add_arguments(q, TomogramSimJob)
    q.set_defaults(func=run, simulate_what="tomogram")
    return p


def _job_class(what):
    from ..simulation.job import SubtomogramSimJob, TomogramSimJob

    return SubtomogramSimJob if what == "subtomograms" else TomogramSimJob


def run(args):
    from ..jobs import check_job, from_args

    job = from_args(_job_class(args.simulate_what), args)
    check_job(job)
    return run_job(job, args.out)


def run_job(job, out, restart=False):
    """Run a simulation job into ``out`` with a summary on stdout
    (``restart``: nothing to restart, a simulation starts afresh)."""
    from ..simulation.job import SubtomogramSimJob, run_subtomograms, run_tomogram

    run = run_subtomograms if isinstance(job, SubtomogramSimJob) else run_tomogram
    run(job, out, progress=lambda line: print(line))
    return 0
