"""Viewer of :class:`~faml_tomo.protocols.ProtPeakHighContrast`: per
tomogram, a slab of central XY slices with the detected fiducials overlaid,
and the histogram of their mirror-correlation scores.

The figures are drawn by plain functions (:func:`slab_figure`,
:func:`score_histogram_figure`) that return matplotlib figures, so they can
be rendered headless (Agg) and checked in tests.
"""

from __future__ import annotations

import logging

import numpy as np
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from pwem.viewers import EmPlotter, EmProtocolViewer
from pyworkflow.protocol import params
from pyworkflow.viewer import DESKTOP_TKINTER, WEB_DJANGO

from .plotting import new_figure
from ..protocols.protocol_peak_high_contrast import (
    ProtPeakHighContrast,
    tomogram_key,
    tomogram_path,
)

logger = logging.getLogger(__name__)

__all__ = ["ProtPeakHighContrastViewer", "slab_figure", "score_histogram_figure", "central_slab"]


def central_slab(volume: ArrayLike, thickness: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Mean of ``thickness`` central XY slices of a (memory-mapped) volume.

    Parameters
    ----------
    volume : array_like, shape (nz, ny, nx)
    thickness : int
        Slices averaged (clipped to ``nz``).

    Returns
    -------
    image : numpy.ndarray, shape (ny, nx)
    z_range : tuple of int
        First and last slice averaged.
    """
    nz = volume.shape[0]
    t = int(min(max(1, thickness), nz))
    z0 = (nz - t) // 2
    return np.asarray(volume[z0 : z0 + t], dtype=np.float32).mean(axis=0), (z0, z0 + t - 1)


def slab_figure(
    image: np.ndarray,
    coordinates: ArrayLike,
    scores: ArrayLike | None = None,
    z_range: tuple[int, int] | None = None,
    bead_diameter_px: float = 10.0,
    title: str = "",
    figure: Figure | None = None,
) -> Figure:
    """A slab of central XY slices with fiducials overlaid.

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
        The slab (e.g. from :func:`central_slab`).
    coordinates : array_like, shape (n, 3)
        Fiducials ``(x, y, z)`` in voxels.
    scores : array_like, shape (n,), optional
        Colour of the circles (mirror correlation).
    z_range : tuple of int, optional
        Slices of the slab: fiducials within it (give or take a bead radius)
        are drawn as circles of the bead diameter, the others as small grey
        crosses.  None: all as circles.
    bead_diameter_px : float
        Circle diameter in voxels.
    title : str
    figure : matplotlib.figure.Figure, optional
        Figure to draw into (a new one otherwise).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.patches import Circle

    fig = new_figure(figure, (7, 6.5))
    ax = fig.add_subplot(111)
    lo, hi = np.percentile(image, [1, 99])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, origin="lower", interpolation="nearest")
    xyz = np.asarray(coordinates, float).reshape(-1, 3)
    sc = np.zeros(len(xyz)) if scores is None else np.asarray(scores, float)
    if z_range is None:
        inside = np.ones(len(xyz), bool)
    else:
        r = bead_diameter_px / 2
        inside = (xyz[:, 2] >= z_range[0] - r) & (xyz[:, 2] <= z_range[1] + r)
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    for (x, y, _), s in zip(xyz[inside], sc[inside]):
        ax.add_patch(
            Circle(
                (x, y),
                radius=max(bead_diameter_px / 2 + 1, 3),
                fill=False,
                lw=1.5,
                ec=cmap(float(np.clip(s, 0, 1))),
            )
        )
    if (~inside).any():
        ax.plot(
            xyz[~inside, 0],
            xyz[~inside, 1],
            "x",
            color="tab:orange",
            ms=6,
            mew=1.2,
            label="outside the slab",
        )
        ax.legend(loc="upper right", fontsize=8)
    if len(xyz):
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        fig.colorbar(
            ScalarMappable(Normalize(0, 1), cmap), ax=ax, shrink=0.8, label="mirror correlation"
        )
    slab = "" if z_range is None else f", slices z {z_range[0]}-{z_range[1]}"
    ax.set_title(
        f"{title}: {int(inside.sum())} of {len(xyz)} fiducials in the slab{slab}"
        if title
        else f"{int(inside.sum())} of {len(xyz)} fiducials{slab}",
        fontsize=10,
    )
    ax.set_xlabel("x (voxels)")
    ax.set_ylabel("y (voxels)")
    return fig


