"""Results of a finished faml_tomo project: each protocol's summary and
outputs as plain data (read through the tasks' results modules from the
runs' folders, or from Scipion's output sets), and its viewers' figures
rendered headless (PNG).

The figures are drawn by the same viewer classes the Scipion GUI opens
(:mod:`faml_tomo.viewers`); with ``MPLBACKEND=Agg`` nothing needs a display.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..typealiases import PathLike

from .project import protocol_info

if TYPE_CHECKING:
    from pyworkflow.project import Project

logger = logging.getLogger(__name__)

__all__ = ["export_project", "save_views"]

DPI = 90


def save_views(views: Sequence | None, stem: PathLike) -> list[str]:
    """Save the matplotlib figures of viewer results.

    Parameters
    ----------
    views : list
        What a viewer's visualize function returns; the items with a
        ``getFigure()`` (``EmPlotter``) are saved, others (Java/Qt viewers)
        skipped.
    stem : Path
        Output path without suffix; several figures get ``_2``, ``_3``...

    Returns
    -------
    list of str
        The PNG files written.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    for view in views or []:
        if not hasattr(view, "getFigure"):
            logger.info("%s: %s is not a matplotlib view, skipped", stem.name, type(view).__name__)
            continue
        path = stem.with_name(stem.name + (f"_{len(paths) + 1}" if paths else "") + ".png")
        view.getFigure().savefig(path, dpi=DPI, bbox_inches="tight")
        paths.append(str(path))
    return paths


def _viewer(viewer_cls, project, prot):
    """A protocol viewer with its form parameters defined (as the GUI does
    when it opens it)."""
    viewer = viewer_cls(project=project, protocol=prot)
    viewer.setProtocol(prot)
    return viewer


def _peak_high_contrast(prot, project, fig_dir):
    from ..fiducials.results import read_all
    from ..protocols.protocol_peak_high_contrast import tomogram_key
    from ..viewers.viewer_peak_high_contrast import ProtPeakHighContrastViewer

    keys = [tomogram_key(t) for t in prot.inputTomograms.get().iterItems()]
    records = {r.name: r for r in read_all(prot._getExtraPath(), keys)}
    coords = {
        key: np.column_stack([records[key].coordinates, records[key].scores]).tolist()
        if key in records
        else []
        for key in keys
    }
    figures = []
    viewer = _viewer(ProtPeakHighContrastViewer, project, prot)
    for i, key in enumerate(keys, 1):
        for name, views in viewer.tomogramViews(i).items():
            figures += save_views(views, fig_dir / f"{name}_{key}")
    return {"coordinates": coords}, figures


def _detect_misalignment(prot, project, fig_dir):
    from ..misalignment.results import read_results
    from ..viewers.viewer_misalignment import MisalignmentViewer

    res = read_results(prot._getExtraPath()) or {}
    data = {
        "tomograms": {
            ts: {k: r[k] for k in ("label", "strong_score", "weak_score", "n_beads", "message")}
            for ts, r in res.items()
        }
    }
    viewer = _viewer(MisalignmentViewer, project, prot)
    figures = []
    for name, views in viewer.exportViews().items():
        figures += save_views(views, fig_dir / name)
    return data, figures


def _faml_classify(prot, project, fig_dir):
    classes = getattr(prot, "outputClasses", None)
    members = {}
    if classes is not None:
        for cls in classes.iterItems():
            for sub in cls.iterItems():
                members[os.path.basename(sub.getFileName())] = int(cls.getObjId())
    return {"classes": members}, _all_views(prot, project, fig_dir, "faml")


def _all_views(prot, project, fig_dir, prefix):
    """Every matplotlib view of every faml_tomo viewer of the protocol
    (through the viewers' public ``exportViews``)."""
    from pwem import Domain
    from pyworkflow.viewer import DESKTOP_TKINTER

    figures = []
    for viewer_cls in Domain.findViewers(prot.getClassName(), DESKTOP_TKINTER):
        if viewer_cls.__module__.startswith("faml_tomo.") and hasattr(viewer_cls, "exportViews"):
            viewer = _viewer(viewer_cls, project, prot)
            for key, views in viewer.exportViews().items():
                figures += save_views(views, fig_dir / f"{prefix}_{key}")
    return figures


EXPORTERS = {
    "ProtPeakHighContrast": _peak_high_contrast,
    "ProtDetectMisalignment": _detect_misalignment,
    "ProtFAMLClassify": _faml_classify,
}


def export_project(
    project: Project,
    fig_dir: PathLike,
    infos: list[dict] | None = None,
    say: Callable[[str], object] = print,
) -> list[dict]:
    """Summaries, outputs and viewer figures of every protocol of a project.

    Parameters
    ----------
    project : pyworkflow.project.Project
    fig_dir : str or Path
        Folder for the PNG files.
    infos : list of dict, optional
        :func:`~faml_tomo.workflow.project.protocol_info` of the runs (with
        their measured times); read from the project otherwise.

    Returns
    -------
    list of dict
        Per protocol, in run order: its info plus ``data`` (coordinates,
        decisions, class members: plain lists and dicts) and ``figures``.
    """
    fig_dir = Path(fig_dir)
    if infos is None:
        infos = [protocol_info(p) for p in sorted(project.getRuns(), key=lambda p: p.getObjId())]
    out = []
    for info in infos:
        prot = project.getProtocol(info["id"])
        entry = dict(info, data={}, figures=[])
        exporter = EXPORTERS.get(info["class"])
        if exporter is not None and prot.isFinished():
            entry["data"], entry["figures"] = exporter(prot, project, fig_dir)
            for f in entry["figures"]:
                say(f"figure {f}")
        out.append(entry)
    return out
