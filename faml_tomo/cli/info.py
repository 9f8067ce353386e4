"""``faml-tomo info``: versions, Scipion discovery and TensorFlow devices."""

import argparse
import json
import logging
import os
import platform
import sys

from .. import __version__
from ..tfutil import import_tensorflow

logger = logging.getLogger(__name__)

KEY_DISTRIBUTIONS = [
    "numpy",
    "scipy",
    "numba",
    "mrcfile",
    "scikit-image",
    "matplotlib",
    "emtable",
    "scipion-pyworkflow",
    "scipion-em",
    "scipion-em-tomo",
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "mpi4py",
]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "info",
        help="show versions, Scipion plugin discovery and TensorFlow devices",
        description="Print the faml_tomo version, the versions of its key "
        "dependencies, whether Scipion (pyworkflow) discovers the "
        "plugin and its protocols, and the TensorFlow devices seen.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--no-tensorflow",
        action="store_true",
        help="skip importing TensorFlow (it takes a few seconds)",
    )
    p.set_defaults(func=run)
    return p


def dependency_versions() -> dict[str, str | None]:
    """Installed versions of the key distributions (None when absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in KEY_DISTRIBUTIONS:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def scipion_discovery() -> dict:
    """Whether pyworkflow discovers faml_tomo, and its protocols and viewers."""
    os.environ.setdefault("SCIPION_DOMAIN", "pwem")
    try:
        from pwem import Domain
    except Exception as exc:  # Scipion absent or misconfigured
        return {"discovered": False, "error": f"{type(exc).__name__}: {exc}"}
    try:
        plugins = Domain.getPlugins()
        found = "faml_tomo" in plugins
        protocols = sorted(
            name
            for name, cls in Domain.getProtocols().items()
            if cls.__module__.startswith("faml_tomo.")
        )
        viewers = sorted(
            name
            for name, cls in Domain.getViewers().items()
            if cls.__module__.startswith("faml_tomo.")
        )
    except Exception as exc:
        return {"discovered": False, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "discovered": found,
        "plugins": len(plugins),
        "protocols": protocols,
        "viewers": viewers,
    }


def tensorflow_devices() -> list[str] | str:
    """Devices TensorFlow sees, e.g. ``["CPU:0"]``; an error string otherwise."""
    try:
        tf = import_tensorflow()
        return [
            f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}"
            for d in tf.config.list_physical_devices()
        ]
    except Exception as exc:
        return f"unavailable ({type(exc).__name__}: {exc})"


def collect(with_tensorflow: bool = True) -> dict:
    """Everything ``faml-tomo info`` reports, as a dict."""
    # Quiet TensorFlow's C++ start-up lines (other plugins may import it).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return {
        "faml_tomo": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "dependencies": dependency_versions(),
        "scipion": scipion_discovery(),
        "tensorflow_devices": tensorflow_devices() if with_tensorflow else "not checked",
    }


def run(args: argparse.Namespace) -> int:
    info = collect(with_tensorflow=not args.no_tensorflow)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"faml-tomo {info['faml_tomo']} (Python {info['python']}, "
        f"{info['platform']}, {info['cpus']} CPUs)"
    )
    print("dependencies:")
    for name, version in info["dependencies"].items():
        if version is not None:
            print(f"  {name:<20} {version}")
    sc = info["scipion"]
    if sc.get("discovered"):
        print(f"scipion: plugin faml_tomo discovered ({sc['plugins']} plugins installed)")
        print(f"  protocols: {', '.join(sc['protocols']) or '(none yet)'}")
        print(f"  viewers:   {', '.join(sc['viewers']) or '(none yet)'}")
    else:
        print(f"scipion: plugin faml_tomo NOT discovered {sc.get('error', '')}".rstrip())
    devices = info["tensorflow_devices"]
    print("tensorflow devices: " + (", ".join(devices) if isinstance(devices, list) else devices))
    return 0
