"""``faml-tomo run``: replay a recorded job (the ``job.json`` a run wrote).

Example
-------
Repeat a classification into another folder (same inputs, settings and
seed: the same outputs)::

    faml-tomo run results/faml/job.json --out results/faml_again
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ..errors import InputError
from ..typealiases import PathLike

if TYPE_CHECKING:
    from ..averaging.job import ClassifyJob
    from ..fiducials.job import FiducialJob
    from ..misalignment.job import MisalignmentJob
    from ..simulation.job import SubtomogramSimJob, TomogramSimJob

    Job = Union[ClassifyJob, FiducialJob, MisalignmentJob, SubtomogramSimJob, TomogramSimJob]

# task of a job record -> (job class, command-line module that runs it)
_RUNNERS = {
    "classify": ("faml_tomo.averaging.job:ClassifyJob", "classify"),
    "peak-high-contrast": ("faml_tomo.fiducials.job:FiducialJob", "peak_high_contrast"),
    "detect-misalignment": ("faml_tomo.misalignment.job:MisalignmentJob", "detect_misalignment"),
    "simulate subtomograms": ("faml_tomo.simulation.job:SubtomogramSimJob", "simulate"),
    "simulate tomogram": ("faml_tomo.simulation.job:TomogramSimJob", "simulate"),
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "run",
        help="replay a recorded job (job.json)",
        description="Run the job recorded in a job.json again, into --out (default: the "
        "job.json's folder, where a finished run has nothing left to do and "
        "an interrupted one resumes).",
    )
    p.add_argument("job", type=Path, help="job.json written by a run")
    p.add_argument("--out", type=Path, default=None, help="output folder")
    p.add_argument(
        "--restart",
        action="store_true",
        help="ignore a checkpoint in --out (and remove its per-iteration files)",
    )
    p.set_defaults(func=run)
    return p


def load_job(path: PathLike) -> tuple[Job, str]:
    """The typed job recorded in ``path`` (a job.json) and its task."""
    import importlib

    from ..jobs import job_from_json

    try:
        record = json.loads(Path(path).read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot read the job ({exc.strerror})") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a JSON job record ({exc})") from None
    job = record.get("job") if isinstance(record, dict) else None
    if not isinstance(job, dict):
        raise InputError(
            f"{path}: no typed job in this record (written by a faml_tomo "
            f"before jobs were recorded, or by a command that does not "
            f"record one yet)"
        )
    task = job.get("task")
    if task not in _RUNNERS:
        raise InputError(
            f"{path}: {task!r} jobs cannot be replayed (known: {', '.join(sorted(_RUNNERS))})"
        )
    module, name = _RUNNERS[task][0].split(":")
    return job_from_json(getattr(importlib.import_module(module), name), job), task


def run(args: argparse.Namespace) -> int:
    import importlib

    from ..jobs import check_job

    job, task = load_job(args.job)
    check_job(job)
    out = args.out if args.out is not None else args.job.parent
    cli = importlib.import_module(f"{__package__}.{_RUNNERS[task][1]}")
    return cli.run_job(job, out, restart=args.restart)
