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

HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SCIPION_MACHINE
ADDRESS = localhost
MANDATORY = False
QUEUE_SYSTEM = False
"""


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
    home = root / "home"
    (home / "config").mkdir(parents=True, exist_ok=True)
    hosts = home / "config" / "hosts.conf"
    if not hosts.exists():
        hosts.write_text(HOSTS_CONF)
    values = {
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_HOME": str(home),
        "SCIPION_HOSTS": str(hosts),
        "SCIPION_USER_DATA": str(root / "userdata"),
        "SCIPION_PYTHON": sys.executable,
        "SCIPION_TEST_NOSYNC": "1",
        "SCIPION_TESTS": str(root / "testdata"),
        "SCIPION_NOTIFY": "False",
        "MPLBACKEND": "Agg",
    }
    for key, value in values.items():
        os.environ.setdefault(key, value)
    # Protocols run as a subprocess of the python found on PATH.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return {key: os.environ[key] for key in values}


if __name__ == "__main__":      # pragma: no cover
    setup_scipion_env()
    if len(sys.argv) < 2:
        for key, value in setup_scipion_env().items():
            print(f"export {key}={value}")
        sys.exit(0)
    os.execvp(sys.argv[1], sys.argv[1:])
