"""Run workflow JSON files as a headless Scipion project:
``python -m faml_tomo.workflow NAME WORKFLOW.json [WORKFLOW.json ...]``.

Creates the project (``--location`` holds it), loads the workflows, runs
every protocol in order, prints each protocol's summary, saves the viewers'
figures (``--figures``) and writes everything read back (summaries,
outputs, coordinates, decisions, classes) to ``--results`` (JSON).  The
Scipion variables must be set before this process starts (see
:mod:`faml_tomo.workflow.env`; ``--scipion-root`` sets them here by
re-running itself).

With ``--mark``, progress lines start with :data:`MARK` so that a parent
process can pick them out of Scipion's own output (see
:func:`faml_tomo.workflow.demo.run_workflow_process`).
"""

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

MARK = "@@ "


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m faml_tomo.workflow",
        description="Create a Scipion project from workflow JSON files (filled faml_tomo "
        "templates or exported workflows), run it headless to the end, print "
        "each protocol's summary and save the viewers' figures.",
    )
    p.add_argument("name", help="project name")
    p.add_argument("workflows", nargs="+", help="workflow JSON files, loaded in order")
    p.add_argument(
        "--location",
        help="folder that holds the project folder (default: SCIPION_USER_DATA/projects)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="remove an existing project of that name first"
    )
    p.add_argument("--figures", help="folder for the viewers' figures (PNG)")
    p.add_argument("--results", help="JSON file for summaries, outputs and data")
    p.add_argument(
        "--mark",
        action="store_true",
        help=f"start progress lines with {MARK!r} (for a parent process)",
    )
    p.add_argument(
        "--scipion-root",
        help="set the Scipion variables that are not set yet (home with "
        "hosts.conf, projects) under this folder, then run",
    )
    return p


_PREFIX = {"text": ""}


def _say(msg: str) -> None:
    print(f"{_PREFIX['text']}{msg}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Create, run and export; returns an exit code."""
    from ..io.mrc import atomic_path
    from .project import create_project, run_project
    from .results import export_project

    t0 = time.perf_counter()
    _PREFIX["text"] = MARK if args.mark else ""
    # paths before the project becomes the working directory
    figures = Path(args.figures).resolve() if args.figures else None
    results = Path(args.results).resolve() if args.results else None
    project = create_project(args.name, args.workflows, args.location, args.overwrite)
    _say(f"Scipion project {args.name} in {project.path}")
    infos = run_project(project, say=_say)
    for info in infos:
        _say(f"summary of '{info['label']}' ({info['class']}):")
        for line in info["summary"]:
            for sub in str(line).splitlines():
                _say(f"    {sub}")
    entries = export_project(project, figures, infos, say=_say) if figures else infos
    if results:
        record = {
            "project": args.name,
            "path": project.path,
            "seconds": time.perf_counter() - t0,
            "protocols": entries,
        }
        with atomic_path(results) as tmp:
            Path(tmp).write_text(json.dumps(record, indent=1, default=str))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.scipion_root and "pyworkflow" in sys.modules:
        # pyworkflow read its configuration already: set the variables and
        # start again in a fresh process.
        from .env import scipion_environment

        scipion_environment(args.scipion_root)
        argv = list(sys.argv[1:] if argv is None else argv)
        argv = [
            a
            for i, a in enumerate(argv)
            if not a.startswith("--scipion-root") and not (i and argv[i - 1] == "--scipion-root")
        ]
        os.execv(sys.executable, [sys.executable, "-m", "faml_tomo.workflow"] + argv)
    from ..errors import InputError
    from .project import WorkflowError

    try:
        return run(args)
    except (InputError, WorkflowError) as exc:
        print(f"faml_tomo.workflow: error: {exc}", file=sys.stderr)
        return 2
