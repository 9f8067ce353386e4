"""Misalignment plots, headless (Agg): histograms, per-tomogram scores, gallery."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from faml_tomo.viewers.viewer_misalignment import (
    LABEL_COLOURS,
    bead_map,  # noqa: E402
    box_gallery,
    score_histograms,
    tomogram_score_plot,
)

RESULTS = {
    "TS_01": {
        "label": "aligned",
        "strong": [0.9, 0.95, 0.8],
        "weak": [0.7, 0.6, 0.8],
        "strong_score": 0.883,
        "weak_score": 0.7,
    },
    "TS_02": {
        "label": "weak",
        "strong": [0.7, 0.8],
        "weak": [0.2, 0.3],
        "strong_score": 0.75,
        "weak_score": 0.25,
    },
    "TS_03": {
        "label": "strong",
        "strong": [0.1, 0.2, 0.05, 0.3],
        "weak": [0.1] * 4,
        "strong_score": 0.16,
        "weak_score": 0.1,
    },
    "TS_04": {
        "label": "unclassified",
        "strong": [],
        "weak": [],
        "strong_score": None,
        "weak_score": None,
    },
}


def _colours(ax):
    return {tuple(np.round(p.get_facecolor()[:3], 3)) for p in ax.patches}


def _rgb(hexcode):
    return tuple(np.round(matplotlib.colors.to_rgb(hexcode), 3))


def test_histograms_are_coloured_by_decision(tmp_path):
    fig = score_histograms(RESULTS, 0.5, 0.5)
    ax_s, ax_w = fig.axes[:2]
    assert ax_s.get_title() == "strong network" and ax_w.get_title() == "weak network"
    for label in ("aligned", "weak", "strong"):
        assert _rgb(LABEL_COLOURS[label]) in _colours(ax_s)
    heights = sum(p.get_height() for p in ax_s.patches)
    assert heights >= 9  # stacked: the top layer reaches the total count
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["aligned (3)", "weak (2)", "strong (4)", "threshold"]
    _legends_outside_the_axes(fig)
    fig.savefig(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000


def _legends_outside_the_axes(fig):
    """No legend covers a plotting area (it hid the threshold lines)."""
    fig.canvas.draw()
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for legend in legends:
        box = legend.get_window_extent()
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent()), (legend, ax.get_title())


def test_tomogram_plot_sorted_with_thresholds(tmp_path):
    fig = tomogram_score_plot(RESULTS, 0.5, 0.4)
    _legends_outside_the_axes(fig)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["TS_04", "TS_03", "TS_02", "TS_01"]  # by strong score
    ys = sorted(
        line.get_ydata()[0] for line in ax.get_lines() if line.get_linestyle() in ("--", ":")
    )
    assert ys == [0.4, 0.5]
    fig.savefig(tmp_path / "t.png")


def test_gallery_lowest_and_highest(tmp_path):
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(7, 32, 32, 32)).astype(np.float32)
    scores = np.array([0.5, 0.1, 0.9, 0.3, 0.95, 0.2, 0.6])
    fig = box_gallery(boxes, scores, n=2, names=[f"b{i}" for i in range(7)])
    axes = fig.axes
    assert len(axes) == 4 * 3  # 2 low + 2 high, 3 planes
    labels = [axes[r * 3].get_ylabel().split("\n")[1] for r in range(4)]
    assert labels == ["b1", "b5", "b4", "b2"]
    assert [axes[i].get_title() for i in range(3)] == ["XY", "XZ", "YZ"]
    # lazily loaded boxes, fewer than 2n
    fig = box_gallery(lambda i: boxes[i], scores[:3], n=2)
    assert len(fig.axes) == 3 * 3
    fig = box_gallery([], [], n=2)
    assert fig.axes[0].texts[0].get_text() == "no boxes"
    fig.savefig(tmp_path / "g.png")


def test_empty_results():
    fig = score_histograms({"TS_09": RESULTS["TS_04"]})
    assert fig.axes[0].texts[0].get_text() == "no scores"
    tomogram_score_plot({"TS_09": RESULTS["TS_04"]})


def test_gallery_skips_unscored_boxes():
    boxes = np.zeros((3, 32, 32, 32), np.float32)
    fig = box_gallery(boxes, [0.2, float("nan"), 0.8], n=1, names=["a", "b", "c"])
    labels = [fig.axes[r * 3].get_ylabel().split("\n")[1] for r in range(2)]
    assert labels == ["a", "c"]


def test_bead_map_marks_disagreeing_and_unscored_beads(tmp_path):
    r = {
        "label": "strong",
        "coords": [[10, 20, 5], [40, 30, 8], [60, 10, 6], [500, 5, 5]],
        "strong": [0.1, 0.2, 0.9, None],
        "disagree": [0, 0, 1, 0],
        "strong_spread": 0.36,
    }
    fig = bead_map("TS_03", r, shape=(16, 64, 96))
    xy = fig.axes[0]
    # scored beads, the ring around the one that disagrees, the unscored one
    sizes = [len(c.get_offsets()) for c in xy.collections]
    assert sizes == [3, 1, 1]
    ring = xy.collections[1].get_offsets()[0]
    assert tuple(ring) == (60, 10)
    assert "1 disagree" in fig._suptitle.get_text() and "3 beads scored" in fig._suptitle.get_text()
    fig.savefig(tmp_path / "map.png")
