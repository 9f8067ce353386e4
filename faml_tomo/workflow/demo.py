"""The end-to-end demo (``faml-tomo demo``, ``make demo``).

1. Simulates a small dataset with ground truth: tomograms with gold beads
   (aligned, weakly and strongly misaligned) and a two-class subtomogram
   set (MRC files under ``<out>/data``).
2. Fills faml_tomo's two workflow templates with it
   (``<out>/workflows/*.json``).
3. Creates a Scipion project from them inside the results folder
   (``<out>/faml_tomo_demo``) and runs it headless to the end, in a child
   process (``python -m faml_tomo.workflow``) that starts with the Scipion
   variables set (:func:`~faml_tomo.workflow.env.scipion_environment`;
   the ones already set are kept).
4. Prints each protocol's summary, saves the viewers' figures
   (``<out>/figures``) and writes ``report.md`` and ``job.json`` with the
   results compared to the truth.

The dataset is simulated by :mod:`.demo_data`; the evaluation and the report
are :mod:`.demo_report`.
"""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..errors import FamlTomoError
from ..io import write_job_json
from ..typealiases import PathLike
from .demo_data import (
    BEAD_NM,
    PIXEL_SIZE,
    SUB_PIXEL,
    TILT,
    simulate_subtomograms,
    simulate_tomograms,
)
from .demo_report import evaluate, say_results, write_report
from .env import scipion_environment
from .runner import MARK
from .templates import fill_template

logger = logging.getLogger(__name__)

__all__ = ["run_demo", "simulate_tomograms", "simulate_subtomograms", "PROJECT_NAME"]

PROJECT_NAME = "faml_tomo_demo"


class _Progress:
    """Progress lines ``[  12.3 s] message`` (time since the start)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.t0 = time.perf_counter()
        self.stream = stream

    def __call__(self, msg: str) -> None:
        print(
            f"[{time.perf_counter() - self.t0:6.1f} s] {msg}",
            flush=True,
            file=self.stream or sys.stdout,
        )


def faml_available() -> bool:
    """Whether the FAML classification protocol is installed."""
    return importlib.util.find_spec("faml_tomo.protocols.protocol_faml_classify") is not None


def write_workflows(
    out: Path,
    tomo_dir: PathLike,
    sub_dir: PathLike,
    seed: int,
    quick: bool,
    threads: int,
    with_faml: bool,
) -> list[Path]:
    """Fill the templates with the demo data; returns the workflow files."""
    files = [
        fill_template(
            "misalignment",
            {
                "tomograms": tomo_dir,
                "tomogram_pattern": "TS_*.mrc",
                "sampling_rate": PIXEL_SIZE,
                "tilt_min": TILT[0],
                "tilt_max": TILT[1],
                "tilt_step": TILT[2],
                "bead_nm": BEAD_NM,
                "threads": threads,
                "strong_threshold": 0.5,
                "weak_threshold": 0.5,
            },
            out / "misalignment.json",
        )
    ]
    if with_faml:
        files.append(
            fill_template(
                "classify",
                {
                    "subtomograms": sub_dir,
                    "subtomogram_pattern": "*.mrc",
                    "sampling_rate": SUB_PIXEL,
                    "tilt_min": TILT[0],
                    "tilt_max": TILT[1],
                    "classes": 2,
                    "iterations": 4 if quick else 10,
                    "seed": seed,
                    "threads": threads,
                },
                out / "classify.json",
            )
        )
    return files


def run_workflow_process(
    name: str,
    workflows: Sequence[PathLike],
    location: PathLike,
    figures: PathLike,
    results: PathLike,
    log: PathLike,
    say: Callable[[str], None],
) -> None:
    """Run ``python -m faml_tomo.workflow`` in a child process with the
    current environment; forwards its progress lines, keeps the rest in
    ``log``."""
    cmd = [
        sys.executable,
        "-m",
        "faml_tomo.workflow",
        name,
        *map(str, workflows),
        "--location",
        str(location),
        "--overwrite",
        "--figures",
        str(figures),
        "--results",
        str(results),
        "--mark",
    ]
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            cwd=str(location),
            env=dict(os.environ, MPLBACKEND="Agg"),
        )  # figures headless
        assert proc.stdout is not None  # a pipe
        for line in proc.stdout:
            fh.write(line)
            if line.startswith(MARK):
                say(line[len(MARK) :].rstrip())
        rc = proc.wait()
    if rc != 0:
        tail = "".join(Path(log).read_text().splitlines(keepends=True)[-25:])
        raise FamlTomoError(f"the Scipion workflow failed (exit code {rc}); log: {log}\n{tail}")


def run_demo(
    out: PathLike,
    seed: int = 1,
    quick: bool = False,
    threads: int = 2,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Run the whole demo.

    Parameters
    ----------
    out : str or Path
        Results folder (created).
    seed : int
        Seed of the simulations and of FAML.
    quick : bool
        Smaller data and fewer FAML iterations.
    threads : int
        Threads of the protocols.
    say : callable, optional
        Receives progress lines (default: printed with the elapsed time).

    Returns
    -------
    dict
        The evaluation (see :func:`evaluate`) plus ``seconds``.
    """
    say = say or _Progress()
    t0 = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = scipion_environment(out / "scipion")
    say(f"faml-tomo {__version__} demo -> {out}")
    say(f"Scipion user data {env['SCIPION_USER_DATA']}, hosts {env['SCIPION_HOSTS']}")
    data = out / "data"
    cases = simulate_tomograms(data / "tomograms", seed, quick, say)
    with_faml = faml_available()
    subs = simulate_subtomograms(data / "subtomograms", seed, quick, say) if with_faml else None
    if not with_faml:
        say("FAML classification protocol not installed: its workflow is skipped")
    workflows = write_workflows(
        out / "workflows",
        data / "tomograms",
        data / "subtomograms" / "subtomograms",
        seed,
        quick,
        threads,
        with_faml,
    )
    say(f"workflows from the templates: {', '.join(str(w) for w in workflows)}")
    results_json = out / "workflow_results.json"
    run_workflow_process(
        PROJECT_NAME,
        workflows,
        out,
        out / "figures",
        results_json,
        out / "logs" / "workflow.log",
        say,
    )
    results = json.loads(results_json.read_text())
    ev = evaluate(results, cases, subs or {"truth": {}})
    seconds = time.perf_counter() - t0

    def rel(p: str) -> str:
        try:
            return os.path.relpath(p, out)
        except ValueError:
            return str(p)

    report = write_report(out, results, ev, seconds, rel)
    write_job_json(
        out / "job.json",
        "demo",
        {"out": str(out), "seed": seed, "quick": quick, "threads": threads},
        seed=seed,
        extra=dict(ev, seconds=seconds, project=results["path"]),
    )
    say_results(ev, say)
    say(f"done in {seconds:.0f} s: report in {report}")
    return dict(ev, seconds=seconds)
