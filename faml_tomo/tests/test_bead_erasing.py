"""Bead erasing (issue 18): after erasing, no voxel within 1.5 bead radii of a
true bead differs from its local background by more than noise, the rest of
the tomogram is unchanged, and the command line writes the same volumes."""

import numpy as np
import pytest

from faml_tomo.fiducials import PeakHighContrastParams, peak_high_contrast
from faml_tomo.fiducials.erase import erase_beads
from faml_tomo.fiducials.phantom import bead_phantom


def _background_deviation(before, after, mask, centre, radius):
    """Largest |v - median| / SD over the erased ball of one bead, the mean's
    offset and the SD ratio, against the bead's background shell."""
    z, y, x = np.indices(before.shape)
    d = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2)
    ball = d <= 1.5 * radius
    shell = (d > 1.5 * radius + 1) & (d <= 1.5 * radius + 1 + max(2, radius)) & (mask == 0)
    level = np.median(before[shell])
    sd = 1.4826 * np.median(np.abs(before[shell] - level))
    return (
        np.abs(after[ball] - level).max() / sd,
        abs(after[ball].mean() - level) / sd,
        after[ball].std() / sd,
        np.abs(before[ball] - level).max() / sd,
    )


@pytest.mark.parametrize("source", ["truth", "found"])
def test_erased_beads_look_like_their_background(source):
    ph = bead_phantom(seed=3, n_beads=15)
    radius = ph.bead_diameter_nm * 10 / ph.sampling_rate / 2
    if source == "truth":
        xyz = ph.beads
    else:
        found = peak_high_contrast(
            ph.volume, ph.sampling_rate, PeakHighContrastParams(bead_diameter_nm=10.0)
        )
        xyz = found.coordinates
        assert len(xyz) >= 0.9 * len(ph.beads)
    out = erase_beads(ph.volume, xyz, radius, seed=1)  # the default margin: 2 radii
    np.testing.assert_array_equal(out.volume[out.mask == 0], ph.volume[out.mask == 0])
    near = [b for b in ph.beads if np.min(np.linalg.norm(xyz - b, axis=1)) < radius]
    assert len(near) >= 0.9 * len(ph.beads)
    for b in near:
        worst, offset, sd_ratio, before = _background_deviation(
            ph.volume, out.volume, out.mask, b, radius
        )
        assert before > 6  # the bead was there
        assert worst < 5 and offset < 0.5 and 0.6 < sd_ratio < 1.4, (b, worst, offset, sd_ratio)
    assert np.all(np.isfinite(out.background[:, 0]))


def test_bad_inputs_are_refused():
    vol = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="3D"):
        erase_beads(vol[0], np.zeros((1, 3)), 2.0)
    with pytest.raises(ValueError, match="radius"):
        erase_beads(vol, np.zeros((1, 3)), 0.0)
    with pytest.raises(ValueError, match="at least one bead radius"):
        erase_beads(vol, np.zeros((1, 3)), 2.0, margin=0.5)
    out = erase_beads(vol, np.array([[100.0, 100.0, 100.0]]), 2.0)  # outside: nothing to do
    assert out.mask.sum() == 0 and np.isnan(out.background).all()


def test_cli_writes_the_erased_tomogram_and_the_mask(tmp_path, capsys):
    from faml_tomo.cli import main
    from faml_tomo.fiducials.results import read_tomogram
    from faml_tomo.io import read_mrc, write_mrc

    ph = bead_phantom(seed=4, n_beads=12)
    write_mrc(tmp_path / "TS_01.mrc", ph.volume, ph.sampling_rate)
    out = tmp_path / "out"
    argv = ["peak-high-contrast", str(tmp_path / "TS_01.mrc"), "--bead-size-nm", "10"]
    assert main(argv + ["--erase-beads", "--out", str(out)]) == 0
    erased, voxel = read_mrc(out / "TS_01_erased.mrc")
    mask, _ = read_mrc(out / "TS_01_beads.mrc")
    assert voxel == pytest.approx(ph.sampling_rate)
    rec = read_tomogram(out, "TS_01")
    radius = 10 * 10 / ph.sampling_rate / 2
    expected = erase_beads(ph.volume, rec.coordinates, radius * rec.bead_scale, 2.0, seed=0)
    np.testing.assert_array_equal(erased, expected.volume)
    np.testing.assert_array_equal(mask, expected.mask)
    assert main(argv + ["--erase-margin", "0.5", "--out", str(tmp_path / "o2")]) == 2
    assert "--erase-margin must be at least 1" in capsys.readouterr().err


def test_crowded_beads_fall_back_to_the_tomogram_level():
    """A lattice of beads too close for any background shell: each is filled
    at the tomogram's own median and SD (from a subsample), nothing else."""
    rng = np.random.default_rng(5)
    vol = rng.normal(size=(48, 48, 48)).astype(np.float32)
    grid = np.arange(6, 44, 6, dtype=float)
    xyz = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), axis=-1).reshape(-1, 3)
    for x, y, z in xyz.astype(int):
        vol[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = -20.0  # dark beads
    out = erase_beads(vol, xyz, 3.0, margin=2.0, seed=2)  # erased balls fill the lattice
    level, sd = (
        np.median(vol[::4, ::4, ::4]),
        1.4826 * np.median(np.abs(vol[::4, ::4, ::4] - np.median(vol[::4, ::4, ::4]))),
    )
    filled = out.volume[out.mask > 0]
    fallback = np.isclose(out.background[:, 0], level) & np.isclose(out.background[:, 1], sd)
    assert fallback.sum() >= 1  # central beads: no background shell of their own
    assert np.abs(filled - level).max() <= 6 * sd and abs(filled.mean() - level) < 0.2 * sd
    assert out.volume.min() > -20.0  # every bead gone
    np.testing.assert_array_equal(out.volume[out.mask == 0], vol[out.mask == 0])
