"""FAML viewer figures that need no Scipion project: posterior histograms."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from faml_tomo.viewers.viewer_faml import posterior_histograms  # noqa: E402


def test_posterior_histograms_count_every_subtomogram():
    """Posteriors of exactly 0 and 1, and a hair outside [0, 1] from float
    sums, all land in a bin: each class panel counts all its members."""
    post = np.array([0.0, 1.0, 1.0 + 1e-12, 1.0 - 1e-12, -1e-12, 0.5, 1.0000000000004, 0.25])
    classes = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    edges, counts = posterior_histograms(post, classes, 3, bins=4)
    assert edges.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert counts.sum(axis=1).tolist() == [3, 4, 1]
    assert counts[0].tolist() == [1, 0, 0, 2]  # 0 -> first bin, 1 + eps -> last
    assert counts[1].tolist() == [1, 0, 1, 2]
    assert counts[2].tolist() == [0, 1, 0, 0]  # 0.25 on an edge: upper bin


def test_posterior_histograms_empty_class():
    edges, counts = posterior_histograms(np.array([0.9]), np.array([1]), 2, bins=5)
    assert counts.tolist() == [[0] * 5, [0, 0, 0, 0, 1]]


def test_resolution_from_the_curve_crossing():
    from faml_tomo.averaging.outputs import crossing_shell, resolution_text

    shells = np.array([1, 2, 3, 4, 5])
    curve = np.array([0.99, 0.8, 0.3, 0.1, 0.0])
    s = crossing_shell(shells, curve, 0.143)
    assert np.interp(s, shells, curve) == pytest.approx(0.143)  # where the plot crosses
    assert resolution_text(s, 32, 10.0, curve, 0.143) == f"{320 / s:.1f} Å"
    never = np.array([0.99, 0.9, 0.8, 0.7, 0.6])
    assert crossing_shell(shells, never, 0.143) == 5.0
    assert resolution_text(5.0, 32, 10.0, never, 0.143) == "better than 64.0 Å"
    assert crossing_shell(shells, np.array([0.1, 0.0, 0, 0, 0]), 0.143) is None
