"""``faml-tomo demo``: an end-to-end run on built-in simulated data, through
a headless Scipion project made from faml_tomo's workflow templates.

The work is in :mod:`faml_tomo.workflow.demo`; this module only parses.
"""

import argparse
import logging

from ..errors import InputError

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end demo on built-in simulated data (Scipion project)",
        description="Simulate tomograms with gold beads (aligned, weakly and strongly "
        "misaligned) and two classes of subtomograms, create a Scipion "
        "project from faml_tomo's workflow templates (import tomograms -> "
        "peak high contrast -> detect misalignment; import subtomograms -> "
        "FAML classify), run it headless to the end, print each protocol's "
        "summary, and write the viewers' figures and a report. The Scipion "
        "variables that are not set are set for the run, with the project "
        "and Scipion's files inside the output folder.",
    )
    p.add_argument("--out", default="results/demo", help="output folder (results/demo)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument(
        "--quick", action="store_true", help="smaller data and fewer iterations (1-2 minutes)"
    )
    p.add_argument("--threads", type=int, default=2, help="threads of each protocol (2)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from ..workflow.demo import run_demo

    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    run_demo(args.out, seed=args.seed, quick=args.quick, threads=args.threads)
    return 0
