"""Known-answer tests of the peak-high-contrast fiducial finder
(faml_tomo.fiducials): filters, 2D objects, 3D voting, mirror refinement,
filters, the whole pipeline on a synthetic tomogram, and bad input."""

import numpy as np
import pytest
from scipy import ndimage

from faml_tomo.errors import InputError
from faml_tomo.fiducials import (
    PeakHighContrastParams,
    box_inside,
    match_points,
    peak_high_contrast,
    peak_high_contrast_file,
)
from faml_tomo.fiducials.detect import SliceVoter, slice_objects
from faml_tomo.fiducials.filters import (
    bandpass_laplacian_filter,
    preprocessed_slices,
    raised_cosine_bandpass,
)
from faml_tomo.fiducials.phantom import bead_phantom
from faml_tomo.fiducials.refine import (
    centred_box,
    crop,
    equivalent_chi_threshold,
    mahalanobis_distances,
    merge_close,
    mirror_correlation,
    mirror_refine,
    radial_profile,
)
from faml_tomo.io import write_mrc


def ball(shape, centre_xyz, radius, value=-1.0):
    """Anti-aliased solid sphere (dark by default) on a zero background."""
    z, y, x = np.indices(shape, dtype=float)
    cx, cy, cz = centre_xyz
    r = np.sqrt((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2)
    return (value * np.clip(radius + 0.5 - r, 0, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def phantom():
    return bead_phantom(
        shape=(80, 160, 160), n_beads=20, n_proteins=1500, n_vesicles=3, slab=(0.3, 0.7), seed=3
    )


# ----------------------------------------------------------------- filters --
def test_bandpass_is_one_in_band_zero_far_and_half_mid_edge():
    d = 10.0
    f = np.array([0.0, 0.05 / 1.1 * 2, 1 / (1.1 * d), 0.1, 1 / (0.9 * d), 0.3, 0.5])
    g = raised_cosine_bandpass(f, d)
    assert g[0] == 0 and g[-1] == 0 and g[-2] == 0
    np.testing.assert_allclose(g[2:5], 1.0)
    # Middle of the low edge (width 0.5 f0 below f0 / 1.1).
    mid = 1 / (1.1 * d) - 0.25 / d
    np.testing.assert_allclose(raised_cosine_bandpass(np.array([mid]), d), 0.5, atol=1e-12)


def test_filtered_dark_disc_is_a_dark_outlier_at_its_centre():
    img = np.zeros((64, 64), np.float32)
    yy, xx = np.mgrid[:64, :64]
    img[(xx - 30) ** 2 + (yy - 34) ** 2 <= 25] = -1.0
    h = bandpass_laplacian_filter(img.shape, 10.0)
    out = np.fft.irfft2(np.fft.rfft2(img) * h, s=img.shape)
    assert np.unravel_index(np.argmin(out), out.shape) == (34, 30)
    assert out.min() < -3 * out.std()
    assert abs(out.mean()) < 1e-6  # no DC


class CountingVolume:
    """Array wrapper that records how many Z slices each read touches."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype = arr, arr.shape, arr.dtype
        self.max_slices = 0

    def __getitem__(self, key):
        sub = self.arr[key]
        n = sub.shape[0] if sub.ndim == 3 else 1
        self.max_slices = max(self.max_slices, n)
        return sub


def test_slices_match_a_whole_volume_computation_and_read_few_slices():
    rng = np.random.default_rng(0)
    vol = ndimage.gaussian_filter(rng.normal(size=(12, 32, 40)), 1).astype(np.float32)
    d = 6.0
    counted = CountingVolume(vol)
    got = np.array([s for _, s in preprocessed_slices(counted, d, z_average=5)])
    assert counted.max_slices == 1
    # Reference: truncated 5-slice moving average, then the 2D filter.
    avg = np.array([vol[max(0, z - 2) : z + 3].mean(axis=0) for z in range(12)])
    h = bandpass_laplacian_filter((32, 40), d)
    ref = np.fft.irfft2(np.fft.rfft2(avg) * h, s=(32, 40))
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    sub = np.array([s for _, s in preprocessed_slices(vol, d, [3, 4, 9], z_average=5)])
    np.testing.assert_allclose(sub, got[[3, 4, 9]], atol=1e-5 * np.abs(ref).max())


# ------------------------------------------------------------- 2D objects --
def test_slice_objects_keep_round_reject_elongated_and_small():
    img = np.zeros((80, 80), np.float32)
    yy, xx = np.mgrid[:80, :80]
    img[(xx - 20.3) ** 2 + (yy - 20.6) ** 2 <= 16] = -5  # disc r=4
    img[((xx - 55) / 10) ** 2 + ((yy - 20) / 2.5) ** 2 <= 1] = -5  # ellipse 4:1
    img[60:62, 60:62] = -5  # 4 px speck
    objs = slice_objects(img, -1.0, min_area=8, min_circularity=0.75)
    assert len(objs) == 1
    assert abs(objs.x[0] - 20.3) < 0.3 and abs(objs.y[0] - 20.6) < 0.3
    assert objs.labels[20, 20] == 1 and objs.labels[20, 55] == 0


def test_fused_bead_and_membrane_are_split_at_a_deeper_level():
    img = np.zeros((60, 60), np.float32)
    yy, xx = np.mgrid[:60, :60]
    img[(xx - 30) ** 2 + (yy - 30) ** 2 <= 16] = -10  # dark bead
    img[28:32, 5:27] = -2  # faint line touching it
    assert len(slice_objects(img, -1.0, 8, 0.75, split_levels=())) == 0
    objs = slice_objects(img, -1.0, 8, 0.75)
    assert len(objs) == 1
    assert abs(objs.x[0] - 30) < 0.5 and abs(objs.y[0] - 30) < 0.5


def test_voting_links_chains_and_drops_isolated_objects():
    voter = SliceVoter()
    for z in range(10):
        img = np.zeros((40, 40), np.float32)
        yy, xx = np.mgrid[:40, :40]
        if 2 <= z <= 6:  # chain of 5
            img[(xx - 10) ** 2 + (yy - 12) ** 2 <= 9] = -3
        if z == 8:  # lone object
            img[(xx - 30) ** 2 + (yy - 30) ** 2 <= 9] = -3
        voter.add(z, slice_objects(img, -1, 4, 0.75))
    assert voter.n_objects == 6
    cands = voter.candidates(min_slices=2, min_voxels=1)
    assert len(cands) == 1
    np.testing.assert_allclose(cands.xyz[0], [10, 12, 4], atol=1e-6)
    assert cands.n_slices[0] == 5 and cands.voxels[0] == 5 * 29
    assert len(voter.candidates(min_slices=2, min_voxels=1000)) == 0


# ------------------------------------------------------ refinement, filters --
def test_mirror_refinement_finds_a_subvoxel_centre_in_noise():
    rng = np.random.default_rng(1)
    true = np.array([20.3, 18.6, 21.4])
    vol = ball((40, 40, 40), true, 4.0, -3.0) + rng.normal(0, 0.3, (40, 40, 40))
    got = mirror_refine(vol.astype(np.float32), true + [2.0, -1.5, 1.0], 8.0)
    assert np.linalg.norm(got - true) < 0.3


def test_mirror_correlation_of_symmetric_and_antisymmetric_boxes():
    sym = ball((21, 21, 21), (10, 10, 10), 4)
    assert mirror_correlation(sym) == pytest.approx(1.0)
    anti = np.zeros((21, 21, 21))
    anti[10, 10, 3], anti[10, 10, 17] = 1, -1
    assert mirror_correlation(anti) == pytest.approx(-1.0)
    assert mirror_correlation(np.ones((5, 5, 5))) == 0.0


def test_crop_pads_outside_and_centred_box_interpolates():
    vol = np.arange(10**3, dtype=np.float32).reshape(10, 10, 10)
    c = crop(vol, (0, 0, 0), 5)
    assert c.shape == (5, 5, 5) and c[2, 2, 2] == vol[0, 0, 0]
    assert c[0, 0, 0] == pytest.approx(vol[:3, :3, :3].mean())
    b = centred_box(vol, (4.5, 4.0, 4.0), 4)  # linear along x
    assert b.shape == (5, 5, 5) and b[2, 2, 2] == pytest.approx(vol[4, 4, 4] + 0.5)


def test_radial_profile_of_a_disc():
    box = ball((21, 21, 21), (10, 10, 10), 4, -2.0)
    prof = radial_profile(box, 1, scale=2.0)
    assert prof.shape == (11,)
    assert prof[0] < prof[6] and prof[0] == pytest.approx(prof[1], abs=0.05)
    assert np.all(prof[6:] == pytest.approx(prof[-1]))


def test_merge_averages_the_same_object_and_drops_weaker_neighbours():
    xyz = np.array([[10, 10, 10], [10.4, 10, 10], [20, 10, 10], [40, 40, 40.0]])
    merged, kept = merge_close(xyz, 15.0, scores=[0.9, 0.8, 0.5, 0.7], same_object=2.0)
    assert list(kept) == [0, 3]
    np.testing.assert_allclose(merged[0], [10.2, 10, 10])
    np.testing.assert_allclose(merged[1], [40, 40, 40])


def test_chi_threshold_matches_one_dimensional_sd():
    assert equivalent_chi_threshold(2.0, 1) == pytest.approx(2.0)
    assert equivalent_chi_threshold(2.0, 2) == pytest.approx(2.486, abs=1e-3)


def test_mahalanobis_flags_faint_outliers_not_dark_ones():
    rng = np.random.default_rng(2)
    shape = -np.exp(-np.arange(8) / 2.0)
    beads = shape * rng.normal(5, 0.3, (30, 1)) + rng.normal(0, 0.05, (30, 8))
    faint = shape * 1.0 + rng.normal(0, 0.05, (10, 8))  # protein-like
    darker = shape * 9.0  # a big bead
    prof = np.vstack([beads, faint, darker])
    core = prof[:, :2].mean(axis=1)
    dist, brighter = mahalanobis_distances(prof, core)
    limit = equivalent_chi_threshold(2, 2)
    removed = (dist > limit) & brighter
    assert removed[30:40].all()
    assert removed[:30].sum() <= 2 and not removed[40]


def test_match_points_counts_and_rms():
    truth = np.array([[0, 0, 0], [10, 0, 0], [20, 0, 0.0]])
    found = np.array([[0.5, 0, 0], [10, 0.5, 0], [50, 0, 0.0]])
    m = match_points(found, truth, 2.0)
    assert (m["tp"], m["fp"], m["fn"]) == (2, 1, 1)
    assert m["rms"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    # A match to a bead outside the valid region is neither TP nor FP.
    m = match_points(found, truth, 2.0, valid=[True, False, True])
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    assert m["recall"] == pytest.approx(0.5) and m["precision"] == pytest.approx(0.5)


def test_box_inside_border_rule():
    inside = box_inside(
        np.array([[16, 16, 16], [15, 16, 16], [48, 48, 48], [49, 20, 20]]), (64, 64, 64), 32
    )
    assert list(inside) == [True, False, True, False]


# --------------------------------------------------------------- pipeline --
def test_pipeline_on_synthetic_tomogram(phantom):
    p = PeakHighContrastParams()
    res = peak_high_contrast(phantom.volume, phantom.sampling_rate, p)
    valid = box_inside(phantom.beads, phantom.volume.shape, p.box_size)
    m = match_points(res.coordinates, phantom.beads, 5.0, valid)
    assert valid.sum() >= 12
    assert m["recall"] >= 0.9 and m["precision"] >= 0.98 and m["rms"] <= 1.0, m
    assert res.coordinates.shape == (len(res), 3) and res.scores.shape == (len(res),)
    assert np.all(res.scores >= p.mirror_correlation_threshold)
    assert not res.relaxed_mode_used
    assert np.all(box_inside(res.coordinates, phantom.volume.shape, p.box_size))
    # Deterministic.
    again = peak_high_contrast(phantom.volume, phantom.sampling_rate, p)
    np.testing.assert_array_equal(res.coordinates, again.coordinates)


def test_memory_mapped_file_gives_the_same_result(phantom, tmp_path):
    path = write_mrc(tmp_path / "tomo.mrc", phantom.volume, phantom.sampling_rate)
    a = peak_high_contrast(phantom.volume, phantom.sampling_rate)
    b = peak_high_contrast_file(path)  # sampling rate from the header
    np.testing.assert_allclose(a.coordinates, b.coordinates, atol=1e-4)


def test_pipeline_reads_the_volume_slice_by_slice(phantom):
    counted = CountingVolume(phantom.volume)
    peak_high_contrast(counted, phantom.sampling_rate)
    # Slices one at a time, and small boxes around candidates.
    assert counted.max_slices <= 2 * 10 + 3 < phantom.volume.shape[0]


def test_tomogram_without_beads_gives_empty_result_and_warning():
    ph = bead_phantom(shape=(48, 128, 128), n_beads=0, n_proteins=900, n_vesicles=3, seed=5)
    res = peak_high_contrast(ph.volume, ph.sampling_rate)
    assert len(res) == 0 and res.coordinates.shape == (0, 3)
    assert any("no fiducials" in w for w in res.warnings)
    flat = peak_high_contrast(np.zeros((40, 64, 64), np.float32), 10.0)
    assert len(flat) == 0 and any("no contrast" in w for w in flat.warnings)


def test_relaxed_mode_keeps_unfiltered_coordinates(phantom):
    strict = PeakHighContrastParams(mirror_correlation_threshold=1.0)
    res = peak_high_contrast(phantom.volume, phantom.sampling_rate, strict)
    assert res.relaxed_mode_used and len(res) >= 10
    assert any("relaxed mode" in w for w in res.warnings)
    strict.relaxed_mode = False
    strict.smeared_search = False  # it would find these round beads
    res = peak_high_contrast(phantom.volume, phantom.sampling_rate, strict)
    assert not res.relaxed_mode_used and len(res) == 0


@pytest.mark.parametrize(
    "sampling_rate, match",
    [
        (0.0, "sampling rate"),
        (-5.0, "sampling rate"),
        (float("nan"), "sampling rate"),
        (40.0, "under the minimum of 3"),
        (2.0, "larger than the box"),
    ],
)
def test_bad_sampling_rate_is_refused(sampling_rate, match):
    with pytest.raises(InputError, match=match):
        peak_high_contrast(np.zeros((40, 64, 64), np.float32), sampling_rate)


def test_bad_data_and_sizes_are_refused():
    vol = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    vol[20, 30, 30] = np.nan
    with pytest.raises(InputError, match="NaN"):
        peak_high_contrast(vol, 10.0)
    with pytest.raises(InputError, match="3D"):
        peak_high_contrast(np.zeros((64, 64), np.float32), 10.0)
    with pytest.raises(InputError, match="real numbers"):
        peak_high_contrast(np.zeros((40, 64, 64), np.complex64), 10.0)
    with pytest.raises(InputError, match="larger than the tomogram"):
        peak_high_contrast(np.zeros((20, 64, 64), np.float32), 10.0)
    with pytest.raises(InputError, match="SD threshold"):
        peak_high_contrast(
            np.zeros((40, 64, 64), np.float32), 10.0, PeakHighContrastParams(sd_threshold=-1)
        )


def test_params_problems_lists_every_issue():
    p = PeakHighContrastParams(box_size=2, sampling_slices=0, min_circularity=3)
    problems = p.problems()
    assert len(problems) == 3
    assert PeakHighContrastParams().problems((64, 128, 128), 15.0) == []
    assert PeakHighContrastParams().bead_diameter_px(20.0) == pytest.approx(5.0)


def test_smeared_beads_are_found_by_searching_larger_beads():
    """Beads smeared into arcs (as by a misaligned tilt series): no voxel is
    an extreme outlier at the nominal bead size any more; the search for
    1.5x larger beads finds them, and only them."""
    from faml_tomo.fiducials import box_inside, match_points
    from faml_tomo.fiducials.phantom import bead_phantom
    from faml_tomo.fiducials.pipeline import find_beads

    ph = bead_phantom(
        shape=(64, 160, 160),
        n_beads=12,
        n_proteins=600,
        slab=(0.3, 0.7),
        seed=5,
        sampling_rate=15.0,
    )
    arc = np.linspace(-1.2, 1.2, 9)
    smeared = np.mean(
        [
            np.roll(ph.volume, (int(round(3 * np.cos(a))), int(round(6 * np.sin(a)))), axis=(0, 1))
            for a in arc
        ],
        axis=0,
    )
    assert len(find_beads(smeared, 15.0, quiet=True)) == 0
    assert (
        len(
            peak_high_contrast(
                smeared, 15.0, PeakHighContrastParams(smeared_scales=(), smeared_search=False)
            )
        )
        == 0
    )
    r = peak_high_contrast(smeared, 15.0, PeakHighContrastParams(smeared_search=False))
    assert r.stats["bead_scale"] == 1.5 and "look smeared" in r.warnings[0]
    m = match_points(r.coordinates, ph.beads, 100 / 15, box_inside(ph.beads, ph.volume.shape, 32))
    assert m["tp"] >= 3 and m["fp"] == 0, m
    # the lobe-and-arc search alone finds them too
    r = peak_high_contrast(smeared, 15.0, PeakHighContrastParams(smeared_scales=()))
    assert r.stats["search"] == "smeared" and "smeared-bead search" in r.warnings[0]
    m = match_points(r.coordinates, ph.beads, 100 / 15, box_inside(ph.beads, ph.volume.shape, 32))
    assert m["tp"] >= 6 and m["fp"] == 0, m
    with pytest.raises(InputError, match="smeared-bead scales"):
        PeakHighContrastParams(smeared_scales=(0.5,)).check()
