"""Job records: a JSON file beside each result with the program version,
the command, every parameter and the seed, so a run can be repeated."""

import datetime
import json
import platform
import sys

import numpy as np

from .. import __version__
from ..typealiases import PathLike
from .mrc import atomic_path

__all__ = ["write_job_json", "read_job_json"]


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__fspath__"):
        return str(value)
    return value


def write_job_json(
    path: PathLike,
    command: str,
    params: dict,
    seed: int | None = None,
    extra: dict | None = None,
    job: dict | None = None,
) -> PathLike:
    """Write a job record atomically.

    Parameters
    ----------
    path : str or Path
        Destination JSON file.
    command : str
        The subcommand or program that ran (e.g. ``"simulate subtomograms"``).
    params : dict
        All parameters of the run (paths become strings, arrays lists).
    seed : int, optional
        The seed of the random generator.
    extra : dict, optional
        Results worth keeping beside the parameters (timings, counts).
    job : dict, optional
        The typed job (:func:`faml_tomo.jobs.job_to_json`) that
        ``faml-tomo run`` replays.
    """
    record = {
        "program": "faml-tomo",
        "version": __version__,
        "command": command,
        "seed": seed,
        "parameters": _jsonable(params),
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "host": platform.node(),
        "argv": sys.argv,
    }
    if job is not None:
        record["job"] = _jsonable(job)
    if extra:
        record["results"] = _jsonable(extra)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    return path


def read_job_json(path: PathLike) -> dict:
    """Read a job record written by :func:`write_job_json`."""
    with open(path) as fh:
        return json.load(fh)
