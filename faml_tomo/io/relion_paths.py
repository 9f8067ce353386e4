"""Where the relative file names in RELION, Warp and FAML STAR files point:
RELION writes them relative to its project folder, FAML relative to the
STAR file itself.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from ..typealiases import PathLike

__all__ = ["name_roots", "resolve_names"]


def name_roots(path: PathLike) -> list[Path]:
    """Folders a relative name in ``path`` may be relative to, in order: the
    file's own folder, the RELION project (two levels above
    ``<Job>/jobNNN/``), the working directory."""
    here = Path(path).resolve().parent
    return [here, here.parent.parent, Path.cwd()]


def resolve_names(names: Sequence[str], path: PathLike) -> list[Path]:
    """Absolute paths of the names, relative ones resolved against the first
    of :func:`name_roots` where the first relative name exists (RELION writes
    names relative to its project folder, FAML relative to the file)."""
    rel = [n for n in names if not Path(n).is_absolute()]
    roots = name_roots(path)
    base = next((r for r in roots if rel and (r / rel[0]).is_file()), roots[0])
    return [Path(n) if Path(n).is_absolute() else Path(os.path.normpath(base / n)) for n in names]
