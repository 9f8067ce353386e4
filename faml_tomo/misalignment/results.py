"""Misalignment-detection results on disk, written and read in one place:
``misalignment_results.json`` (per tomogram its decision and every bead's
scores, verdict and coordinates), the RELION-style tables ``scores.star``
(one row per coordinate) and ``tomograms.star`` (one row per tomogram), and
the bead boxes (``boxes/<tomogram>_NNNN.mrc``).  The command line, the
protocol, the viewer and the workflow export all go through it.

A record (one tomogram of the JSON) holds ``label``, ``strong_score``,
``weak_score``, ``n_beads``, ``message``, ``warnings``, ``strong_spread``,
``n_disagree``, ``n_excluded`` (the decision) and per coordinate, in input
order, ``coords`` (voxels of the tomogram), ``strong``, ``weak``,
``outside``, ``used``, ``verdict``, ``disagree``, ``excluded``, plus
``box_sampling`` (Å/voxel of the boxes).  Scores run from 0 (misaligned) to
1 (aligned).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..typealiases import PathLike

if TYPE_CHECKING:
    from .detect import TomogramResult

logger = logging.getLogger(__name__)

__all__ = [
    "RESULTS_JSON",
    "read_results",
    "tomogram_record",
    "write_boxes",
    "write_results",
    "write_tables",
]

RESULTS_JSON = "misalignment_results.json"


def tomogram_record(res: TomogramResult) -> dict:
    """The JSON record of one tomogram's :class:`~.detect.TomogramResult`."""
    d = res.decision
    return {
        "label": d.label,
        "strong_score": d.strong_score,
        "weak_score": d.weak_score,
        "n_beads": d.n_beads,
        "message": d.message,
        "warnings": list(res.warnings),
        "strong": np.asarray(res.strong).tolist(),
        "weak": np.asarray(res.weak).tolist(),
        "outside": np.asarray(res.outside_fraction).tolist(),
        "used": np.asarray(res.used).astype(int).tolist(),
        "verdict": list(res.verdict),
        "disagree": np.asarray(res.disagree).astype(int).tolist(),
        "excluded": list(res.excluded),
        "strong_spread": d.strong_spread,
        "n_disagree": d.n_disagree,
        "n_excluded": d.n_excluded,
        "coords": np.asarray(res.coords).tolist(),
        "box_sampling": res.box_sampling,
    }


def write_tables(folder: PathLike, results: Sequence[TomogramResult]) -> list[Path]:
    """``scores.star`` and ``tomograms.star`` of ``results`` (a sequence of
    :class:`~.detect.TomogramResult`, in tomogram order) in ``folder``."""
    from ..io.star import write_star

    folder = Path(folder)
    rows = [r for r in results if len(r.coords)]
    cat = (lambda f: np.concatenate([f(r) for r in rows])) if rows else (lambda f: np.zeros(0))
    write_star(
        folder / "scores.star",
        {
            "rlnTomoName": [r.name for r in rows for _ in range(len(r.coords))],
            "rlnCoordinateX": cat(lambda r: r.coords[:, 0]),
            "rlnCoordinateY": cat(lambda r: r.coords[:, 1]),
            "rlnCoordinateZ": cat(lambda r: r.coords[:, 2]),
            "famlStrongScore": cat(lambda r: r.strong),
            "famlWeakScore": cat(lambda r: r.weak),
            "famlOutsideFraction": cat(lambda r: r.outside_fraction),
            "famlUsed": cat(lambda r: r.used.astype(int)),
            "famlBeadVerdict": [v or "-" for r in rows for v in r.verdict],
            "famlDisagrees": cat(lambda r: r.disagree.astype(int)),
            "famlExcluded": [(e or "-").replace(" ", "_") for r in rows for e in r.excluded],
        },
        "scores",
    )
    write_star(
        folder / "tomograms.star",
        {
            "rlnTomoName": [r.name for r in results],
            "famlMisalignment": [r.decision.label for r in results],
            "famlStrongScore": [r.decision.strong_score for r in results],
            "famlWeakScore": [r.decision.weak_score for r in results],
            "famlNumberOfBeads": [r.decision.n_beads for r in results],
            "famlStrongSpread": [r.decision.strong_spread for r in results],
            "famlBeadsDisagreeing": [r.decision.n_disagree for r in results],
            "famlBeadsExcluded": [r.decision.n_excluded for r in results],
            "famlMessage": [r.decision.message or "-" for r in results],
        },
        "tomograms",
    )
    return [folder / "scores.star", folder / "tomograms.star"]


def write_results(folder: PathLike, results: Sequence[TomogramResult]) -> list[Path]:
    """Every result file of ``results`` in ``folder``: the two STAR tables
    and ``misalignment_results.json`` (each written atomically)."""
    from ..io.mrc import atomic_path

    paths = write_tables(folder, results)
    paths.append(Path(folder) / RESULTS_JSON)
    records = {r.name: tomogram_record(r) for r in results}
    with atomic_path(paths[-1]) as tmp:
        tmp.write_text(json.dumps(records, indent=1, default=float))
    return paths


def read_results(folder: PathLike) -> dict[str, dict] | None:
    """``{tomogram name: record}`` of a result folder, in tomogram order;
    None when nothing was written yet."""
    path = Path(folder) / RESULTS_JSON
    if not path.exists():
        return None
    return json.loads(path.read_text())


def write_boxes(folder: PathLike, res: TomogramResult) -> list[Path]:
    """The bead boxes of one tomogram's result (scored with ``keep_boxes``)
    as ``<folder>/<tomogram>_NNNN.mrc``, in coordinate order."""
    from ..io.mrc import write_mrc
    from ..io.naming import box_name

    boxes = res.boxes
    if boxes is None:
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / box_name(res.name, i) for i in range(len(boxes))]
    for path, box in zip(paths, boxes):
        write_mrc(path, box, res.box_sampling)
    return paths
