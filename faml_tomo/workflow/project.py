"""Scipion projects from workflow JSON files, run headless.

Two ways, both as Scipion itself offers them:

* synchronous (:func:`create_project` + :func:`run_project`): the project is
  created in this process, the workflows are loaded
  (``Project.loadProtocols``) and every protocol is launched in order with
  ``launchProtocol(prot, wait=True)``, while its log is followed for
  progress lines;
* batch (:func:`schedule_workflow`): ``python -m
  pyworkflow.project.scripts.create NAME file.json`` and ``python -m
  pyworkflow.project.scripts.schedule NAME``, then waiting for every
  protocol to end (Scipion's scheduler waits 30 s per dependency level).

Both need the Scipion environment set before pyworkflow is imported (see
:mod:`faml_tomo.workflow.env`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import FamlTomoError, InputError
from ..typealiases import PathLike

if TYPE_CHECKING:
    from pyworkflow.project import Project
    from pyworkflow.protocol import Protocol

logger = logging.getLogger(__name__)

__all__ = [
    "WorkflowError",
    "create_project",
    "load_project",
    "run_project",
    "schedule_workflow",
    "wait_for_project",
    "protocol_info",
    "plain_text",
]


class WorkflowError(FamlTomoError):
    """A protocol of the workflow failed or did not finish."""


def _remove_project(manager, name, location):
    """Remove a project of that name: its link in SCIPION_USER_DATA and its
    folder (also a stale link to a folder that is gone)."""
    link = manager.getProjectPath(name)
    target = os.path.realpath(link) if os.path.islink(link) else link
    for path in {target, os.path.join(location, name) if location else target}:
        if os.path.isdir(path) and not os.path.islink(path):
            if not os.path.exists(os.path.join(path, "project.sqlite")):
                raise InputError(f"{path} exists and is not a Scipion project: not removing it")
            shutil.rmtree(path)
    if os.path.islink(link):
        os.unlink(link)


def create_project(
    name: str,
    workflows: Sequence[PathLike],
    location: PathLike | None = None,
    overwrite: bool = False,
    protocol_view: str | None = "Tomography",
) -> Project:
    """Create a Scipion project and load workflow JSON files into it.

    Parameters
    ----------
    name : str
        Project name.
    workflows : sequence of str or Path
        Workflow JSON files (filled templates or ``exportProtocols``
        output), loaded in order.
    location : str or Path, optional
        Folder that will hold the project folder (default: Scipion's
        ``SCIPION_USER_DATA/projects``; a link is put there otherwise).
    overwrite : bool
        Remove an existing project of that name first.
    protocol_view : str or None
        Protocol menu the GUI shows on the left when the project is opened
        (scipion-em-tomo's "Tomography", where faml_tomo's protocols are).

    Returns
    -------
    pyworkflow.project.Project
        The project; the working directory is now its folder (launching
        protocols needs it).
    """
    from pyworkflow.project import Manager

    files = [Path(w).resolve() for w in workflows]
    for w in files:
        if not w.is_file():
            raise InputError(f"{w}: workflow file not found")
    manager = Manager()
    location = str(Path(location).resolve()) if location else None
    if location:
        os.makedirs(location, exist_ok=True)
    exists = (
        manager.hasProject(name)
        or os.path.lexists(manager.getProjectPath(name))
        or (location and os.path.exists(os.path.join(location, name)))
    )
    if exists:
        if not overwrite:
            raise InputError(
                f"a Scipion project named {name!r} exists already ({manager.getProjectPath(name)})"
            )
        os.chdir(location or os.path.dirname(manager.getProjectPath(name)))  # not inside
        _remove_project(manager, name, location)
    project = manager.createProject(name, location=location)
    os.chdir(project.path)
    if protocol_view:
        project.settings.setProtocolView(protocol_view)
        project.saveSettings()
    for w in files:
        loaded = project.loadProtocols(str(w))
        _apply_labels(project, loaded, w)
    logger.info("project %s created in %s", name, project.path)
    return project


def _apply_labels(project, loaded, workflow):
    """Give the loaded protocols the labels of the workflow file
    (``loadProtocols`` of pyworkflow 3.11 drops ``object.label``)."""
    with open(workflow) as fh:
        labels = {str(d.get("object.id")): d.get("object.label") for d in json.load(fh)}
    for key, prot in (loaded or {}).items():
        label = labels.get(str(key))
        if label and prot.getObjLabel() != label:
            prot.setObjLabel(label)
            project.mapper.store(prot)
    project.mapper.commit()


def load_project(name: str) -> Project:
    """Open an existing project by name; the working directory becomes its
    folder."""
    from pyworkflow.project import Manager

    manager = Manager()
    if not manager.hasProject(name):
        raise InputError(
            f"no Scipion project named {name!r} in {os.path.dirname(manager.getProjectPath(name))}"
        )
    project = manager.loadProject(name)
    os.chdir(project.path)
    return project


def _ordered_runs(project):
    """Protocols in an order where every input comes first (load order is
    the templates' order; a topological sort makes sure)."""
    runs = {p.getObjId(): p for p in project.getRuns()}
    order, seen = [], set()

    def visit(prot):
        if prot.getObjId() in seen:
            return
        seen.add(prot.getObjId())
        for _, attr in prot.iterInputAttributes():
            target = attr.getObjValue()
            if (
                target is not None
                and getattr(target, "getObjId", None)
                and target.getObjId() in runs
                and target.getObjId() != prot.getObjId()
            ):
                visit(runs[target.getObjId()])
        order.append(prot)

    for key in sorted(runs):
        visit(runs[key])
    return order


# Lines of a protocol's run.stdout that are Scipion's own bookkeeping.
_NOISE = (
    "Logging configured",
    "Running protocol using",
    "RESUMING PROTOCOL",
    "Protocol starts",
    "plugin v:",
    "plugin binary v",
    "Serial execution",
    "binary MPI",
    "binary Threads",
    "STARTED:",
    "FINISHED:",
    "Cleaning temp folder",
    "Nothing to clean up",
    "Direct import. Pattern",
    "Getting the dimensions",
    "*** Last status",
    "Hostname:",
    "PID:",
    "pyworkflow:",
    "plugin:",
    "currentDir:",
    "workingDir:",
    "runMode:",
    "MPI:",
    "threads:",
    "Starting at step",
    "Running steps",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _follow(path, stop, say, prefix):
    """Forward new informative lines of a log file until ``stop`` is set."""
    pos = 0
    while True:
        done = stop.wait(1.0)
        try:
            with open(path, errors="replace") as fh:
                fh.seek(pos)
                chunk = fh.read()
                pos = fh.tell()
        except OSError:
            chunk = ""
        for line in chunk.splitlines():
            text = _ANSI.sub("", line).strip()
            if text and not text.startswith(_NOISE) and not text.startswith("-----"):
                say(f"{prefix}{text}")
        if done:
            return


def run_project(
    project: Project, say: Callable[[str], None] = print, follow_logs: bool = True
) -> list[dict]:
    """Launch every protocol of a project that has not finished, in order,
    and wait for each.

    Parameters
    ----------
    project : pyworkflow.project.Project
    say : callable
        Receives progress lines.
    follow_logs : bool
        Forward the informative lines of each protocol's log while it runs.

    Returns
    -------
    list of dict
        :func:`protocol_info` of every protocol, in run order.

    Raises
    ------
    WorkflowError
        A protocol failed (the message has its error and log tail).
    """
    infos = []
    for prot in _ordered_runs(project):
        label = prot.getObjLabel() or prot.getClassName()
        if prot.isFinished():
            say(f"{label}: finished already")
            infos.append(protocol_info(prot))
            continue
        say(f"{label} ({prot.getClassName()}) running ...")
        t0 = time.perf_counter()
        stop = threading.Event()
        follower = None
        if follow_logs:
            # the log path is known only once the protocol has its working dir
            follower = threading.Thread(
                target=lambda: _follow_when_ready(prot, stop, say, f"  {label}: "), daemon=True
            )
            follower.start()
        try:
            project.launchProtocol(prot, wait=True)
        finally:
            stop.set()
            if follower is not None:
                follower.join(5)
        prot = project.getProtocol(prot.getObjId())
        seconds = time.perf_counter() - t0
        if not prot.isFinished():
            raise WorkflowError(_failure_message(prot))
        say(f"{label} finished in {seconds:.0f} s")
        infos.append(protocol_info(prot, seconds))
    return infos


def _follow_when_ready(prot, stop, say, prefix):
    while not stop.is_set():
        try:
            path = prot.getStdoutLog()
        except Exception:  # working dir not assigned yet
            path = None
        if path and os.path.exists(path):
            _follow(path, stop, say, prefix)
            return
        stop.wait(0.5)


def _tail(path, n=15):
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-n:])
    except OSError:
        return ""


