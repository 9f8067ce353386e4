"""Output safety: file names built from ids, checks of an output folder
before any work, files that follow the umask, and the results of a run
published together under a completion marker.

A run writes its results into a staging folder inside the output folder;
only when everything is written are the files moved in (each move is an
atomic rename), between two writes of the run marker ``faml_run.json``:
``"status": "incomplete"`` before the first move, ``"complete"`` after the
last.  A failed or interrupted run therefore leaves the previous results as
they were, and a folder whose marker says "incomplete" is known to mix two
runs.  Files listed by the previous marker that the new run does not
produce (e.g. ``class_03.mrc`` of an earlier run with more classes) are
removed when the new results are published.

Examples
--------
>>> with Publication("results/fiducials", "peak-high-contrast") as stage:  # doctest: +SKIP
...     write_star(stage / "coordinates.star", table, "particles")
"""

import datetime
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Iterable, Literal, Optional

from ..errors import InputError
from ..typealiases import PathLike

logger = logging.getLogger(__name__)

__all__ = ["RUN_MARKER", "file_mode", "check_output_folder", "read_run_marker", "Publication"]

RUN_MARKER = "faml_run.json"
STAGING_PREFIX = ".staging-"
_UMASK_LOCK = threading.Lock()


# Temporary names made by atomic_path: ".<name>.<8 random>.tmp<ext>" (mkstemp).
_ATOMIC_TMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[^.]+)?$")


def is_atomic_temp(name: str) -> bool:
    """Whether a file name is one of ``atomic_path`` (:mod:`.mrc`)'s temporaries."""
    return bool(_ATOMIC_TMP.match(name))


def _umask() -> int:
    try:  # Linux: read it without changing it (no race with other threads)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Permission bits a new file gets from ``open()``: ``0o666 & ~umask``
    (temporary files are created 0600 and are given these before the rename)."""
    return 0o666 & ~_umask()


def check_output_folder(
    out: PathLike, inputs: Iterable = (), option: str = "--out", managed: Iterable[str] = ()
) -> Path:
    """Check, before any work, that results can be written to ``out``.

    Parameters
    ----------
    out : path-like
        The output folder (created if missing).
    inputs : iterable of path-like
        Input files and folders of the run (``None`` entries are skipped).
        ``out`` may be neither one of them nor the folder that holds one
        (nor one of the ``managed`` subfolders the run rewrites).
    option : str
        How the message names the folder (``--out``, a protocol field).
    managed : iterable of str
        Subfolders of ``out`` the run rewrites or removes (e.g.
        ``iterations``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    InputError
        If ``out`` is a file, equals or holds an input, cannot be created or
        cannot be written.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{option} {out}: exists and is not a folder")
    target = out.resolve()
    owned = [target] + [target / m for m in managed]
    for p in inputs:
        if p is None:
            continue
        src = Path(p).resolve()
        if src == target:
            raise InputError(
                f"{option} {out}: is the input {p}; choose another folder for the results"
            )
        if src.parent in owned:
            raise InputError(
                f"{option} {out}: holds the input {p}, which the results "
                f"would overwrite or mix with; choose another folder"
            )
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".faml_write_test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise InputError(f"{option} {out}: cannot write there ({reason})") from None
    return out


def read_run_marker(out: os.PathLike) -> Optional[dict]:
    """The run marker of an output folder, or None when there is none (or it
    cannot be read)."""
    path = Path(out) / RUN_MARKER
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _write_marker(out: Path, record: dict) -> None:
    from .mrc import atomic_path  # (mrc imports this module)

    with atomic_path(out / RUN_MARKER) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


class Publication:
    """Stage the results of a run and publish them together (see the module
    docstring).

    Parameters
    ----------
    out : path-like
        The output folder.
    command : str
        The task, recorded in the marker.
    in_place : bool
        The run also changes ``out`` while it works (checkpoints, files per
        iteration): a marker of an earlier run is set to "incomplete" at the
        start, and a failed run that wrote something leaves an "incomplete"
        marker with the reason.  (A folder without a marker holds no
        complete run.)

    Notes
    -----
    ``with Publication(...) as stage`` gives the staging folder; files
    written under it (subfolders allowed) are moved into ``out`` at the
    same relative path when the block ends without an exception, and
    discarded otherwise.
    """

    def __init__(self, out: os.PathLike, command: str, in_place: bool = False) -> None:
        self.out = Path(out)
        self.command = command
        self.in_place = in_place
        self.stage: Optional[Path] = None
        self.started = _now()
        self.previous: Optional[dict] = None

    def _record(self, status, files=None, **extra):
        rec = {
            "program": "faml-tomo",
            "command": self.command,
            "status": status,
            "started": self.started,
        }
        if status == "complete":
            rec["finished"] = _now()
        if files is not None:
            rec["files"] = files
        rec.update(extra)
        return rec

    def __enter__(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        for old in self.out.glob(STAGING_PREFIX + "*"):  # left by a killed run
            shutil.rmtree(old, ignore_errors=True)
        for old in self.out.rglob(".*.tmp*"):
            # half-written files that a killed run left in place
            # (checkpoints, files per iteration)
            if is_atomic_temp(old.name) and old.is_file():
                old.unlink(missing_ok=True)
        self.previous = read_run_marker(self.out)
        if self.in_place and self.previous is not None:
            # the results there are about to change: no longer "complete"
            _write_marker(
                self.out, self._record("incomplete", self._previous_files(), note="run in progress")
            )
        self.stage = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.out))
        return self.stage

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        assert self.stage is not None  # made by __enter__
        try:
            if exc_type is None:
                self._publish()
            elif self.in_place and (self.previous is not None or self._touched()):
                reason = (
                    "interrupted" if issubclass(exc_type, KeyboardInterrupt) else f"failed: {exc}"
                )
                _write_marker(
                    self.out, self._record("incomplete", self._previous_files(), note=reason)
                )
        finally:
            shutil.rmtree(self.stage, ignore_errors=True)
        return False

    def _previous_files(self):
        return (self.previous or {}).get("files", [])

    def _touched(self):
        """Whether the run wrote anything into ``out`` besides its stage."""
        return any(p != self.stage for p in self.out.iterdir())

    def _publish(self):
        files = sorted(str(p.relative_to(self.stage)) for p in self.stage.rglob("*") if p.is_file())
        _write_marker(self.out, self._record("incomplete", files, note="publishing"))
        mode = file_mode()
        for rel in files:
            dest = self.out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(self.stage / rel, mode)
            os.replace(self.stage / rel, dest)
        stale = set((self.previous or {}).get("files", [])) - set(files)
        for rel in sorted(stale):
            path = self.out / rel
            # only plain files inside out, as recorded by our own marker
            if ".." not in Path(rel).parts and path.is_file():
                path.unlink()
                logger.info("removed %s (from an earlier run)", path)
        _write_marker(self.out, self._record("complete", files))
