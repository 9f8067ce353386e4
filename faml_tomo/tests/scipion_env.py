"""Environment that a headless Scipion run needs (see README, "Tests").

``setup_scipion_env`` is called by the root ``conftest.py`` before pyworkflow
is imported, so plain ``pytest`` runs protocol tests from an empty shell.
``python -m faml_tomo.tests.scipion_env CMD ...`` runs any other command (for
example ``python -m pyworkflow.apps.pw_run_tests faml_tomo.tests``) in the
same environment.
"""

import os
import sys
from pathlib import Path


def _workflow_env():
    """:mod:`faml_tomo.workflow.env`, loaded by path: importing the package
    would import pwem, and with it pyworkflow's configuration, too early."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "workflow" / "env.py"
    spec = importlib.util.spec_from_file_location("_faml_tomo_workflow_env", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup_scipion_env(root=None):
    """Set (without overriding) the Scipion variables for a headless run.

    Parameters
    ----------
    root : str or Path, optional
        Folder for the generated Scipion home and project data (default:
        ``.scipion`` under the repository root; git-ignored).

    Returns
    -------
    dict
        The variables that were set.
    """
    repo = Path(__file__).resolve().parents[2]
    root = Path(root) if root else repo / ".scipion"
    values = _workflow_env().scipion_environment(root)
    os.environ.setdefault("SCIPION_TESTS", str(root / "testdata"))
    values["SCIPION_TESTS"] = os.environ["SCIPION_TESTS"]
    return values


if __name__ == "__main__":  # pragma: no cover
    setup_scipion_env()
    if len(sys.argv) < 2:
        for key, value in setup_scipion_env().items():
            print(f"export {key}={value}")
        sys.exit(0)
    os.execvp(sys.argv[1], sys.argv[1:])
