"""Lazy, quiet TensorFlow import.

TensorFlow takes seconds to import and prints C++ start-up lines on the
process's stderr before its own logging is configured.  Everything in
faml_tomo that needs it calls :func:`import_tensorflow` inside the function
that uses it, never at module level (Scipion imports every plugin's
protocols whenever it loads one).
"""

import contextlib
import logging
import os
import sys
from types import ModuleType

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _silenced_stderr_fd():
    """Send file descriptor 2 to /dev/null (C++ logging ignores sys.stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd (e.g. captured)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow(quiet: bool = True) -> ModuleType:
    """Import and return the ``tensorflow`` module.

    Parameters
    ----------
    quiet : bool
        Hide TensorFlow's C++ start-up messages.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ctx = _silenced_stderr_fd() if quiet else contextlib.nullcontext()
    with ctx:
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery also logs
    logger.debug("tensorflow %s imported", tf.__version__)
    return tf
