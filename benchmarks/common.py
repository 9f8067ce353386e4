"""Machine and version facts printed by every benchmark (scripts in this
folder import it as ``from common import machine``)."""

import importlib
import json
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
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu_model(), "cores": cores, "python": platform.python_version()}
    for name in ("numpy", "scipy", "faml_tomo") + modules:
        info[name] = importlib.import_module(name).__version__
    info["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    return info


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def cached_json(path, compute):
    """``compute()`` (a JSON-able dict) cached in ``path``: read back if
    present, else computed and written atomically (a killed benchmark
    resumes after its last finished item)."""
    import json

    path = Path(path)
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    write_atomic(path, json.dumps(result))
    return result


def benchmark_parser(doc, name, sweep=True):
    """Argument parser of a cached benchmark ``name``: ``--workers``,
    ``--cache`` (``.cache/bench_<name>``: bulky intermediate data, not
    committed), ``--runs`` (``benchmarks/results/runs/<name>``: one small
    JSON per finished run, committed, so that a sweep resumes in a later
    session on a fresh clone), ``--out`` (``benchmarks/results/<name>``) and,
    for a sweep, ``--limit``, ``--report`` and ``--quick``."""
    import argparse

    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=root / ".cache" / f"bench_{name}")
    ap.add_argument("--runs", type=Path, default=root / "benchmarks" / "results" / "runs" / name)
    ap.add_argument("--out", type=Path, default=root / "benchmarks" / "results" / name)
    if sweep:
        ap.add_argument(
            "--limit",
            type=int,
            default=None,
            help="run at most this many new data sets, then write the report",
        )
        ap.add_argument("--report", action="store_true", help="only rebuild the report")
        ap.add_argument("--quick", action="store_true", help="tiny smoke sweep")
    return ap


def start(structures):
    """The machine facts, printed; None (with a message) when the density
    maps a benchmark needs are absent."""
    if not Path(structures).is_dir():
        print(f"skipped: needs the density maps in {structures}")
        return None
    info = machine()
    print("machine:", ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    return info


def print_and_append(path, record):
    """Print ``record`` as one JSON line and append it to the JSON-lines file
    ``path`` (the experiments' run logs)."""
    line = json.dumps(record)
    print(line, flush=True)
    with Path(path).open("a") as fh:
        fh.write(line + "\n")
