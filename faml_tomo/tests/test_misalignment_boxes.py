"""Boxes around beads and tomogram decisions (known answers)."""

import numpy as np
import pytest

from faml_tomo.errors import InputError
from faml_tomo.misalignment import (
    ALIGNED,
    STRONG,
    UNCLASSIFIED,
    WEAK,
    decide,
    extract_boxes,
    target_sampling,
)


def bead_tomogram(shape, centre_xyz, diameter_px, noise=0.0, seed=0):
    """Dark sphere (value -1) on a zero background, [z, y, x]."""
    z, y, x = np.indices(shape, dtype=float)
    cx, cy, cz = centre_xyz
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
    vol = -np.clip(diameter_px / 2 - r + 0.5, 0, 1)  # antialiased edge
    vol += noise * np.random.default_rng(seed).normal(size=shape)
    return vol.astype(np.float32)


@pytest.mark.parametrize("sampling", [5.0, 8.0, 12.0, 18.0])
def test_bead_spans_16_voxels_centred(sampling):
    bead_A = 100.0
    d_px = bead_A / sampling
    shape = (64, 96, 96)
    centre = (47.3, 50.6, 31.8)
    tomo = bead_tomogram(shape, centre, d_px, noise=0.02)
    bs = extract_boxes(tomo, [centre], sampling, bead_A)
    assert bs.boxes.shape == (1, 32, 32, 32) and bs.boxes.dtype == np.float32
    assert bs.sampling == pytest.approx(target_sampling(bead_A)) == pytest.approx(6.25)
    box = bs.boxes[0]
    dark = box < box.min() / 2
    # sphere of diameter 16 voxels: 4/3 pi 8^3 = 2145 voxels
    assert dark.sum() == pytest.approx(4 / 3 * np.pi * 8**3, rel=0.12)
    com = np.array(np.nonzero(dark)).mean(axis=1)
    np.testing.assert_allclose(com, [16, 16, 16], atol=0.35)
    assert bs.outside_fraction[0] == 0


def test_background_is_normalised_and_bead_is_dark():
    tomo = bead_tomogram((48, 64, 64), (32, 32, 24), 10, noise=0.3, seed=3)
    box = extract_boxes(tomo, [(32, 32, 24)], 10.0, 100.0).boxes[0]
    g = np.indices(box.shape) - 16
    r = np.sqrt((g**2).sum(0))
    assert abs(box[r > 12].mean()) < 1e-4
    assert box[r > 12].std() == pytest.approx(1.0, abs=1e-4)
    assert box[r < 4].mean() < -1.5


def test_border_boxes_are_padded_and_kept_in_order():
    tomo = bead_tomogram((40, 64, 64), (3, 32, 20), 10, noise=0.1)
    coords = [(32, 32, 20), (3, 32, 20), (60, 61, 38)]
    bs = extract_boxes(tomo, coords, 10.0, 100.0)
    assert len(bs.boxes) == 3
    np.testing.assert_array_equal(bs.coords, np.asarray(coords, float))
    assert bs.outside_fraction[0] == 0
    assert 0.3 < bs.outside_fraction[1] < 0.7
    assert bs.outside_fraction[2] > bs.outside_fraction[1]
    assert np.all(np.isfinite(bs.boxes))


def test_memmap_tomogram(tmp_path):
    from faml_tomo.io import open_mrc, write_mrc

    tomo = bead_tomogram((40, 64, 64), (30, 34, 20), 10)
    write_mrc(tmp_path / "t.mrc", tomo, 10.0)
    with open_mrc(tmp_path / "t.mrc") as (data, vs):
        a = extract_boxes(data, [(30, 34, 20)], vs, 100.0).boxes
    np.testing.assert_allclose(a, extract_boxes(tomo, [(30, 34, 20)], 10.0, 100.0).boxes)


def test_bad_inputs():
    tomo = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(InputError, match="sampling rate must be > 0"):
        extract_boxes(tomo, [(4, 4, 4)], 0, 100)
    with pytest.raises(InputError, match="too small to see"):
        extract_boxes(tomo, [(4, 4, 4)], 100, 10)  # nm given as Å
    with pytest.raises(InputError, match="NaN"):
        extract_boxes(tomo, [(np.nan, 4, 4)], 10, 100)
    with pytest.raises(InputError, match="3D"):
        extract_boxes(tomo[0], [(4, 4, 4)], 10, 100)


def test_no_coordinates_gives_empty_boxset():
    bs = extract_boxes(np.zeros((8, 8, 8), np.float32), np.zeros((0, 3)), 10, 100)
    assert bs.boxes.shape == (0, 32, 32, 32)


def test_decisions():
    assert decide([0.1, 0.2, 0.9]).label == STRONG
    d = decide([0.9, 0.8, 0.7], [0.2, 0.3, 0.1], weak_threshold=0.45)
    assert d.label == WEAK and d.weak_score == pytest.approx(0.2)
    assert decide([0.9, 0.8], [0.6, 0.7], weak_threshold=0.45).label == ALIGNED
    # no weak threshold: strong vs the rest; the reference put aligned ones in strong
    d = decide([0.9, 0.95], [0.1, 0.1])
    assert d.label == ALIGNED and d.weak_score == pytest.approx(0.1)
    assert decide([]).label == UNCLASSIFIED and "no fiducial" in decide([]).message
    # votes: 2 of 3 beads vote misaligned -> strong even though the mean is > 0.5
    assert decide([0.45, 0.49, 1.0]).label == ALIGNED
    assert decide([0.45, 0.49, 1.0], criterion="votes").label == STRONG
    with pytest.raises(InputError, match="criterion"):
        decide([0.5], criterion="median")
    with pytest.raises(InputError, match=r"weak threshold must lie in \[0, 1\]"):
        decide([0.5], weak_threshold=45)
