"""Figure helpers shared by faml_tomo's viewers (plain matplotlib; the
Scipion part is imported only by :func:`plot_window`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from pwem.viewers import EmPlotter

__all__ = ["new_figure", "plot_window", "MAX_FIGURE_PX"]

# Every window the plugin opens fits a 1280 x 800 screen: the figure leaves
# room for the window's title bar and Scipion's plot toolbar (about 70 px).
MAX_FIGURE_PX = (1260, 720)


def new_figure(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    """A cleared figure of ``figsize`` inches: ``fig`` resized, or a new one.

    A Scipion plot window opens at about 6 x 5.4 inches whatever the
    content; resizing makes wide figures (one row per class, ...) readable.
    Each side is capped at :data:`MAX_FIGURE_PX` at the figure's dpi, so the
    window fits a 1280 x 800 screen (a figure of many classes or tomograms
    gets denser, not larger).
    """
    if fig is None:
        fig = Figure(figsize=figsize)
    dpi = float(fig.dpi)
    fig.set_size_inches(
        min(float(figsize[0]), MAX_FIGURE_PX[0] / dpi),
        min(float(figsize[1]), MAX_FIGURE_PX[1] / dpi),
    )
    fig.clear()
    return fig


def plot_window(draw: Callable[[Figure], object], title: str) -> list[EmPlotter]:
    """A Scipion plot window (``EmPlotter``) whose figure ``draw(fig)`` fills;
    returned as the one-element list of views a viewer function returns."""
    from pwem.viewers import EmPlotter

    plotter = EmPlotter(windowTitle=title)
    plotter.tightLayoutOn = False  # the figures lay themselves out
    draw(plotter.getFigure())
    return [plotter]