def score_histogram_figure(
    scores: ArrayLike, threshold: float | None = None, title: str = "", figure: Figure | None = None
) -> Figure:
    """Histogram of the fiducials' mirror-correlation scores.

    Parameters
    ----------
    scores : array_like, shape (n,)
    threshold : float, optional
        Minimum mirror correlation used, drawn as a vertical line.
    title : str
    figure : matplotlib.figure.Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = new_figure(figure, (6, 4))
    ax = fig.add_subplot(111)
    s = np.asarray(scores, float).ravel()
    ax.hist(s, bins=np.linspace(-1, 1, 41) if len(s) else 10, color="tab:blue", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", ls="--", label=f"threshold {threshold:g}")
        ax.legend(loc="upper left", fontsize=8)
    stats = f"n = {len(s)}" + (f", median {np.median(s):.2f}" if len(s) else "")
    ax.set_title(f"{title}: {stats}" if title else stats, fontsize=10)
    ax.set_xlabel("mirror correlation")
    ax.set_ylabel("fiducials")
    return fig


class ProtPeakHighContrastViewer(EmProtocolViewer):
    """Central slab of each tomogram with its fiducials, and their scores."""

    _label = "viewer peak high contrast"
    _targets = [ProtPeakHighContrast]
    _environments = [DESKTOP_TKINTER, WEB_DJANGO]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam(
            "tomoNumber",
            params.IntParam,
            default=1,
            label="Tomogram number",
            help="Which tomogram of the input set (1 = first).",
        )
        form.addParam(
            "slabThickness",
            params.IntParam,
            default=0,
            label="Slab thickness (slices)",
            help="Central XY slices averaged; 0: two bead diameters.",
        )
        form.addParam(
            "displaySlab", params.LabelParam, label="Show the central slab with the fiducials"
        )
        form.addParam("displayScores", params.LabelParam, label="Show the histogram of the scores")

    def _getVisualizeDict(self):
        return {"displaySlab": self._showSlab, "displayScores": self._showScores}

    def _tomogram(self):
        # iterItems reuses one object: clone each item.
        tomos = [t.clone() for t in self.protocol.inputTomograms.get().iterItems()]
        i = int(self.tomoNumber.get() or 1)
        if not 1 <= i <= len(tomos):
            raise ValueError(f"tomogram number must be between 1 and {len(tomos)}")
        return tomos[i - 1]

    def _coordinates(self, tomo):
        from ..fiducials.results import read_tomogram

        try:
            rec = read_tomogram(self.protocol._getExtraPath(), tomogram_key(tomo))
        except FileNotFoundError:  # not searched yet
            return np.zeros((0, 3)), np.zeros(0)
        return rec.coordinates, rec.scores

    def tomogramViews(self, number: int) -> dict[str, list]:
        """The views of tomogram ``number`` (1 = first of the input set):
        ``{"fiducials": slab with the fiducials, "fiducial_scores": histogram}``
        (for exports; the GUI calls the same functions)."""
        self.tomoNumber.set(number)
        return {"fiducials": self._showSlab(), "fiducial_scores": self._showScores()}

    def _showSlab(self, param=None):
        from ..io.mrc import open_mrc

        tomo = self._tomogram()
        xyz, scores = self._coordinates(tomo)
        d = self.protocol.fiducialSize.get() * 10.0 / tomo.getSamplingRate()
        thickness = int(self.slabThickness.get() or max(5, int(np.ceil(2 * d))))
        with open_mrc(tomogram_path(tomo)) as (data, _):
            image, z_range = central_slab(data, thickness)
        plotter = EmPlotter(windowTitle="Peak high contrast: fiducials", figsize=(7, 6.5))
        slab_figure(
            image, xyz, scores, z_range, d, title=tomogram_key(tomo), figure=plotter.getFigure()
        )
        return [plotter]

    def _showScores(self, param=None):
        tomo = self._tomogram()
        _, scores = self._coordinates(tomo)
        plotter = EmPlotter(windowTitle="Peak high contrast: scores", figsize=(6, 4))
        score_histogram_figure(
            scores,
            self.protocol.mirrorCorrelationThr.get(),
            title=tomogram_key(tomo),
            figure=plotter.getFigure(),
        )
        return [plotter]
