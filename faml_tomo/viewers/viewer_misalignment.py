"""Plots of misalignment-detection results, and the Scipion viewer of
:class:`~faml_tomo.protocols.ProtDetectMisalignment`.

The plotting functions are plain matplotlib (no pyplot state, no display):
they take the per-tomogram results (as the protocol stores them in
``extra/misalignment_results.json``: ``{tsId: {"label", "strong",
"weak", "strong_score", "weak_score", ...}}``) and return a
:class:`matplotlib.figure.Figure`, or draw into one given as ``fig``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from .plotting import new_figure, plot_window

__all__ = [
    "load_results",
    "LABEL_COLOURS",
    "score_histograms",
    "tomogram_score_plot",
    "box_gallery",
    "bead_map",
]

LABEL_COLOURS = {
    "aligned": "#2ca02c",
    "weak": "#ff7f0e",
    "strong": "#d62728",
    "unclassified": "#7f7f7f",
}
_ORDER = ("aligned", "weak", "strong", "unclassified")


def load_results(path: str | os.PathLike) -> dict | None:
    """The results of a run from its ``misalignment_results.json`` (kept for
    callers of earlier versions; :func:`faml_tomo.misalignment.results.read_results`
    reads a run's folder)."""
    from ..misalignment.results import read_results

    return read_results(os.path.dirname(os.fspath(path)) or ".")


def _num(value):
    """float, NaN for None / missing."""
    return float("nan") if value is None else float(value)


def score_histograms(
    results: Mapping[str, Mapping],
    strong_threshold: float = 0.5,
    weak_threshold: float | None = None,
    bins: int = 20,
    fig: Figure | None = None,
) -> Figure:
    """Histograms of the per-bead scores of both networks, stacked by the
    decision of the bead's tomogram.

    Parameters
    ----------
    results : dict
        ``{tsId: {"label": str, "strong": [...], "weak": [...]}}``.
    strong_threshold, weak_threshold : float
        Drawn as vertical lines (the weak one if given).
    """
    fig = new_figure(fig, (9, 3.8))
    axes = fig.subplots(1, 2)
    edges = np.linspace(0, 1, bins + 1)
    for ax, key, title, thr in (
        (axes[0], "strong", "strong network", strong_threshold),
        (axes[1], "weak", "weak network", weak_threshold),
    ):
        data, colours, names = [], [], []
        for label in _ORDER:
            vals = [v for r in results.values() if r["label"] == label for v in r.get(key, [])]
            if vals:
                data.append(np.asarray(vals, float))
                colours.append(LABEL_COLOURS[label])
                names.append(f"{label} ({len(vals)})")
        if data:
            ax.hist(data, bins=edges, stacked=True, color=colours, label=names)
        else:
            ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        if thr is not None:
            ax.axvline(thr, color="k", ls="--", lw=1, label="threshold")
        ax.set_xlim(0, 1)
        ax.set_xlabel("score (1 = aligned)")
        ax.set_ylabel("beads")
        ax.set_title(title)
    # one legend below both panels: inside them it hid the threshold lines
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            title="tomogram",
            fontsize=8,
            loc="lower center",
            ncol=min(len(handles), 5),
        )
    fig.tight_layout(rect=(0, 0.16 if handles else 0, 1, 1))
    return fig


