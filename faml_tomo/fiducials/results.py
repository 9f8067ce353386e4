"""Fiducial-search results on disk, written and read in one place: per
tomogram a record (``<name>_fiducials.json``: coordinates, scores, relaxed
mode, warnings, search statistics), RELION coordinate tables (``<name>.star``,
all tomograms in ``coordinates.star``) and Scipion's ``x y z`` text
(``<name>.txt``).  The command line, the protocol, the viewers and the
workflow export all go through it.

Coordinates are ``(x, y, z)`` in voxels of the tomogram, scores the mirror
correlation of each fiducial.  The tomogram's name is stored inside each file
(``tomogram``, ``rlnTomoName``): nothing is recovered from file names.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from ..typealiases import PathLike
from .erase import ErasedTomogram
from .params import PeakHighContrastResult

logger = logging.getLogger(__name__)

__all__ = [
    "TomogramFiducials",
    "coordinate_table",
    "read_all",
    "read_coordinates_star",
    "read_tomogram",
    "record_path",
    "summary_row",
    "write_coordinates_star",
    "write_erased",
    "write_tomogram",
]

_SKIP = object()


def _plain(value: object) -> object:
    """A search statistic as JSON data (numpy scalars as Python numbers,
    sequences element-wise); ``_SKIP`` for what is not plain data (arrays)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return _SKIP if any(v is _SKIP for v in items) else items
    return _SKIP


def _stats(stats: Mapping) -> dict:
    """The statistics a record keeps: plain data, not the time taken (the
    same input gives the same bytes; timings go to ``job.json``)."""
    out = {}
    for k, v in stats.items():
        plain = _plain(v)
        if plain is not _SKIP and not str(k).startswith("time"):
            out[str(k)] = plain
    return out


@dataclass(frozen=True, eq=False)  # arrays: compare fields, not records
class TomogramFiducials:
    """The fiducials found in one tomogram.

    Attributes
    ----------
    name : str
        The tomogram's name (file-name safe; ``rlnTomoName``).
    coordinates : (n, 3) ndarray
        ``(x, y, z)`` in voxels of the tomogram.
    scores : (n,) ndarray
        Mirror correlation of each fiducial.
    relaxed_mode : bool
        Whether the filters were relaxed because too few fiducials passed.
    warnings : list of str
    stats : dict
        Search statistics (``search``, ``bead_scale``, ``sampling_rate``,
        ...).
    file_name : str
        The tomogram's file (``rlnMicrographName``), "" when unknown.
    obj_id : int or None
        The Scipion object id of the tomogram (protocol runs).
    """

    name: str
    coordinates: np.ndarray
    scores: np.ndarray
    relaxed_mode: bool = False
    warnings: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    file_name: str = ""
    obj_id: int | None = None

    @classmethod
    def from_result(
        cls,
        name: str,
        result: PeakHighContrastResult,
        file_name: str = "",
        obj_id: int | None = None,
    ) -> TomogramFiducials:
        """The record of a :class:`~.params.PeakHighContrastResult`."""
        stats = result.stats
        return cls(
            name=name,
            coordinates=np.asarray(result.coordinates, float).reshape(-1, 3),
            scores=np.asarray(result.scores, float),
            relaxed_mode=bool(result.relaxed_mode_used),
            warnings=list(result.warnings),
            stats=_stats(stats),
            file_name=file_name,
            obj_id=obj_id,
        )

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def smeared(self) -> bool:
        """Whether the fiducials were found only by a smeared-bead search."""
        return bool(len(self)) and (
            self.stats.get("search") in ("smeared", "streak") or self.bead_scale > 1
        )

    @property
    def bead_scale(self) -> float:
        """Size of the beads found relative to the expected size."""
        return float(self.stats.get("bead_scale", 1.0))

    def to_json(self) -> dict:
        """The record as JSON-able data (the keys of ``<name>_fiducials.json``)."""
        out: dict = {"tomogram": self.name}
        if self.obj_id is not None:
            out["objId"] = int(self.obj_id)
        out.update(
            {
                "coordinates": self.coordinates.tolist(),
                "scores": self.scores.tolist(),
                "relaxed_mode": bool(self.relaxed_mode),
                "warnings": list(self.warnings),
                "stats": dict(self.stats),
            }
        )
        if self.file_name:
            out["file_name"] = self.file_name
        return out

    @classmethod
    def from_json(cls, data: Mapping) -> TomogramFiducials:
        """The record of :meth:`to_json`'s data."""
        return cls(
            name=str(data["tomogram"]),
            coordinates=np.asarray(data["coordinates"], float).reshape(-1, 3),
            scores=np.asarray(data["scores"], float),
            relaxed_mode=bool(data.get("relaxed_mode", False)),
            warnings=list(data.get("warnings", [])),
            stats=dict(data.get("stats", {})),
            file_name=str(data.get("file_name", "")),
            obj_id=None if data.get("objId") is None else int(data["objId"]),
        )


def record_path(folder: PathLike, name: str) -> Path:
    """The record file of tomogram ``name`` in ``folder``."""
    return Path(folder) / f"{name}_fiducials.json"


