"""Figure helpers shared by faml_tomo's viewers (plain matplotlib; the
Scipion part is imported only by :func:`plot_window`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from pwem.viewers import EmPlotter

__all__ = ["new_figure", "plot_window"]


def new_figure(fig: Figure | None, figsize: tuple[float, float]) -> Figure:
    """A cleared figure of ``figsize`` inches: ``fig`` resized, or a new one.

    A Scipion plot window opens at about 6 x 5.4 inches whatever the
    content; resizing makes wide figures (one row per class, ...) readable.
    """
    if fig is None:
        fig = Figure(figsize=figsize)
    else:
        fig.set_size_inches(*figsize)
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