def _failure_message(prot):
    label = prot.getObjLabel() or prot.getClassName()
    msg = prot.getErrorMessage() or prot.getStatusMessage()
    logs = [p for p in prot.getLogPaths()[:2] if p and os.path.exists(p)]
    tail = "\n".join(f"--- {p} (last lines)\n{_tail(p)}" for p in logs)
    return f"protocol {label!r} ended as {prot.getStatus()}: {msg}\n{tail}"


_LINK = re.compile(r"\[\[[^\]]*\]\[([^\]]*)\]\]")
_BOLD = re.compile(r"(?<![\w*])\*(\S|\S[^*\n]*\S)\*(?![\w*])")


def plain_text(line: object) -> str:
    """A summary line without Scipion's markup (``[[link][text]]`` links,
    ``*bold*``), as it reads in a terminal or a report."""
    return _BOLD.sub(r"\1", _LINK.sub(r"\1", str(line)))


def protocol_info(prot: Protocol, seconds: float | None = None) -> dict:
    """What a user reads about a finished protocol.

    Returns
    -------
    dict
        ``label``, ``class``, ``id``, ``status``, ``seconds``, ``summary``
        (list of lines, :meth:`Protocol.summary` without Scipion's markup),
        ``methods``,
        ``outputs`` (``{name: "class (size)"}``) and ``path``.
    """
    outputs = {}
    for name, obj in prot.iterOutputAttributes():
        size = obj.getSize() if hasattr(obj, "getSize") else None
        outputs[name] = obj.getClassName() + (f" ({size})" if size is not None else "")
    if seconds is None:
        try:
            seconds = prot.getElapsedTime().total_seconds()
        except Exception:  # no start/end times stored
            seconds = None
    return {
        "label": prot.getObjLabel(),
        "class": prot.getClassName(),
        "id": prot.getObjId(),
        "status": prot.getStatus(),
        "seconds": seconds,
        "summary": [plain_text(s) for s in prot.summary()],
        "methods": [plain_text(s) for s in prot.methods()],
        "outputs": outputs,
        "path": _working_dir(prot),
    }


