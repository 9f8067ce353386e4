"""Scipion outputs and result files of a misalignment run, filled one
tomogram at a time (the protocol scores tomograms as their coordinates
arrive: see :mod:`faml_tomo.protocols.streaming`).

Each tomogram's step adds its record to the run's result files
(:func:`add_result`: ``misalignment_results.json``, ``scores.star``,
``tomograms.star``, rewritten whole through :mod:`faml_tomo.misalignment.results`,
in scoring order, so a run with a closed input writes what one step scoring
every tomogram wrote); the checks append the scored tomograms to the output
sets from those records (:func:`append_beads`, :func:`labelled_tomogram`).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import numpy as np

from ..misalignment.decision import ALIGNED, STRONG, WEAK

if TYPE_CHECKING:
    from tomo.objects import SetOfSubTomograms, SubTomogram, Tomogram

    from ..misalignment.detect import TomogramResult

logger = logging.getLogger(__name__)

__all__ = [
    "OUT_SETS",
    "OUT_SUBTOMOS",
    "OUT_UNCLASSIFIED",
    "add_result",
    "append_beads",
    "labelled_tomogram",
    "result_from_record",
]

OUT_SUBTOMOS = "outputSubtomograms"
OUT_SETS = {
    ALIGNED: "outputAlignedTomograms",
    WEAK: "outputWeakMisalignedTomograms",
    STRONG: "outputStrongMisalignedTomograms",
}
# tomograms without enough usable beads: kept in their own set, with the reason
OUT_UNCLASSIFIED = "outputUnclassifiedTomograms"


def result_from_record(name: str, record: dict) -> TomogramResult:
    """The :class:`~faml_tomo.misalignment.detect.TomogramResult` of a JSON
    record (without boxes), which writes the same record and table rows."""
    from ..misalignment.decision import TomogramDecision
    from ..misalignment.detect import TomogramResult

    dec = TomogramDecision(
        record["label"],
        float(record["strong_score"]),
        float(record["weak_score"]),
        int(record["n_beads"]),
        record["message"],
        float(record["strong_spread"]),
        int(record["n_disagree"]),
        int(record["n_excluded"]),
    )
    return TomogramResult(
        name,
        np.asarray(record["coords"], float).reshape(-1, 3),
        np.asarray(record["strong"], float),
        np.asarray(record["weak"], float),
        np.asarray(record["outside"], float),
        dec,
        box_sampling=float(record["box_sampling"]),
        warnings=list(record["warnings"]),
        excluded=list(record["excluded"]),
        verdict=list(record["verdict"]),
    )


def add_result(folder: str, res: TomogramResult) -> None:
    """Add (or replace) one tomogram's result in the result files of ``folder``
    (the tomograms already there keep their place; a new one comes last)."""
    from ..misalignment.results import read_results, write_results

    stored = read_results(folder) or {}
    results = {name: result_from_record(name, rec) for name, rec in stored.items()}
    results[res.name] = res
    write_results(folder, list(results.values()))


def append_beads(
    subs: SetOfSubTomograms,
    tomo: Tomogram,
    ts: str,
    record: dict,
    coords: list,
    box_dir: str,
    bead_sampling: float,
) -> None:
    """Append the bead boxes of ``tomo`` (named ``ts``; its coordinate objects
    ``coords``, in input order, and their scores in ``record``) to ``subs``."""
    from tomo.objects import SubTomogram

    from ..io.naming import box_name

    if len(coords) != len(record["strong"]):  # coordinates added after the scoring
        logger.warning(
            "%s: %d coordinates now, %d when it was scored: the first %d published",
            ts,
            len(coords),
            len(record["strong"]),
            min(len(coords), len(record["strong"])),
        )
        coords = coords[: len(record["strong"])]
    for i, coord in enumerate(coords):
        sub = SubTomogram()
        sub.setLocation(os.path.join(box_dir, box_name(ts, i)))
        sub.setSamplingRate(bead_sampling)
        sub.setCoordinate3D(coord)
        sub.setVolName(ts)
        sub.setVolId(tomo.getObjId())
        if tomo.getAcquisition() is not None:
            sub.setAcquisition(tomo.getAcquisition())
        _set_bead_scores(sub, record, i)
        subs.append(sub)


def _set_bead_scores(sub: SubTomogram, r: dict, i: int) -> None:
    from pyworkflow.object import Boolean, Float, String

    sub._strongScore = Float(r["strong"][i])
    sub._weakScore = Float(r["weak"][i])
    sub._outsideFraction = Float(r["outside"][i])
    if "used" in r:
        sub._used = Boolean(bool(r["used"][i]))
        sub._beadVerdict = String(r["verdict"][i] or "-")
        sub._disagrees = Boolean(bool(r["disagree"][i]))
    sub._tomoMisalignment = String(r["label"])


def labelled_tomogram(tomo: Tomogram, r: dict) -> Tomogram:
    """A copy of ``tomo`` with its decision (record ``r``) as attributes."""
    from pyworkflow.object import Float, Integer, String

    t = tomo.clone()
    t._strongScore = Float(r["strong_score"])
    t._weakScore = Float(r["weak_score"])
    t._numberOfBeads = Integer(r["n_beads"])
    t._misalignment = String(r["label"])
    t._misalignmentMessage = String(r.get("message") or "-")
    t._strongSpread = Float(r.get("strong_spread", float("nan")))
    t._beadsDisagreeing = Integer(r.get("n_disagree", 0))
    t._beadsExcluded = Integer(r.get("n_excluded", 0))
    return t
