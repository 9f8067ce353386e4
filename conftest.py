"""pytest set-up: Scipion's environment for headless protocol tests.

It must run before pyworkflow is imported (pyworkflow reads its
configuration at import time), hence at the top of the root conftest.
"""

import importlib.util
import os
from pathlib import Path

# Load the helper by path: importing the faml_tomo package would import pwem,
# and with it pyworkflow's configuration, before the variables are set.
_spec = importlib.util.spec_from_file_location(
    "_faml_tomo_scipion_env", Path(__file__).parent / "faml_tomo" / "tests" / "scipion_env.py"
)
_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_env)
_env.setup_scipion_env()


def pytest_addoption(parser):
    parser.addoption(
        "--runslow",
        action="store_true",
        default=False,
        help="also run tests marked slow (full-size accuracy)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long accuracy test, run with --runslow")


def pytest_collection_modifyitems(config, items):
    import pytest

    if config.getoption("--runslow") or os.environ.get("FAML_TOMO_RUNSLOW"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
