"""Reading and writing STAR files (RELION / Scipion metadata tables).

A STAR file holds named data blocks (``data_<name>``); a block is either a
table (``loop_`` with one column label per line and one row per line) or a
list of ``_label value`` pairs.  Tables are passed around as dicts of
columns, ``{label: sequence}``; labels are written without the leading
underscore (``rlnImageName``).  Parsing is done by :mod:`emtable` (the
library Scipion uses) for writing tables and by a small tokenizer here for
reading (emtable's reader splits quoted values of all rows with the
tokenizer chosen from the first row); writes are atomic.

Examples
--------
>>> write_star("particles.star", {"rlnImageName": ["a.mrc", "b.mrc"],
...                               "rlnClassNumber": [1, 2]}, "particles")  # doctest: +SKIP
>>> read_star("particles.star")["rlnClassNumber"]                         # doctest: +SKIP
array([1, 2])
"""

import logging
import math
import re
import shlex
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from emtable import Table

from ..errors import InputError
from ..typealiases import PathLike
from .mrc import atomic_path

logger = logging.getLogger(__name__)

__all__ = [
    "write_star",
    "write_star_blocks",
    "read_star",
    "read_star_blocks",
    "star_block_names",
    "StarError",
]

_INT_RE = re.compile(r"^[+-]?\d+$")


class StarError(InputError):
    """A STAR file or table that cannot be used; the message says why."""


def _is_scalar(value):
    return isinstance(value, (str, bytes)) or np.ndim(value) == 0


def _format(value):
    """One STAR token: floats keep 7 significant digits, strings with spaces
    are quoted, empty strings become ``""``."""
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if not math.isfinite(v):
            return str(v)
        if v == 0 or 1e-3 <= abs(v) < 1e7:
            return f"{v:.6f}"
        return f"{v:.6e}"
    s = str(value)
    if s == "" or any(ch.isspace() for ch in s):
        return '"' + s.replace('"', "'") + '"'
    return s


def _columns_of(data, where):
    """Normalise a table to ``(labels, list of columns)``."""
    if isinstance(data, Mapping):
        labels = [str(k).lstrip("_") for k in data]
        cols = [
            list(np.atleast_1d(np.asarray(v, dtype=object))) if not _is_scalar(v) else [v]
            for v in data.values()
        ]
    else:
        rows = list(data)
        if not rows:
            raise StarError(
                f"{where}: a table given as rows needs at least one row "
                f"(pass a dict of empty columns for an empty table)"
            )
        labels = [str(k).lstrip("_") for k in rows[0]]
        for i, row in enumerate(rows):
            if list(row) != list(rows[0]):
                raise StarError(
                    f"{where}: row {i} has labels {list(row)}, expected {list(rows[0])}"
                )
        cols = [[row[k] for row in rows] for k in rows[0]]
    for label in labels:
        if not label or any(ch.isspace() for ch in label):
            raise StarError(f"{where}: invalid column label {label!r}")
    lengths = {len(c) for c in cols}
    if len(lengths) > 1:
        detail = ", ".join(f"{lab}: {len(c)}" for lab, c in zip(labels, cols))
        raise StarError(f"{where}: columns have different lengths ({detail})")
    return labels, cols


def _write_block(fh, name, data, where):
    labels, cols = _columns_of(data, where)
    nrows = len(cols[0]) if cols else 0
    if nrows == 0:
        fh.write(f"\ndata_{name}\n\nloop_\n")
        fh.write("".join(f"_{lab}\n" for lab in labels))
        fh.write("\n")
        return
    table = Table(columns=labels)
    for i in range(nrows):
        table.addRow(*[_format(c[i]) for c in cols])
    table.writeStar(fh, tableName=name)


def _write_pairs(fh, name, pairs):
    fh.write(f"\ndata_{name}\n\n")
    width = max(len(k) for k in pairs) + 2
    for key, value in pairs.items():
        fh.write(f"_{str(key).lstrip('_'):<{width}} {_format(value)}\n")
    fh.write("\n")


def write_star_blocks(path: PathLike, blocks: Mapping, version: int = 30001) -> Path:
    """Write several data blocks into one STAR file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    blocks : dict
        ``{block_name: table}`` in file order.  A table is a dict of columns
        ``{label: sequence}`` (all of one length; 0 gives an empty table), a
        list of row dicts, or a dict of scalars, which is written as a list of
        ``_label value`` pairs (RELION's ``data_general`` style).
    version : int
        RELION's ``# version`` comment (30001: RELION 3.1 and later with an
        optics table; 50001: written by RELION 5).

    Returns
    -------
    Path
    """
    path = Path(path)
    if not blocks:
        raise StarError(f"{path}: nothing to write (no data blocks)")
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(f"# version {int(version)}\n")
            for name, data in blocks.items():
                where = f"{path} block data_{name}"
                if not re.fullmatch(r"[\w.-]*", str(name)):
                    raise StarError(f"{where}: invalid block name {name!r}")
                if isinstance(data, Mapping) and data and all(_is_scalar(v) for v in data.values()):
                    _write_pairs(fh, name, data)
                else:
                    _write_block(fh, name, data, where)
    logger.debug("wrote %s (%s)", path, ", ".join(blocks))
    return path


