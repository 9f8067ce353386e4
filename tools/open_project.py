#!/usr/bin/env python
"""Open the demo project in Scipion's GUI (``make gui``; needs a display).

Sets the Scipion variables the demo used (those not set already: the demo's
``<demo>/scipion`` home and user data) before pyworkflow is imported, then
opens the project window as ``scipion3 project NAME`` does.

Usage::

    python tools/open_project.py [--demo results/demo] [--project faml_tomo_demo]
"""

import argparse
import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--demo", default="results/demo", help="results folder of `faml-tomo demo` (results/demo)"
    )
    p.add_argument("--project", default="faml_tomo_demo", help="project folder name")
    args = p.parse_args(argv)
    project = Path(args.demo).resolve() / args.project
    if not (project / "project.sqlite").is_file():
        print(f"{project}: no Scipion project; run `make demo` first", file=sys.stderr)
        return 2
    if not os.environ.get("DISPLAY"):
        print("no DISPLAY: the GUI needs a screen (or use `make screenshots`)", file=sys.stderr)
        return 2
    # faml_tomo.workflow.env by path: importing faml_tomo would import
    # pyworkflow before the variables are set
    spec = importlib.util.spec_from_file_location(
        "_faml_tomo_env", REPO / "faml_tomo" / "workflow" / "env.py"
    )
    env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(env)
    env.scipion_environment(Path(args.demo).resolve() / "scipion")
    os.environ["MPLBACKEND"] = "TkAgg"
    from pyworkflow.gui.project import ProjectWindow

    ProjectWindow(str(project)).show()
    return 0


if __name__ == "__main__":
    sys.exit(main())