def tomogram_score_plot(
    results: Mapping[str, Mapping],
    strong_threshold: float = 0.5,
    weak_threshold: float | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Aggregated strong (circles) and weak (triangles) score of each
    tomogram, sorted by strong score, coloured by decision."""
    fig = new_figure(fig, (max(5, 0.35 * len(results) + 2), 4))
    ax = fig.subplots(1, 1)
    items = sorted(
        results.items(),
        key=lambda kv: (np.nan_to_num(_num(kv[1].get("strong_score")), nan=-1), kv[0]),
    )
    x = np.arange(len(items))
    for i, (name, r) in enumerate(items):
        c = LABEL_COLOURS.get(r["label"], "k")
        s, w = _num(r.get("strong_score")), _num(r.get("weak_score"))
        ax.plot(i, s, "o", color=c)
        ax.plot(i, w, "^", color=c, mfc="none")
        if r["label"] == "unclassified":
            ax.plot(i, 0.02, "x", color=c)
    ax.axhline(strong_threshold, color="k", ls="--", lw=1, label="strong threshold")
    if weak_threshold is not None:
        ax.axhline(weak_threshold, color="k", ls=":", lw=1, label="weak threshold")
    for label in _ORDER:
        if any(r["label"] == label for _, r in items):
            ax.plot([], [], "s", color=LABEL_COLOURS[label], label=label)
    ax.plot([], [], "ko", label="strong score")
    ax.plot([], [], "k^", mfc="none", label="weak score")
    ax.set_xticks(x)
    ax.set_xticklabels([n for n, _ in items], rotation=60, ha="right", fontsize=7)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("tomogram score (1 = aligned)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def box_gallery(
    boxes: Sequence[np.ndarray] | Callable[[int], np.ndarray],
    scores: ArrayLike,
    n: int = 4,
    names: Sequence[str] | None = None,
    title: str = "strong score",
    fig: Figure | None = None,
) -> Figure:
    """Central XY, XZ and YZ slices of the ``n`` lowest- and ``n``
    highest-scoring boxes.

    Parameters
    ----------
    boxes : sequence of numpy.ndarray (32, 32, 32) or callable
        Boxes indexed ``[z, y, x]``, or ``boxes(i)`` returning box ``i``
        (loaded lazily).
    scores : array_like, shape (m,)
    n : int
        Boxes per end.
    names : sequence of str, optional
        Label of each box (e.g. ``"TS_01 #3"``).
    """
    scores = np.asarray(scores, float)
    order = np.array([i for i in np.argsort(scores, kind="stable") if np.isfinite(scores[i])], int)
    low = list(order[:n])
    high = [i for i in order[::-1][:n] if i not in low]
    picks = [("lowest", i) for i in low] + [("highest", i) for i in high]
    fig = new_figure(fig, (7.5, 1.35 * max(len(picks), 1) + 0.5))
    if not picks:
        ax = fig.subplots(1, 1)
        ax.text(0.5, 0.5, "no boxes", ha="center", va="center")
        ax.axis("off")
        return fig
    get = boxes if callable(boxes) else (lambda i: boxes[i])
    axes = np.atleast_2d(fig.subplots(len(picks), 3))
    for row, (end, i) in enumerate(picks):
        b = np.asarray(get(int(i)), float)
        c = np.array(b.shape) // 2
        views = (("XY", b[c[0]]), ("XZ", b[:, c[1], :]), ("YZ", b[:, :, c[2]]))
        lo, hi = np.percentile(b, [1, 99])
        for col, (plane, img) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(img, cmap="gray", vmin=lo, vmax=hi, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(plane, fontsize=9)
        label = names[i] if names is not None else f"#{i}"
        axes[row, 0].set_ylabel(f"{end}\n{label}\n{scores[i]:.2f}", fontsize=7)
    fig.suptitle(f"lowest / highest {title}", fontsize=9)
    fig.tight_layout()
    return fig


def bead_map(
    name: str, result: Mapping, shape: tuple[int, ...] | None = None, fig: Figure | None = None
) -> Figure:
    """Where the beads of one tomogram are and what each one says: XY and XZ
    positions coloured by the bead's strong score (red 0 = misaligned, green
    1 = aligned), beads whose own verdict disagrees with the tomogram's label
    ringed in black, beads not scored (outside the volume, non-finite)
    marked with a grey x.

    Parameters
    ----------
    name : str
    result : dict
        One tomogram of ``misalignment_results.json``: ``coords``, ``strong``,
        ``label``; optionally ``disagree``, ``used``, ``excluded``,
        ``strong_spread``.
    shape : tuple, optional
        Tomogram ``(nz, ny, nx)`` for the axis limits.
    """
    xyz = np.asarray(result.get("coords", []), float).reshape(-1, 3)
    s = np.asarray([_num(v) for v in result.get("strong", [])], float)
    dis = np.asarray(result.get("disagree", [0] * len(s)), bool)
    used = np.isfinite(s)
    fig = new_figure(fig, (9, 4.2))
    axes = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1]})
    sc = None
    for ax, (i, j), (xl, yl) in ((axes[0], (0, 1), ("x", "y")), (axes[1], (0, 2), ("x", "z"))):
        if used.any():
            sc = ax.scatter(
                xyz[used, i],
                xyz[used, j],
                c=s[used],
                cmap="RdYlGn",
                vmin=0,
                vmax=1,
                s=40,
                edgecolors="none",
            )
        if (dis & used).any():
            ax.scatter(
                xyz[dis & used, i],
                xyz[dis & used, j],
                s=110,
                facecolors="none",
                edgecolors="k",
                linewidths=1.2,
                label="disagrees with the tomogram",
            )
        if (~used).any():
            ax.scatter(xyz[~used, i], xyz[~used, j], marker="x", c="0.5", s=40, label="not scored")
        if shape is not None:
            ax.set_xlim(0, shape[2] - 1)
            ax.set_ylim(0, shape[1 if yl == "y" else 0] - 1)
        ax.set_xlabel(f"{xl} (voxels)")
        ax.set_ylabel(f"{yl} (voxels)")
        ax.set_aspect("equal", adjustable="datalim")
    spread = _num(result.get("strong_spread"))
    fig.suptitle(
        f"{name}: {result.get('label', '?')}, {int(used.sum())} beads scored, "
        f"spread {spread:.2f}, {int((dis & used).sum())} disagree",
        fontsize=9,
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.subplots_adjust(top=0.82, bottom=0.13)
    if handles:
        fig.legend(
            handles,
            labels,
            fontsize=7,
            loc="upper center",
            ncol=2,
            bbox_to_anchor=(0.45, 0.93),
            frameon=False,
        )
    if sc is not None:
        fig.colorbar(sc, ax=list(axes), shrink=0.8, label="bead strong score")
    return fig


# --------------------------- Scipion viewer ----------------------------------
try:
    from pwem.viewers import EmProtocolViewer
    from pyworkflow.protocol import params as _params
    from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO

    from ..protocols.protocol_detect_misalignment import ProtDetectMisalignment
except ImportError:  # pragma: no cover - compute-only install
    EmProtocolViewer = None

if EmProtocolViewer is not None:

    class MisalignmentViewer(EmProtocolViewer):
        """Scores and decisions of a misalignment-detection run."""

        _label = "misalignment scores"
        _targets = [ProtDetectMisalignment]
        _environments = [DESKTOP_TKINTER, WEB_DJANGO]

        def _defineParams(self, form):
            form.addSection(label="Visualization")
            form.addParam(
                "showHistograms", _params.LabelParam, label="Score histograms of both networks"
            )
            form.addParam("showTomograms", _params.LabelParam, label="Per-tomogram scores")
            form.addParam(
                "galleryNetwork",
                _params.EnumParam,
                choices=["strong", "weak"],
                default=0,
                label="Gallery sorted by",
                display=_params.EnumParam.DISPLAY_HLIST,
            )
            form.addParam("galleryCount", _params.IntParam, default=4, label="Boxes at each end")
            form.addParam("showGallery", _params.LabelParam, label="Lowest / highest scoring boxes")
            form.addParam(
                "mapTomogram",
                _params.StringParam,
                default="",
                label="Tomogram of the bead map",
                help="Its tsId; empty: the first tomogram flagged misaligned (or the first one).",
            )
            form.addParam(
                "showBeadMap",
                _params.LabelParam,
                label="Bead map: each bead's score, beads that disagree",
            )

        def _getVisualizeDict(self):
            return {
                "showHistograms": self._histograms,
                "showTomograms": self._tomograms,
                "showGallery": self._gallery,
                "showBeadMap": self._beadMap,
            }

        def _beadMap(self, _param=None):
            res = self._results()
            name = self._param("mapTomogram", "") or next(
                (ts for ts, r in res.items() if r["label"] in ("strong", "weak")),
                next(iter(res), ""),
            )
            if name not in res:
                from pyworkflow.gui.dialog import showError

                showError(
                    "Bead map",
                    f"no tomogram {name!r} in this run ({', '.join(res)})",
                    self.getTkRoot(),
                )
                return []
            return self._plotter(lambda f: bead_map(name, res[name], fig=f), f"Bead map of {name}")

        def _param(self, name, default):
            """Form value, or the default before the form exists."""
            obj = getattr(self, name, None)
            value = obj.get() if obj is not None and hasattr(obj, "get") else None
            return default if value is None else value

        def _results(self):
            from ..misalignment.results import read_results

            return read_results(self.protocol._getExtraPath()) or {}

        def exportViews(self) -> dict[str, list]:
            """Every view of the run, by name (for exports; the GUI opens the
            same ones): score histograms, per-tomogram scores, box gallery."""
            return {
                "misalignment_scores": self._histograms(),
                "misalignment_tomograms": self._tomograms(),
                "misalignment_boxes": self._gallery(),
            }

        def _thresholds(self):
            return self.protocol.strongThreshold.get(), self.protocol._weakThreshold()

        def _plotter(self, draw, title):
            return plot_window(draw, title)

        def _histograms(self, _param=None):
            s, w = self._thresholds()
            return self._plotter(
                lambda f: score_histograms(self._results(), s, w, fig=f),
                "Misalignment score histograms",
            )

        def _tomograms(self, _param=None):
            s, w = self._thresholds()
            return self._plotter(
                lambda f: tomogram_score_plot(self._results(), s, w, fig=f), "Tomogram scores"
            )

        def _gallery(self, _param=None):
            from ..io.mrc import read_mrc
            from ..io.naming import box_name

            key = ("strong", "weak")[self._param("galleryNetwork", 0)]
            res = self._results()
            files, scores, names = [], [], []
            box_dir = self.protocol._getExtraPath("boxes")
            for ts, r in res.items():
                for i, v in enumerate(r.get(key, [])):
                    files.append(os.path.join(box_dir, box_name(ts, i)))
                    scores.append(v)
                    names.append(f"{ts} #{i + 1}")
            return self._plotter(
                lambda f: box_gallery(
                    lambda i: read_mrc(files[i])[0],
                    scores,
                    self._param("galleryCount", 4),
                    names,
                    f"{key} score",
                    fig=f,
                ),
                "Misalignment box gallery",
            )
