"""Machine and version facts printed by every benchmark (scripts in this
folder import it as ``from common import machine``)."""
import importlib
import os
import platform
from pathlib import Path


def cpu_model():
    """CPU model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(*modules):
    """CPU, usable cores, Python, numpy, scipy, faml_tomo and the versions of
    the extra ``modules`` named (e.g. ``"skimage"``)."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count())
    info = {"cpu": cpu_model(), "cores": cores, "python": platform.python_version()}
    for name in ("numpy", "scipy", "faml_tomo") + modules:
        info[name] = importlib.import_module(name).__version__
    info["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    return info
