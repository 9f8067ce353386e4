"""Plots of a FAML classification run, and the Scipion viewer of
:class:`~faml_tomo.protocols.ProtFAMLClassify`.

The plotting functions are plain matplotlib (no pyplot state, no display) and
read a run folder (the CLI's ``--out``, the protocol's ``extra/run``) through
:mod:`faml_tomo.averaging.outputs`; each returns a
:class:`matplotlib.figure.Figure`, or draws into one given as ``fig``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ..averaging.outputs import read_history, read_iteration
from ..typealiases import PathLike
from .plotting import new_figure, plot_window

if TYPE_CHECKING:
    from pwem.viewers import EmPlotter
    from pyworkflow.protocol.params import Form

logger = logging.getLogger(__name__)

__all__ = [
    "averages_figure",
    "history_figure",
    "posterior_figure",
    "posterior_histograms",
    "fsc_figure",
    "CLASS_COLOURS",
]

CLASS_COLOURS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_PANELS = (
    ("slice XY", lambda v, c: v[c]),
    ("slice XZ", lambda v, c: v[:, c]),
    ("slice YZ", lambda v, c: v[:, :, c]),
    ("projection Z", lambda v, c: v.sum(0)),
    ("projection Y", lambda v, c: v.sum(1)),
    ("projection X", lambda v, c: v.sum(2)),
)


def _colour(k: int) -> str:
    return CLASS_COLOURS[k % len(CLASS_COLOURS)]


def averages_figure(
    run_dir: PathLike,
    iteration: int | None = None,
    fig: Figure | None = None,
    voxel_size: float | None = None,
) -> Figure:
    """Class averages as orthogonal central slices and projections.

    One row per class: central slices XY, XZ, YZ (through voxel ``n // 2``)
    and projections along Z, Y, X, grey levels as stored (cryo-ET contrast:
    protein is usually dark).  Rows are labelled with the class size at that
    iteration.

    Parameters
    ----------
    run_dir : str or Path
    iteration : int, optional
        1-based; default the last finished iteration.
    voxel_size : float, optional
        Å per voxel, for the scale note in the title.
    """
    it = read_iteration(run_dir, iteration)
    avgs = it["averages"]
    k_total, n = len(avgs), avgs.shape[-1]
    sizes = np.bincount(it["classes"], minlength=k_total)
    fig = new_figure(fig, (11, 1.9 * k_total + 0.8))
    axes = fig.subplots(k_total, len(_PANELS), squeeze=False)
    c = n // 2
    for k, vol in enumerate(avgs):
        for j, (name, cut) in enumerate(_PANELS):
            ax = axes[k, j]
            img = cut(vol, c)
            lo, hi = np.percentile(img, [1, 99.5])
            ax.imshow(img, cmap="gray", origin="lower", vmin=lo, vmax=hi if hi > lo else None)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_title(name, fontsize=9)
        axes[k, 0].set_ylabel(f"class {k + 1}\n{sizes[k]} particles", fontsize=9, color=_colour(k))
    scale = f", {n}^3 voxels" + (f" at {voxel_size:g} Å" if voxel_size else "")
    fig.suptitle(f"Class averages, iteration {it['iteration']}{scale}", fontsize=11)
    fig.subplots_adjust(
        left=0.08,
        right=0.99,
        top=0.9 if k_total > 1 else 0.8,
        bottom=0.02,
        wspace=0.05,
        hspace=0.08,
    )
    return fig


def history_figure(
    run_dir: PathLike, fig: Figure | None = None, voxel_size: float | None = None
) -> Figure:
    """Log-likelihood, class sizes and band radius per iteration.

    Panels: (1) log-likelihood of the data, (2) class sizes (one line per
    class), (3) the E-step band radius and the half-set FSC resolution in
    Fourier shells (frequency marching), with a resolution axis in Å when
    ``voxel_size`` (Å) is given.
    """
    h = read_history(run_dir)
    its = np.arange(1, h["iterations"] + 1)
    fig = new_figure(fig, (12, 3.8))
    ax_ll, ax_sz, ax_r = fig.subplots(1, 3)
    ax_ll.plot(its, h["log_likelihood"], "o-", color="k")
    ax_ll.set_xlabel("iteration")
    ax_ll.set_ylabel("log-likelihood")
    ax_ll.set_title("log-likelihood", fontsize=10)
    ax_ll.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
    sizes = np.array(
        [s if s is not None else [np.nan] * h["n_classes"] for s in h["class_sizes"]], dtype=float
    ).reshape(len(its), -1)
    for k in range(sizes.shape[1]):
        ax_sz.plot(its, sizes[:, k], "o-", color=_colour(k), label=f"class {k + 1}")
    ax_sz.set_xlabel("iteration")
    ax_sz.set_ylabel("subtomograms")
    ax_sz.set_title("class sizes", fontsize=10)
    ax_sz.set_ylim(0, max(1, np.nanmax(sizes) * 1.1) if sizes.size else 1)
    ax_sz.legend(fontsize=8)
    if h.get("band_radius"):
        ax_r.plot(its, h["band_radius"], "o-", label="E-step band")
        label = (
            "gold-standard FSC 0.143" if h.get("gold_standard") else "even/odd FSC 0.5 (optimistic)"
        )
        ax_r.plot(its, h["fsc_radius"], "s--", label=label)
        ax_r.legend(
            fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False
        )
    ax_r.set_xlabel("iteration")
    ax_r.set_ylabel("radius (Fourier shells)")
    ax_r.set_title("resolution", fontsize=10)
    box = h.get("box")
    if voxel_size and box:

        def to_angstrom(r: np.ndarray) -> np.ndarray:
            return box * voxel_size / np.maximum(np.asarray(r, dtype=float), 1e-3)

        ax_r.secondary_yaxis("right", functions=(to_angstrom, to_angstrom)).set_ylabel("Å")
    for ax in (ax_ll, ax_sz, ax_r):
        ax.set_xticks(its if len(its) <= 20 else its[:: max(1, len(its) // 10)])
    state = "converged" if h["converged"] else "iteration limit reached"
    fig.suptitle(
        f"{h['mode'].upper()}: {h['n_particles']} subtomograms, "
        f"{h['n_classes']} classes, {h['iterations']} iterations ({state})",
        fontsize=11,
    )
    fig.subplots_adjust(left=0.07, right=0.95, top=0.82, bottom=0.24, wspace=0.4)
    return fig


def posterior_histograms(
    max_posterior: np.ndarray, classes: np.ndarray, n_classes: int, bins: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of class posteriors per class on ``bins`` equal bins of [0, 1].

    Posteriors are clipped to [0, 1] first: sums of floating-point weights
    land a hair outside (1.0000000000004), and every subtomogram must be
    counted.

    Returns
    -------
    edges : numpy.ndarray, shape (bins + 1,)
    counts : numpy.ndarray, shape (n_classes, bins), int
    """
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    post = np.clip(np.asarray(max_posterior, dtype=float), 0.0, 1.0)
    classes = np.asarray(classes)
    counts = np.stack(
        [np.histogram(post[classes == k], bins=edges)[0] for k in range(int(n_classes))]
    )
    return edges, counts


def posterior_figure(
    run_dir: PathLike, iteration: int | None = None, bins: int = 20, fig: Figure | None = None
) -> Figure:
    """Histogram of each subtomogram's class posterior (the probability mass
    of the class it was assigned to), one panel per class.  Mass near 1:
    confident assignments; near ``1/K``: ambiguous ones."""
    it = read_iteration(run_dir, iteration, averages=False)
    k_total = len(it["alpha"])
    fig = new_figure(fig, (min(3.2 * k_total, 14), 3.0))
    axes = np.atleast_1d(fig.subplots(1, k_total))
    edges, counts = posterior_histograms(it["max_posterior"], it["classes"], k_total, bins)
    for k, ax in enumerate(axes):
        ax.stairs(counts[k], edges, fill=True, color=_colour(k))
        ax.set_title(f"class {k + 1} ({int(counts[k].sum())})", fontsize=10)
        ax.set_xlabel("class posterior")
        ax.set_xlim(0, 1)
        if k == 0:
            ax.set_ylabel("subtomograms")
    fig.suptitle(f"Class posteriors, iteration {it['iteration']}", fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.8, bottom=0.18, wspace=0.3)
    return fig


def _mark_crossing(ax, shells, curve, level, scale, box, voxel_size, colour):
    """A tick where ``curve`` crosses ``level``, labelled with the resolution
    the summary quotes (the same interpolated crossing)."""
    from ..averaging.outputs import crossing_shell, resolution_text

    s = crossing_shell(shells, curve, level)
    if not s:
        return
    ax.scatter([s * scale], [level], s=20, color=colour, zorder=3)  # not a curve
    text = (
        resolution_text(s, box, voxel_size, curve, level)
        if voxel_size and box
        else f"{s:.1f} shells"
    )
    ax.annotate(text, (s * scale, level), xytext=(4, 6), textcoords="offset points", fontsize=8)


def fsc_figure(
    run_dir: PathLike,
    iterations: Sequence[int] | None = None,
    voxel_size: float | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Half-set Fourier shell correlation after some iterations.

    Gold-standard runs (independent half-sets): each class's curve after the
    last iteration and the class-mass weighted curve after the others, read
    at 0.143.  Otherwise the even and odd subtomograms (class-mass weighted);
    they share the reference, so the curve is optimistic and read at 0.5
    (what frequency marching follows); the title says which.

    Parameters
    ----------
    run_dir : str or Path
    iterations : sequence of int, optional
        1-based; default the first, the middle and the last finished one.
    voxel_size : float, optional
        Å per voxel: the x axis in 1/Å with resolution labels in Å;
        without, in Fourier shells.
    """
    from ..averaging.outputs import finished_iterations, fsc_kind

    done = finished_iterations(run_dir)
    if iterations is None:
        iterations = sorted({done[0], done[len(done) // 2], done[-1]}) if done else []
    h = read_history(run_dir)
    box = h.get("box")
    gold = bool(h.get("gold_standard"))
    kind, level = fsc_kind(gold)
    fig = new_figure(fig, (6.5, 4.2))
    ax = fig.subplots()
    scale = 1.0 / (box * voxel_size) if voxel_size and box else 1.0
    last = iterations[-1] if iterations else None
    for j, it in enumerate(iterations):
        d = read_iteration(run_dir, it, averages=False)
        if "fsc" not in d:
            continue
        x = d["fsc_shells"].astype(float) * scale
        if gold and it == last and "fsc_classes" in d:
            for k, curve in enumerate(d["fsc_classes"]):
                ax.plot(x, curve, "-", color=_colour(k), label=f"class {k + 1}, iteration {it}")
                _mark_crossing(
                    ax, d["fsc_shells"], curve, level, scale, box, voxel_size, _colour(k)
                )
            continue
        if not gold and it == last:
            _mark_crossing(ax, d["fsc_shells"], d["fsc"], level, scale, box, voxel_size, "black")
        ax.plot(
            x,
            d["fsc"],
            "--" if gold else "-",
            color="grey" if gold else CLASS_COLOURS[j % len(CLASS_COLOURS)],
            alpha=0.4 + 0.6 * (j + 1) / len(iterations) if gold else 1.0,
            label=f"iteration {it}" + (" (all classes)" if gold else ""),
        )
    ax.axhline(level, color="black", linestyle=":", linewidth=1, label=f"FSC {level:g}")
    ax.set_ylim(-0.1, 1.02)
    ax.set_ylabel("FSC")
    if voxel_size and box:
        ax.set_xlabel("resolution (1/Å)")
        top = ax.secondary_xaxis(
            "top", functions=(lambda f: 1 / np.maximum(f, 1e-6), lambda r: 1 / np.maximum(r, 1e-6))
        )
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if t > 0 and lo <= t <= hi]
        top.set_xticks([1 / t for t in ticks], [f"{1 / t:.0f}" for t in ticks])
        top.set_xlabel("Å")
    else:
        ax.set_xlabel("Fourier shell (cycles per box)")
    if len(ax.get_lines()) > 1:
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no FSC recorded", ha="center", transform=ax.transAxes)
    ax.set_title(kind, fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.96, top=0.8, bottom=0.14)
    return fig


# --------------------------- Scipion viewer ----------------------------------
try:
    from pwem.viewers import EmProtocolViewer
    from pyworkflow.protocol import params as _params
    from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO

    from ..protocols.protocol_faml_classify import ProtFAMLClassify
except ImportError:  # pragma: no cover - compute-only install
    EmProtocolViewer = None

if EmProtocolViewer is not None:

    class FAMLClassifyViewer(EmProtocolViewer):
        """Class averages, convergence and posteriors of a FAML run.

        The output averages and classes also open in Scipion's standard
        volume and class viewers (right-click on the outputs)."""

        _label = "FAML results"
        _targets = [ProtFAMLClassify]
        _environments = [DESKTOP_TKINTER, WEB_DJANGO]

        def _defineParams(self, form: Form) -> None:
            form.addSection(label="Visualization")
            form.addParam(
                "iteration",
                _params.IntParam,
                allowsNull=True,
                label="Iteration (empty: last)",
                help="Iteration whose averages and posteriors are shown.",
            )
            form.addParam(
                "showAverages",
                _params.LabelParam,
                label="Class averages (central slices and projections)",
            )
            form.addParam(
                "showHistory",
                _params.LabelParam,
                label="Log-likelihood and class sizes per iteration",
            )
            form.addParam("showPosteriors", _params.LabelParam, label="Class posterior histograms")
            form.addParam(
                "showFsc",
                _params.LabelParam,
                label="Half-set FSC (gold-standard per class, or even/odd)",
            )
            form.addParam(
                "show3D",
                _params.LabelParam,
                label="Class averages in 3D (ChimeraX)",
                help="Opens the final class averages in ChimeraX, through Scipion's "
                "ChimeraX plugin (scipion-em-chimera) where it is installed.",
            )

        def _getVisualizeDict(self) -> dict[str, Callable[..., list[EmPlotter]]]:
            return {
                "showAverages": self._showAverages,
                "showHistory": self._showHistory,
                "showPosteriors": self._showPosteriors,
                "showFsc": self._showFsc,
                "show3D": self._show3D,
            }

        def exportViews(self) -> dict[str, list[EmPlotter]]:
            """Every view of the run, by form key (for exports; the GUI opens
            the same ones); a view that cannot be drawn is logged and left out."""
            views = {}
            for key, show in self._getVisualizeDict().items():
                if key == "show3D":  # an interactive program, not a figure
                    continue
                try:
                    views[key] = show(key)
                except Exception as exc:  # one broken plot must not lose the others
                    logger.warning("FAML viewer %s: %s", key, exc)
            return views

        def _iteration(self) -> int | None:
            obj = getattr(self, "iteration", None)
            value = obj.get() if obj is not None and hasattr(obj, "get") else None
            return None if value is None else int(value)

        def _plotter(self, draw: Callable[[Figure], object], title: str) -> list[EmPlotter]:
            return plot_window(draw, title)

        def _run(self) -> str:
            return self.protocol._runDir()

        def _showAverages(self, _param: object = None) -> list[EmPlotter]:
            sr = self.protocol.inputSubtomograms.get().getSamplingRate()
            return self._plotter(
                lambda f: averages_figure(self._run(), self._iteration(), fig=f, voxel_size=sr),
                "FAML class averages",
            )

        def _showHistory(self, _param: object = None) -> list[EmPlotter]:
            sr = self.protocol.inputSubtomograms.get().getSamplingRate()
            return self._plotter(
                lambda f: history_figure(self._run(), fig=f, voxel_size=sr), "FAML convergence"
            )

        def _showFsc(self, _param: object = None) -> list[EmPlotter]:
            sr = self.protocol.inputSubtomograms.get().getSamplingRate()
            return self._plotter(
                lambda f: fsc_figure(self._run(), voxel_size=sr, fig=f), "FAML FSC"
            )

        def _showPosteriors(self, _param: object = None) -> list[EmPlotter]:
            return self._plotter(
                lambda f: posterior_figure(self._run(), self._iteration(), fig=f),
                "FAML class posteriors",
            )

        def _show3D(self, _param: object = None) -> list:
            """ChimeraX on the final class averages; a message view when there
            are none yet or ChimeraX is not installed."""
            files = averages_for_3d(self.protocol)
            program = chimerax_program()
            problem = (
                "no class averages yet: the run has not finished"
                if not files
                else "ChimeraX was not found: install Scipion's ChimeraX plugin "
                "(scipion-em-chimera), or open the averages in any volume viewer "
                "(right-click on the protocol's averages output)"
                if program is None
                else None
            )
            if problem is not None:
                return [self.errorMessage(problem, "Class averages in 3D")]
            from pwem.viewers.viewer_chimera import ChimeraView

            return [ChimeraView(files)]


def averages_for_3d(protocol: object) -> list[str]:
    """The files of a FAML run's final class averages (its averages output)."""
    from ..protocols.protocol_faml_classify import OUT_AVERAGES

    averages = getattr(protocol, OUT_AVERAGES, None)
    if averages is None:
        return []
    return [a.getFileName() for a in averages.iterItems(orderBy="id")]


def chimerax_program() -> str | None:
    """The ChimeraX executable Scipion would start, or None when it is not
    installed."""
    try:
        from pwem.viewers.viewer_chimera import Chimera

        program = Chimera.getProgram()
    except Exception as exc:  # no pwem, no ChimeraX configuration
        logger.debug("no ChimeraX: %s", exc)
        return None
    return program if program and os.path.isfile(program) else None
