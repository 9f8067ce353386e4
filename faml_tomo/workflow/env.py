"""The environment variables a headless Scipion run needs.

pyworkflow reads its configuration (``SCIPION_HOME``, ``SCIPION_USER_DATA``,
``SCIPION_DOMAIN``, ...) once, when it is first imported, and every protocol
runs as a subprocess that inherits the environment.  :func:`scipion_environment`
therefore only sets variables in :data:`os.environ` (without overriding the
ones already set); code that needs them must run in a process started
afterwards (see :mod:`faml_tomo.workflow.runner`).

This module imports nothing from Scipion and can be used before pyworkflow
is loaded; it imports nothing from faml_tomo either, because the tests load
it by path (``faml_tomo/tests/scipion_env.py``), without the package.
"""

import logging
import os
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["HOSTS_CONF", "scipion_environment"]

HOSTS_CONF = """[localhost]
PARALLEL_COMMAND = mpirun -np %_(JOB_NODES)d %_(COMMAND)s
NAME = SCIPION_MACHINE
ADDRESS = localhost
MANDATORY = False
QUEUE_SYSTEM = False
"""


def scipion_environment(root: str | os.PathLike[str], python: str | None = None) -> dict[str, str]:
    """Set (without overriding) the Scipion variables for a headless run.

    Parameters
    ----------
    root : str or Path
        Folder for the generated Scipion home (``home/config/hosts.conf``)
        and Scipion's user data (``userdata/``: logs, links to the
        projects).  A variable that is already set (e.g. inside a real
        Scipion installation) is kept.
    python : str, optional
        Python that runs the protocols (default: the running one).

    Returns
    -------
    dict
        The values now in effect, ``{name: value}``.
    """
    root = Path(root).resolve()
    python = python or sys.executable
    home = Path(os.environ.get("SCIPION_HOME") or root / "home")
    hosts = Path(os.environ.get("SCIPION_HOSTS") or home / "config" / "hosts.conf")
    if not hosts.exists():
        hosts.parent.mkdir(parents=True, exist_ok=True)
        hosts.write_text(HOSTS_CONF)
        logger.info("wrote %s", hosts)
    values = {
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_HOME": str(home),
        "SCIPION_HOSTS": str(hosts),
        "SCIPION_USER_DATA": str(root / "userdata"),
        "SCIPION_PYTHON": python,
        "SCIPION_TEST_NOSYNC": "1",
        "SCIPION_NOTIFY": "False",
        "MPLBACKEND": "Agg",
    }
    for key, value in values.items():
        os.environ.setdefault(key, value)
    # Protocols run as a subprocess of the python found on PATH.
    bindir = str(Path(python).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    return {key: os.environ[key] for key in values}
