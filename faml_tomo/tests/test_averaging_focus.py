"""Focused classification: classes that differ only inside a classification
mask, while a larger part outside it varies independently of the class."""

import numpy as np

from faml_tomo.averaging import AlignParams, EMParams, classify
from faml_tomo.averaging.testing import f1_score, phantom, simulate_subtomograms


def _blob(n, centre, sigma, amp):
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    return amp * np.exp(
        -((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) / (2 * sigma**2)
    )


def test_focus_mask_classifies_on_the_masked_subunit_not_on_the_larger_variation():
    n = 32
    base = phantom(n, seed=2)
    inside = _blob(n, (5, 5, 0), 1.5, 0.6 * base.max())  # 5 % of the mass: the class
    outside = _blob(n, (-6, -4, 2), 2.5, 0.8 * base.max())  # 32 %: varies, not the class
    ds = simulate_subtomograms(
        [base, base + outside, base + inside, base + inside + outside], 6, 0.2, seed=1
    )
    has_inside = (ds.classes >= 2).astype(int)
    has_outside = ds.classes % 2
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    focus = np.clip(1.5 - np.sqrt((x - 5) ** 2 + (y - 5) ** 2 + z**2) / 4.0, 0, 1)
    # two starting references that differ by noise only (a consensus map)
    rng = np.random.default_rng(0)
    consensus = base + 0.5 * inside + 0.5 * outside
    refs = [consensus + rng.normal(size=consensus.shape) * 0.3 * consensus.std() for _ in range(2)]
    params = EMParams(n_classes=2, max_iter=5, seed=0, align=AlignParams(lmax=23))
    whole = classify(ds.volumes, ds.tilt_range, params=params, references=refs, workers=2)
    focused = classify(
        ds.volumes, ds.tilt_range, params=params, references=refs, workers=2, focus_mask=focus
    )
    # the whole particle splits by the larger variation; the mask by the subunit
    assert f1_score(has_outside, whole.classes) > 0.9
    assert f1_score(has_inside, focused.classes) > 0.9
    assert f1_score(has_outside, focused.classes) < 0.7


def test_identical_references_for_several_classes_are_refused():
    import pytest

    from faml_tomo.errors import InputError

    ref = phantom(20, seed=2)
    ds = simulate_subtomograms([ref], 4, 1.0, seed=1)
    with pytest.raises(InputError, match="references are identical"):
        classify(ds.volumes, ds.tilt_range, n_classes=2, references=[ref, ref.copy()], max_iter=1)


def test_focused_classes_from_one_consensus_reference():
    """K classes started from one map (random subsets at their transforms
    against it, RELION's way) split by the masked subunit."""
    n = 32
    base = phantom(n, seed=2)
    inside = _blob(n, (5, 5, 0), 1.5, 0.6 * base.max())
    outside = _blob(n, (-6, -4, 2), 2.5, 0.8 * base.max())
    ds = simulate_subtomograms(
        [base, base + outside, base + inside, base + inside + outside], 6, 0.2, seed=1
    )
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    focus = np.clip(1.5 - np.sqrt((x - 5) ** 2 + (y - 5) ** 2 + z**2) / 4.0, 0, 1)
    consensus = base + 0.5 * inside + 0.5 * outside
    params = EMParams(n_classes=2, max_iter=5, seed=0, align=AlignParams(lmax=23))
    res = classify(
        ds.volumes,
        ds.tilt_range,
        params=params,
        references=[consensus],
        workers=2,
        focus_mask=focus,
    )
    assert f1_score((ds.classes >= 2).astype(int), res.classes) > 0.9
    assert f1_score(ds.classes % 2, res.classes) < 0.7


def test_reference_count_must_be_one_or_k():
    import pytest

    from faml_tomo.errors import InputError

    ref = phantom(20, seed=2)
    ds = simulate_subtomograms([ref], 6, 1.0, seed=1)
    with pytest.raises(InputError, match="got 2 references for K=3 classes"):
        classify(ds.volumes, ds.tilt_range, n_classes=3, references=[ref, ref + 1], max_iter=1)
