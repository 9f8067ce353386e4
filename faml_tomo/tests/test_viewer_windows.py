"""Every window the viewers open fits a 1280 x 800 screen, however many
classes, tomograms or boxes it shows (the class gallery of a 6-class run was
1172 px high)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from faml_tomo.viewers.plotting import MAX_FIGURE_PX, new_figure  # noqa: E402
from faml_tomo.viewers.viewer_misalignment import (  # noqa: E402
    box_gallery,
    score_histograms,
    tomogram_score_plot,
)

SCREEN = (1280, 800)
WINDOW_FRAME_PX = 70  # title bar and the plot toolbar of a Scipion window


def _fits(fig):
    w, h = fig.get_size_inches() * fig.dpi
    assert w <= SCREEN[0] and h + WINDOW_FRAME_PX <= SCREEN[1], (w, h)


def test_new_figure_caps_each_side():
    assert MAX_FIGURE_PX[0] <= SCREEN[0] and MAX_FIGURE_PX[1] + WINDOW_FRAME_PX <= SCREEN[1]
    for dpi in (72, 100, 150):
        fig = new_figure(Figure(dpi=dpi), (11, 1.9 * 6 + 0.8))  # the 6-class gallery
        _fits(fig)
        assert fig.get_size_inches()[0] == min(11, MAX_FIGURE_PX[0] / dpi)
    small = new_figure(None, (6, 4))
    assert tuple(small.get_size_inches()) == (6, 4)  # small figures keep their size


def test_misalignment_windows_with_many_tomograms_fit():
    rng = np.random.default_rng(0)
    results = {
        f"TS_{i:03d}": {
            "label": ("aligned", "weak", "strong")[i % 3],
            "strong_score": float(rng.uniform()),
            "weak_score": float(rng.uniform()),
            "strong": rng.uniform(size=20).tolist(),
            "weak": rng.uniform(size=20).tolist(),
        }
        for i in range(150)
    }
    _fits(tomogram_score_plot(results, 0.5, 0.5))
    _fits(score_histograms(results, 0.5, 0.5))
    boxes = rng.normal(size=(40, 32, 32, 32)).astype(np.float32)
    _fits(box_gallery(boxes, rng.uniform(size=40), n=10))
