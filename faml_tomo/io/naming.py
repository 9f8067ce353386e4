"""File names of the things a run writes per tomogram or per bead: one
file-name-safe form of an id, one name of a tomogram file (used by every task
that writes or matches per-tomogram files), one name of a bead box."""

from pathlib import Path

__all__ = ["safe_name", "tomogram_name", "box_name", "TOMOGRAM_EXTENSIONS"]

# what a tomogram file's name ends with (removed once to name the tomogram)
TOMOGRAM_EXTENSIONS = (".mrc", ".rec", ".st", ".map", ".mrcs")


def safe_name(key: object, fallback: str = "item") -> str:
    """A file-name-safe form of an id (tomogram name, tsId, object id).

    Letters, digits, ``-``, ``_`` and ``.`` are kept, every other character
    (``/``, spaces, ...) becomes ``_``; a leading dot becomes ``_`` so the
    name can neither climb out of a folder (``..``) nor hide.

    Examples
    --------
    >>> safe_name("../TS 01")
    '___TS_01'
    >>> safe_name("")
    'item'
    """
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(key))
    stripped = name.lstrip(".")
    name = "_" * (len(name) - len(stripped)) + stripped
    return name or fallback


def tomogram_name(path: object) -> str:
    """The name of a tomogram file, as the per-tomogram files and the
    ``rlnTomoName`` of coordinate tables carry it: the file name without its
    tomogram extension (one of :data:`TOMOGRAM_EXTENSIONS`), file-name safe.

    Examples
    --------
    >>> tomogram_name("data/TS_01.rec.mrc"), tomogram_name("TS 02.mrc")
    ('TS_01.rec', 'TS_02')
    """
    name = Path(str(path)).name
    for ext in TOMOGRAM_EXTENSIONS:
        if name.endswith(ext) and len(name) > len(ext):
            name = name[: -len(ext)]
            break
    return safe_name(name)


def box_name(tomogram: object, index: int) -> str:
    """File of the ``index``-th (0-based) bead box of a tomogram (its id is
    made file-name safe: a tsId may hold ``/`` or ``..``)."""
    return f"{safe_name(tomogram)}_{index + 1:04d}.mrc"