def coordinate_table(name: str, file_name: str, coordinates: ArrayLike, scores: ArrayLike) -> dict:
    """STAR columns of one tomogram's fiducials (RELION labels)."""
    xyz = np.asarray(coordinates, float).reshape(-1, 3)
    return {
        "rlnTomoName": [name] * len(xyz),
        "rlnMicrographName": [file_name] * len(xyz),
        "rlnCoordinateX": xyz[:, 0],
        "rlnCoordinateY": xyz[:, 1],
        "rlnCoordinateZ": xyz[:, 2],
        "rlnAutopickFigureOfMerit": np.asarray(scores, float),
    }


def write_tomogram(folder: PathLike, record: TomogramFiducials, star: bool = True) -> list[Path]:
    """Write one tomogram's files to ``folder``, each atomically.

    ``<name>_fiducials.json`` always; with ``star`` also ``<name>.star``
    (RELION coordinates) and ``<name>.txt`` (``x y z`` per line, for Scipion's
    coordinate import).  Returns the paths written.
    """
    from ..io.mrc import atomic_path
    from ..io.star import write_star

    folder = Path(folder)
    paths = [record_path(folder, record.name)]
    with atomic_path(paths[0]) as tmp:
        tmp.write_text(json.dumps(record.to_json(), indent=1))
    if star:
        table = coordinate_table(record.name, record.file_name, record.coordinates, record.scores)
        paths.append(folder / f"{record.name}.star")
        write_star(paths[-1], table, "particles")
        paths.append(folder / f"{record.name}.txt")
        with atomic_path(paths[-1]) as tmp:
            tmp.write_text("".join(f"{x:.2f} {y:.2f} {z:.2f}\n" for x, y, z in record.coordinates))
    return paths


def write_erased(
    folder: PathLike, name: str, erased: ErasedTomogram, voxel_size: float
) -> list[Path]:
    """``<name>_erased.mrc`` (the tomogram, beads erased, float32) and
    ``<name>_beads.mrc`` (1 where a bead was erased, MRC mode 0) in ``folder``,
    each atomically."""
    from ..io.mrc import write_mrc

    paths = [Path(folder) / f"{name}_erased.mrc", Path(folder) / f"{name}_beads.mrc"]
    write_mrc(paths[0], erased.volume, voxel_size)
    write_mrc(paths[1], erased.mask.view(np.int8), voxel_size, dtype=np.int8)  # mode 0
    return paths


def read_tomogram(folder: PathLike, name: str) -> TomogramFiducials:
    """The record of tomogram ``name`` written by :func:`write_tomogram`.

    Raises
    ------
    FileNotFoundError
        No record of that tomogram in ``folder``.
    """
    return TomogramFiducials.from_json(json.loads(record_path(folder, name).read_text()))


def write_coordinates_star(path: PathLike, records: Sequence[TomogramFiducials]) -> Path:
    """Every tomogram's fiducials in one RELION coordinate table (atomic)."""
    from ..io.star import write_star

    tables = [coordinate_table(r.name, r.file_name, r.coordinates, r.scores) for r in records]
    empty = coordinate_table("", "", np.zeros((0, 3)), np.zeros(0))
    merged = {k: [v for t in tables for v in list(t[k])] for k in empty}
    write_star(path, merged, "particles")
    return Path(path)


def read_coordinates_star(path: PathLike) -> dict[str, np.ndarray]:
    """``{rlnTomoName: (n, 4) array of x, y, z, figure of merit}`` of a
    coordinate table written by :func:`write_coordinates_star` (or by RELION:
    a missing figure of merit reads as NaN)."""
    from ..io.star import read_star

    table = read_star(path, dtypes={"rlnTomoName": str, "rlnMicrographName": str})
    names = [str(n) for n in table["rlnTomoName"]]
    cols = [np.asarray(table[f"rlnCoordinate{a}"], float) for a in "XYZ"]
    merit = table.get("rlnAutopickFigureOfMerit")
    cols.append(np.full(len(names), np.nan) if merit is None else np.asarray(merit, float))
    rows = np.stack(cols, axis=1) if names else np.zeros((0, 4))
    return {n: rows[[i for i, m in enumerate(names) if m == n]] for n in dict.fromkeys(names)}


def summary_row(record: TomogramFiducials) -> dict:
    """One tomogram's line of a run summary: name, count, relaxed mode,
    search, bead scale, warnings."""
    return {
        "tomogram": record.name,
        "count": len(record),
        "relaxed_mode": record.relaxed_mode,
        "search": record.stats.get("search", "peak"),
        "bead_scale": record.bead_scale,
        "warnings": list(record.warnings),
    }


def read_all(folder: PathLike, names: Iterable[str]) -> list[TomogramFiducials]:
    """The records of ``names`` in ``folder`` that exist, in that order
    (a tomogram without a record is logged and skipped)."""
    out = []
    for name in names:
        try:
            out.append(read_tomogram(folder, name))
        except FileNotFoundError:
            logger.info("%s: no fiducial record in %s", name, folder)
    return out