def _working_dir(prot):
    project = prot.getProject()
    base = project.path if project is not None else os.getcwd()
    return os.path.normpath(os.path.join(base, prot.getWorkingDir()))


def schedule_workflow(
    name: str,
    workflow: PathLike,
    location: PathLike | None = None,
    timeout: float = 1800,
    say: Callable[[str], None] = print,
    python: str | None = None,
) -> list[dict]:
    """Create a project from a workflow JSON and run it with Scipion's own
    batch scripts (``create`` + ``schedule``), then wait for it.

    Parameters
    ----------
    name : str
        Project name (must not exist).
    workflow : str or Path
        Workflow JSON.
    location : str or Path, optional
        Folder for the project (``create``'s LOCATION).
    timeout : float
        Seconds to wait for every protocol to end.
    python : str, optional
        Python with Scipion (default: this one).

    Returns
    -------
    list of dict
        :func:`protocol_info` of every protocol.
    """
    python = python or sys.executable
    cmd = [python, "-m", "pyworkflow.project.scripts.create", name, str(Path(workflow).resolve())]
    if location:
        Path(location).mkdir(parents=True, exist_ok=True)
        cmd.append(str(Path(location).resolve()))
    say(f"$ {' '.join(cmd[1:])}")
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise WorkflowError(f"project creation failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    cmd = [python, "-m", "pyworkflow.project.scripts.schedule", name]
    say(f"$ {' '.join(cmd[1:])}")
    res = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        raise WorkflowError(f"scheduling failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return wait_for_project(name, timeout=timeout, say=say)


def wait_for_project(
    name: str, timeout: float = 1800, poll: float = 5.0, say: Callable[[str], None] = print
) -> list[dict]:
    """Wait until every protocol of a project has ended.

    Returns
    -------
    list of dict
        :func:`protocol_info` of every protocol.

    Raises
    ------
    WorkflowError
        A protocol failed, or the time ran out.
    """
    from pyworkflow.project import Manager

    t0 = time.perf_counter()
    last = None
    while True:
        project = Manager().loadProject(name)
        runs = sorted(project.getRuns(refresh=True, checkPids=True), key=lambda p: p.getObjId())
        states = [(p.getObjLabel(), p.getStatus()) for p in runs]
        if states != last:
            say(", ".join(f"{lab}: {st}" for lab, st in states))
            last = states
        failed = [p for p in runs if p.isFailed() or p.isAborted()]
        if failed:
            raise WorkflowError(_failure_message(failed[0]))
        if all(p.isFinished() for p in runs):
            return [protocol_info(p) for p in runs]
        if time.perf_counter() - t0 > timeout:
            raise WorkflowError(f"project {name}: not finished after {timeout:.0f} s ({states})")
        time.sleep(poll)
