"""Point-group symmetry in FAML: groups and their conventions, symmetrised
spectra and weights, candidates and Voronoi cells modulo the group, the
symmetry frame of a reference-free average, and known-answer runs on C7 and
D7 phantoms."""

import numpy as np
import pytest

from faml_tomo.averaging import AlignParams, EMParams, classify
from faml_tomo.averaging.align import band_geometry, fast_align
from faml_tomo.averaging.fourier import spectrum, volume_from_spectrum
from faml_tomo.averaging.symmetry import (
    check_symmetry,
    symmetrize_band,
    symmetrize_weights,
    symmetry_group,
)
from faml_tomo.averaging.symmetry_frame import find_symmetry_frame, symmetry_score
from faml_tomo.averaging.testing import (
    aligned_correlation,
    correlation,
    phantom,
    simulate_subtomograms,
)
from faml_tomo.averaging.voronoi import voronoi_weights
from faml_tomo.averaging.wedge import wedge_mask
from faml_tomo.errors import InputError
from faml_tomo.geometry import random_rotations, rotation_angle_deg, transform_volume

ORDERS = {
    "C1": 1,
    "C7": 7,
    "D7": 14,
    "Dy3": 6,
    "T": 12,
    "Tz3": 12,
    "O": 24,
    "I": 60,
    "I1": 60,
    "I3": 60,
    "I4": 60,
    "I2n5r": 60,
}


def _symmetric_phantom(sym, n=32):
    """A phantom with exactly the point group ``sym`` about the box centre."""
    base = transform_volume(
        phantom(n, seed=3, n_blobs=4, radius=n / 5), None, np.array([4.0, 0.0, 1.0])
    )
    return np.mean([transform_volume(base, g) for g in symmetry_group(sym)], axis=0)