def write_star(path: PathLike, data: Mapping, block_name: str = "") -> Path:
    """Write one table as a STAR file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination.
    data : dict or list of dict
        Columns ``{label: sequence}`` or rows ``[{label: value}, ...]``;
        labels without the leading underscore.  Numbers are written with 7
        significant digits at least, strings with spaces are quoted.  A dict
        of scalars is written as ``_label value`` pairs.
    block_name : str
        Name of the data block (``data_<block_name>``).

    Returns
    -------
    Path
    """
    return write_star_blocks(path, {block_name: data})


def _check_path(path):
    path = Path(path)
    if not path.exists():
        raise StarError(f"{path}: no such file")
    if path.is_dir():
        raise StarError(f"{path}: is a folder, not a STAR file")
    return path


def _split(line):
    return shlex.split(line) if ('"' in line or "'" in line) else line.split()


def _parse(path):
    """All blocks of a STAR file as ``{name: (is_loop, labels, rows)}``.

    A small parser rather than emtable's reader: emtable picks its tokenizer
    from the first row only, so a quoted value in a later row is split."""
    blocks = {}
    current = None
    with open(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("data_"):
                current = [False, [], []]
                blocks[line[5:]] = current
                continue
            if current is None:
                raise StarError(f"{path}:{lineno}: text before the first data_ block")
            if line.startswith("loop_"):
                current[0] = True
                continue
            try:
                tokens = _split(line)
            except ValueError as exc:
                raise StarError(f"{path}:{lineno}: {exc}") from exc
            if line.startswith("_"):
                current[1].append(tokens[0][1:])
                if not current[0]:
                    if len(tokens) < 2:
                        raise StarError(f"{path}:{lineno}: label {tokens[0]} has no value")
                    current[2].append(tokens[1])
            elif current[0]:
                if len(tokens) != len(current[1]):
                    raise StarError(
                        f"{path}:{lineno}: row has {len(tokens)} values "
                        f"for {len(current[1])} columns"
                    )
                current[2].append(tokens)
            else:
                raise StarError(f"{path}:{lineno}: unexpected line {line[:40]!r}")
    return blocks


def _convert(values):
    """Column of strings -> int, float or str numpy array."""
    if all(_INT_RE.match(v) for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def _block_dict(block, dtypes=None):
    is_loop, labels, rows = block
    dtypes = dtypes or {}

    def conv(label, values):
        if label in dtypes:
            return np.array(values, dtype=str).astype(dtypes[label])
        return _convert(values)

    if not is_loop:
        return {lab: conv(lab, [v])[0].item() for lab, v in zip(labels, rows)}
    if not rows:
        return {lab: np.array([], dtype=dtypes.get(lab, float)) for lab in labels}
    return {lab: conv(lab, [r[i] for r in rows]) for i, lab in enumerate(labels)}


def star_block_names(path: PathLike) -> list[str]:
    """Names of the data blocks of a STAR file, in file order."""
    return list(_parse(_check_path(path)))


def read_star(path: PathLike, block_name: str | None = None, dtypes: Mapping | None = None) -> dict:
    """Read one data block of a STAR file.

    Parameters
    ----------
    path : str or Path
    block_name : str, optional
        Block to read (``particles`` for ``data_particles``); by default
        ``particles`` when the file has such a block, else the first block.
    dtypes : dict, optional
        ``{label: dtype}`` forcing a column's type (e.g. ``{"rlnTomoName":
        str}`` for names that look like numbers); otherwise int if every
        value is an integer, else float if every value parses, else str.

    Returns
    -------
    dict
        ``{label: numpy.ndarray}`` for a table (int64, float64 or str columns,
        the type decided from all the values); ``{label: scalar}`` for a
        block of ``_label value`` pairs.

    Raises
    ------
    StarError
        Missing file, missing block (the message lists those present), or a
        malformed block.
    """
    path = _check_path(path)
    blocks = _parse(path)
    if not blocks:
        raise StarError(f"{path}: not a STAR file (no data_ block)")
    if block_name is None:
        block_name = "particles" if "particles" in blocks else next(iter(blocks))
    elif block_name not in blocks:
        raise StarError(
            f"{path}: no block data_{block_name}; blocks present: "
            f"{', '.join('data_' + n for n in blocks)}"
        )
    return _block_dict(blocks[block_name], dtypes)


def read_star_blocks(path: PathLike, dtypes: Mapping | None = None) -> dict:
    """Read every data block: ``{block_name: {label: column or scalar}}``
    (``dtypes`` as in :func:`read_star`, applied to every block)."""
    path = _check_path(path)
    blocks = _parse(path)
    if not blocks:
        raise StarError(f"{path}: not a STAR file (no data_ block)")
    return {name: _block_dict(b, dtypes) for name, b in blocks.items()}
