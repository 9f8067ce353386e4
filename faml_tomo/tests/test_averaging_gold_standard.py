"""Gold-standard half-sets in FAML: the split, the per-class FSC, no
resolution from noise, and a resolution that matches the truth."""

import dataclasses
import json

import numpy as np
import pytest

from faml_tomo.averaging import EMParams, classify
from faml_tomo.averaging.align import band_geometry
from faml_tomo.averaging.fourier import spectrum
from faml_tomo.averaging.halves import (
    class_fsc,
    combine_halves,
    fsc_radius,
    random_halves,
    subset_numbers,
)
from faml_tomo.averaging.testing import (
    aligned_correlation,
    f1_score,
    phantom,
    simulate_subtomograms,
)
from faml_tomo.errors import InputError
from faml_tomo.geometry import transform_volume


def test_random_halves_are_balanced_seeded_and_differ_by_seed():
    a = random_halves(41, seed=3)
    assert a.sum() == 21 and (~a).sum() == 20
    np.testing.assert_array_equal(a, random_halves(41, seed=3))
    assert not np.array_equal(a, random_halves(41, seed=4))
    # not the even/odd split: neighbours in a tomogram are not always apart
    assert not np.array_equal(a, np.arange(41) % 2 == 0)
    np.testing.assert_array_equal(subset_numbers(a), np.where(a, 1, 2))


def test_class_fsc_of_a_map_with_itself_is_one_and_of_independent_noise_near_zero():
    geom = band_geometry(32, 1, 15)
    rng = np.random.default_rng(0)
    vol = phantom(32, seed=1)
    s = spectrum(vol).reshape(-1)[geom.index]
    noise = [spectrum(rng.normal(size=(32,) * 3)).reshape(-1)[geom.index] for _ in range(2)]
    curves = class_fsc(np.stack([s, noise[0]]), np.stack([s, noise[1]]), geom)
    assert curves.shape == (2, 15)
    np.testing.assert_allclose(curves[0][:10], 1.0, atol=1e-12)
    assert np.abs(curves[1][3:]).max() < 0.2  # shells >= 4: hundreds of points
    assert fsc_radius(curves[0], geom, 0.143) == 15
    assert fsc_radius(np.r_[0.9, 0.5, 0.1, 0.9], geom, 0.143) == 2


def test_combine_halves_weights_by_class_mass():
    half = np.stack([np.ones((2, 5)), 3 * np.ones((2, 5))]).astype(complex)
    g = np.array([[1.0, 0.0], [3.0, 0.0]])
    out = combine_halves(half, g)
    np.testing.assert_allclose(out[0], 2.5)  # (1*1 + 3*3) / 4
    np.testing.assert_allclose(out[1], 2.0)  # both empty: plain mean


def test_settings_fingerprint_and_checks():
    p = EMParams()
    assert "gold_standard" not in json.loads(p.fingerprint())  # old checkpoints resume
    assert (
        json.loads(dataclasses.replace(p, gold_standard=True).fingerprint())["gold_standard"]
        is True
    )
    assert p.fsc_level() == 0.5
    assert dataclasses.replace(p, gold_standard=True).fsc_level() == 0.143
    with pytest.raises(InputError, match="gold-standard half-sets need at least 2 K = 6"):
        dataclasses.replace(p, gold_standard=True, n_classes=3).check(5)


def _truth_fsc(average, truth):
    """FSC of an average with the truth turned onto it, shells 1..n/2-1."""
    _, rot, shift = aligned_correlation(average, truth)
    moved = transform_volume(truth, rot, shift, order=3)
    n = average.shape[0]
    geom = band_geometry(n, 1, n // 2 - 1)
    a, b = (spectrum(v).reshape(-1)[geom.index] for v in (average, moved))
    return class_fsc(a[None], b[None], geom)[0]


def test_noise_gives_no_resolution_with_independent_half_sets():
    """Pure noise aligned to a reference: the shared reference makes the
    even/odd halves agree beyond the start band (Einstein from noise); the
    independent halves do not, so no resolution beyond the joined shells."""
    n = 24
    rng = np.random.default_rng(5)
    noise = rng.normal(size=(24, n, n, n))
    ref = phantom(n, seed=1, n_blobs=6)
    kw = dict(n_classes=1, max_iter=4, seed=3, references=[ref], workers=2)
    shared = classify(noise, (-60, 60), **kw)
    gold = classify(noise, (-60, 60), gold_standard=True, **kw)
    r_join = EMParams().join_radius(n)  # curves start at shell 1
    assert gold.gold_standard and not shared.gold_standard
    # the first shell beyond the join still shares a little through the
    # interpolation of the back-rotated data; the shared reference much more
    assert shared.fsc[r_join] > gold.fsc[r_join] + 0.3
    assert np.abs(gold.fsc[r_join + 1 : r_join + 4]).max() < 0.15
    assert gold.fsc_radius[-1] <= r_join + 1  # nothing resolved beyond the join
    assert gold.fsc_classes.shape == (1, len(gold.fsc))


def test_gold_standard_classes_and_resolution_match_the_truth():
    """Two classes, independent halves: the classes are found, each half's
    class k is the same structure, and each class's 0.143 resolution is
    within two shells of where its average's FSC with the truth falls to 0.5
    (the full-set equivalent of the half-set 0.143)."""
    n = 32
    truths = [phantom(n, seed=1), phantom(n, seed=4)]
    sim = simulate_subtomograms(truths, 20, 0.05, seed=2)
    res = classify(
        sim.volumes, (-60, 60), n_classes=2, max_iter=8, seed=3, gold_standard=True, workers=2
    )
    assert f1_score(sim.classes, res.classes) == 1.0
    np.testing.assert_array_equal(res.subsets, subset_numbers(random_halves(40, 3)))
    geom = band_geometry(n, 1, n // 2 - 1)
    for k in range(2):
        true_k = int(np.bincount(sim.classes[res.classes == k]).argmax())
        r_gold = fsc_radius(res.fsc_classes[k], geom, 0.143)
        r_true = fsc_radius(_truth_fsc(res.averages[k], truths[true_k]), geom, 0.5)
        assert abs(r_gold - r_true) <= 2, (k, r_gold, r_true)
        assert aligned_correlation(res.averages[k], truths[true_k])[0] > 0.9