@pytest.mark.parametrize("sym", sorted(ORDERS))
def test_groups_are_closed_rotation_groups_of_the_right_order(sym):
    g = symmetry_group(sym)
    assert len(g) == ORDERS[sym]
    np.testing.assert_allclose(g[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(g), 1.0, atol=1e-9)
    prod = np.einsum("aij,bjk->abik", g, g).reshape(-1, 3, 3)
    dist = np.abs(prod[:, None] - g[None]).max(axis=(2, 3)).min(axis=1)
    assert dist.max() < 1e-6  # closed under products


def test_groups_match_scipion_pwem_for_every_name():
    pytest.importorskip("pwem")
    import pwem.constants as c
    from pwem.convert.symmetry import getSymmetryMatrices

    names = {
        "C7": ("SYM_CYCLIC", 7),
        "D7": ("SYM_DIHEDRAL_X", 7),
        "Dy7": ("SYM_DIHEDRAL_Y", 7),
        "T": ("SYM_TETRAHEDRAL", 1),
        "Tz3": ("SYM_TETRAHEDRAL_Z3", 1),
        "Tz3r": ("SYM_TETRAHEDRAL_Z3R", 1),
        "O": ("SYM_OCTAHEDRAL", 1),
        "I1": ("SYM_I222", 1),
        "I": ("SYM_I222r", 1),
        "I3": ("SYM_In25", 1),
        "I4": ("SYM_In25r", 1),
    }
    names.update({n: ("SYM_" + n, 1) for n in ("I2n3", "I2n3r", "I2n5", "I2n5r")})
    for mine, (theirs, order) in names.items():
        ref = getSymmetryMatrices(getattr(c, theirs), n=order)[:, :3, :3]
        g = symmetry_group(mine)
        assert len(g) == len(ref), mine
        dist = np.abs(g[:, None] - ref[None]).max(axis=(2, 3)).min(axis=1)
        assert dist.max() < 1e-4, mine


@pytest.mark.parametrize("bad", ["C0", "D1", "X5", "", "I5", "C1000"])
def test_unknown_symmetry_names_are_refused_with_the_accepted_forms(bad):
    with pytest.raises(InputError, match="symmetry"):
        check_symmetry(bad)
    with pytest.raises(InputError):
        EMParams(align=AlignParams(symmetry=bad)).check(10)


def test_symmetry_names_are_normalised():
    assert check_symmetry(" c7 ") == "C7"
    assert check_symmetry("d7") == "D7"
    assert check_symmetry("i") == "I222R"
    with pytest.raises(InputError, match="write it as 'C7'"):
        EMParams(align=AlignParams(symmetry="c7")).check(10)


@pytest.mark.parametrize("sym", ["C7", "D7", "O"])
def test_band_symmetrisation_equals_real_space_symmetrisation(sym):
    n = 32
    geom = band_geometry(n, 1, n // 2 - 1)
    v = phantom(n, seed=3)
    g = symmetry_group(sym)
    real = np.mean([transform_volume(v, r) for r in g], axis=0)
    sb = symmetrize_band(spectrum(v).reshape(-1)[geom.index], geom, g)

    def vol(values):
        half = np.zeros(n * n * (n // 2 + 1), complex)
        half[geom.index] = values
        return volume_from_spectrum(half.reshape(n, n, n // 2 + 1), n)

    assert correlation(vol(sb), vol(spectrum(real).reshape(-1)[geom.index])) > 0.995
    # a symmetric volume is left as it is
    assert (
        correlation(
            vol(symmetrize_band(spectrum(real).reshape(-1)[geom.index], geom, g)),
            vol(spectrum(real).reshape(-1)[geom.index]),
        )
        > 0.995
    )


def test_weight_symmetrisation_fills_wedges_and_keeps_the_band_edge():
    n = 32
    geom = band_geometry(n, 1, n // 2 - 1)
    w = wedge_mask(n, (-60, 60), half=True).reshape(-1)[geom.index].astype(float)
    filled = symmetrize_weights(w, geom, symmetry_group("O"))
    assert w.min() == 0.0 and filled.min() >= 0.5 - 1e-9  # O turns Z onto X and Y
    assert filled.max() <= 1.0 + 1e-9
    ones = symmetrize_weights(np.ones(len(geom.index)), geom, symmetry_group("D7"))
    np.testing.assert_allclose(ones, 1.0, atol=1e-9)  # no loss at the edge shell


def test_candidates_are_distinct_modulo_the_group():
    """Against a C7 average, the Euler-grid search finds each pose 7 times;
    with the group, one of them is kept and the others give way to distinct
    poses."""
    truth = _symmetric_phantom("C7")
    rot = random_rotations(1, np.random.default_rng(2))[0]
    part = transform_volume(truth, rot, np.array([1.0, -0.5, 0.0]))
    g = symmetry_group("C7")
    res = fast_align(part, truth, (-60, 60), AlignParams(symmetry="C7"))
    best = min(rotation_angle_deg(res.rotations[0], rot @ h) for h in g)
    assert best < 4.0
    for i in range(len(res)):
        for j in range(i):
            d = min(rotation_angle_deg(res.rotations[i], res.rotations[j] @ h) for h in g)
            assert d > 5.0  # two grid steps at the default lmax
    plain = fast_align(part, truth, (-60, 60), AlignParams())
    copies = sum(min(rotation_angle_deg(r, rot @ h) for h in g) < 4.0 for r in plain.rotations)
    assert copies >= 3  # without the group: several copies


def test_voronoi_cells_live_on_the_quotient():
    """A candidate equal to another modulo the group adds no volume: the
    two share the cell the first would have alone; without the group it
    takes a share from the unrelated candidate as well."""
    c3 = symmetry_group("C3")
    rx = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # 90 deg about X
    pair = np.stack([np.eye(3), rx])
    triple = np.stack([np.eye(3), c3[1], rx])  # c3[1] = I modulo C3
    w2 = voronoi_weights(pair, np.zeros((2, 3)), 6000, rng=0, group=c3)
    w3 = voronoi_weights(triple, np.zeros((3, 3)), 6000, rng=0, group=c3)
    assert w3[0] + w3[1] == pytest.approx(w2[0], abs=1e-12)
    assert w3[2] == pytest.approx(w2[1], abs=1e-12)
    plain = voronoi_weights(triple, np.zeros((3, 3)), 6000, rng=0)
    assert plain[2] < w3[2] - 0.1


@pytest.mark.parametrize("sym", ["C7", "D7"])
def test_symmetry_frame_of_a_turned_average_is_found(sym):
    truth = _symmetric_phantom(sym)
    q = random_rotations(1, np.random.default_rng(5))[0]
    moved = transform_volume(truth, q)  # symmetric under q g q^T
    frame, score = find_symmetry_frame(moved, symmetry_group(sym))
    assert score > 0.99
    assert symmetry_score(moved, symmetry_group(sym)) < score - 0.04  # turned away
    z = np.array([0.0, 0.0, 1.0])
    axis_err = np.degrees(np.arccos(min(1.0, abs(float((frame @ z) @ (q @ z))))))
    assert axis_err < 3.0
    if sym == "D7":  # the 2-fold axes too: frame = q g (g in the normaliser)
        turned = transform_volume(moved, frame.T)
        assert symmetry_score(turned, symmetry_group(sym)) > 0.99


def test_c7_with_references_beats_c1_and_is_symmetric():
    truth = _symmetric_phantom("C7")
    ds = simulate_subtomograms([truth], 24, 0.01, seed=1)
    from scipy import ndimage

    start = [ndimage.gaussian_filter(truth, 2.0)]
    r = {}
    for sym in ("C7", "C1"):
        res = classify(
            ds.volumes,
            ds.tilt_range,
            references=start,
            max_iter=4,
            seed=0,
            workers=2,
            params=EMParams(align=AlignParams(symmetry=sym, lmax=23)),
        )
        r[sym] = aligned_correlation(res.averages[0], truth)[0]
        if sym == "C7":
            assert symmetry_score(res.averages[0], symmetry_group("C7")) > 0.98
    assert r["C7"] > 0.92 and r["C7"] > r["C1"] + 0.02, r  # measured 0.939 / 0.901


def test_d7_reference_free_turns_into_its_frame_and_recovers_the_structure():
    truth = _symmetric_phantom("D7")
    ds = simulate_subtomograms([truth], 24, 0.02, seed=1)
    res = classify(
        ds.volumes,
        ds.tilt_range,
        max_iter=8,
        seed=0,
        workers=2,
        params=EMParams(align=AlignParams(symmetry="D7", lmax=23), c1_iterations=5),
    )
    avg = res.averages[0]
    assert symmetry_score(avg, symmetry_group("D7")) > 0.98  # standard axes
    assert aligned_correlation(avg, truth)[0] > 0.88  # measured 0.906
