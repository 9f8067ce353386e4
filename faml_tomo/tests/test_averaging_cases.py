"""References of the accuracy cases (faml_tomo.averaging.cases): the true-pose
average recovers the structure from wedge-limited copies, and the
orientation average keeps only what no alignment needs."""

import numpy as np

from faml_tomo.averaging.cases import CASES, orientation_average, true_pose_average
from faml_tomo.averaging.testing import correlation, phantom
from faml_tomo.averaging.wedge import apply_wedge
from faml_tomo.geometry import random_rotations, transform_volume


def test_true_pose_average_fills_the_wedge():
    n, tilt = 24, (-50.0, 50.0)
    ref = phantom(n, seed=3)
    rng = np.random.default_rng(0)
    rots = random_rotations(30, rng)
    shifts = rng.uniform(-2, 2, (30, 3))
    vols = np.stack([apply_wedge(transform_volume(ref, r, t), tilt) for r, t in zip(rots, shifts)])
    avg = true_pose_average(vols, rots, shifts, tilt)
    one = apply_wedge(ref, tilt)  # a single wedge-limited view
    inner = np.zeros_like(ref, bool)
    inner[4:-4, 4:-4, 4:-4] = True
    r_avg, r_one = correlation(avg, ref, inner), correlation(one, ref, inner)
    assert r_avg > 0.97 and r_avg > r_one + 0.05, (r_avg, r_one)
    # wrong poses do not: the same data at random rotations
    wrong = true_pose_average(vols, random_rotations(30, rng), shifts, tilt)
    assert correlation(wrong, ref, inner) < r_avg - 0.2


def test_orientation_average_is_symmetric():
    ref = phantom(24, seed=1)
    ball = orientation_average(ref, "uniform", n=200)
    turned = transform_volume(ball, random_rotations(1, np.random.default_rng(5))[0], order=1)
    assert correlation(ball, turned) > 0.98
    assert correlation(ball, ref) < 0.9
    cyl = orientation_average(ref, "y", n=72)
    about_y = random_rotations(1, np.random.default_rng(6), axis="y")[0]
    assert correlation(cyl, transform_volume(cyl, about_y, order=1)) > 0.98


def test_cases_match_the_issue():
    a, b, c = CASES["a"], CASES["b"], CASES["c"]
    assert (a.counts, a.snr, a.tilt, a.box, a.pixel_size) == ((100, 100), 0.01, (-60, 60), 32, 20.0)
    assert (b.counts, b.snr, b.tilt) == ((100,), 0.003, (-60, 60))
    assert (c.counts, c.snr, c.tilt, c.orientations) == ((50,), 0.01, (-40, 40), "y")
    assert CASES["b_paper"].box == 64 and CASES["b_paper"].pixel_size == 6.0
