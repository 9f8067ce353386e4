"""Known-answer tests of the simulator (faml_tomo.simulation).

Small boxes and fields of view keep the file fast (a few seconds per test on
one core)."""

import numpy as np
import pytest

from faml_tomo.errors import InputError
from faml_tomo.geometry import euler_to_matrix, transform_volume
from faml_tomo.io.mrc import write_mrc
from faml_tomo.simulation import (
    AcquisitionParams,
    CTFParams,
    MisalignmentModel,
    SlabParams,
    SubtomogramParams,
    bead_centroids,
    bead_distortion,
    bead_spread,
    binned_coordinates,
    ctf,
    detector_mtf,
    load_structure,
    make_phantom,
    make_slab,
    misalignment_preset,
    ncc,
    pair_snr,
    radial_frequency,
    reconstruct_local,
    reconstruct_wbp,
    simulate_subtomograms,
    simulate_tilt_series,
    wedge_fraction,
    wedge_mask,
)
from faml_tomo.simulation.optics import electron_wavelength
from faml_tomo.simulation.subtomograms import acquisition_filter, apply_acquisition
from faml_tomo.tests.helpers import requires_shared, structure_path

# A small slab: 41 tilts of 128 x 128 px at 15 Å/px render in ~0.2 s.
SMALL_SLAB = dict(
    nx=128,
    ny=128,
    nz=48,
    pixel_size=15.0,
    slab_thickness=600.0,
    n_beads=6,
    bead_margin=20,
    protein_fraction=0.1,
    n_vesicles=1,
    vesicle_radius=(150.0, 250.0),
)


def _inverse(vol, rot, shift):
    """Undo particle(x) = ref(R^T (x - c - t) + c)."""
    return transform_volume(vol, rot.T, -rot.T @ shift)


# ----------------------------------------------------------------- optics


@pytest.mark.parametrize("tmin,tmax", [(-60, 60), (-50, 70), (-40, 40), (-20, 50), (-90, 90)])
def test_wedge_fraction_matches_tilt_range(tmin, tmax):
    shape = (32, 32, 32)
    m = wedge_mask(shape, tmin, tmax)
    sphere = radial_frequency(shape) <= 0.5
    assert m[sphere].mean() == pytest.approx(wedge_fraction(tmin, tmax), abs=0.01)
    if (tmin, tmax) == (-60, 60):
        assert m[sphere].mean() == pytest.approx(2 / 3, abs=0.01)
    # rfftn layout: the first nx // 2 + 1 columns of the fftn layout (the Nyquist
    # column is +0.5 in one and -0.5 in the other)
    half = wedge_mask(shape, tmin, tmax, rfft=True)
    assert half.shape == (32, 32, 17)
    np.testing.assert_array_equal(half[..., :16], m[..., :16])


def test_wedge_mask_geometry():
    m = wedge_mask((16, 16, 16), -30, 60, dtype=bool)
    # kx axis (zero tilt) observed, kz axis (beam) missing, ky axis always observed
    assert m[0, 0, 3] and not m[3, 0, 0] and m[0, 5, 0]
    # direction atan2(kz, kx) = 45 deg observed, -45 deg (= 135) missing
    assert m[2, 0, 2] and not m[-2, 0, 2]
    assert wedge_mask((8, 8, 8), -90, 90).all()


@pytest.mark.parametrize("tmin,tmax", [(-95, 60), (-60, 91), (30, -30), (np.nan, 60)])
def test_wedge_mask_rejects_bad_range(tmin, tmax):
    with pytest.raises(InputError, match="tilt"):
        wedge_mask((8, 8, 8), tmin, tmax)


def test_ctf_known_values():
    p = CTFParams(voltage=300, cs=2.7, defocus=-6.0, amplitude_contrast=0.07)
    assert electron_wavelength(300) == pytest.approx(0.019687, rel=1e-4)
    assert ctf(0.0, p) == pytest.approx(-0.07)  # protein dark (underfocus)
    k = np.linspace(0, 0.04, 40001)
    c = ctf(k, p)
    first_zero = k[np.argmax(np.sign(c[1:]) != np.sign(c[:-1]))]
    # chi = pi lam df k^2 (Cs negligible here) reaches pi - atan(A/sqrt(1-A^2))
    lam, df = electron_wavelength(300), 6e4
    chi0 = np.pi - np.arctan(0.07 / np.sqrt(1 - 0.07**2))
    assert first_zero == pytest.approx(np.sqrt(chi0 / (np.pi * lam * df)), rel=0.01)
    assert detector_mtf(0.5) == pytest.approx(2 / np.pi)
    assert detector_mtf(0.0) == 1.0


def test_ctf_params_validation():
    for kw in ({"voltage": 0}, {"cs": -1}, {"amplitude_contrast": 1.0}, {"defocus": np.inf}):
        with pytest.raises(InputError):
            CTFParams(**kw).validate()


# --------------------------------------------------------------- phantoms


def test_phantoms_shapes_and_similarity():
    vols = {n: make_phantom(n, 32, 12.0) for n in ("ring7", "ring7_cap", "twolobe", "lshape")}
    for v in vols.values():
        assert v.shape == (32, 32, 32) and v.dtype == np.float32
        assert v.min() >= 0 and 0.9 < v.max() <= 1.0
        assert v[0].max() < 1e-3 and v[:, :, -1].max() < 1e-3  # fits in the box
    similar = ncc(vols["ring7"], vols["ring7_cap"])
    assert similar > 0.85
    for other in ("twolobe", "lshape"):
        assert ncc(vols["ring7"], vols[other]) < similar - 0.3
    assert ncc(vols["twolobe"], vols["lshape"]) < 0.6


def test_phantom_larger_than_box_is_rejected():
    with pytest.raises(InputError, match="box of 10 px is smaller than the structure"):
        make_phantom("ring7", 10, 20.0, diameter=240.0)
    with pytest.raises(InputError, match="unknown phantom"):
        make_phantom("cube", 32, 20.0)


def test_load_structure_resamples(tmp_path):
    fine = make_phantom("twolobe", 48, 10.0)
    path = write_mrc(tmp_path / "twolobe.mrc", fine, 10.0)
    coarse = load_structure(path, 20.0, 24)
    assert coarse.shape == (24, 24, 24)
    assert ncc(coarse, make_phantom("twolobe", 24, 20.0)) > 0.95
    padded = load_structure(path, 10.0, 64)  # same pixel size, bigger box
    assert ncc(padded[8:56, 8:56, 8:56], fine) > 0.999
    with pytest.raises(InputError, match="box of 10 px is smaller than the structure"):
        load_structure(path, 20.0, 10)


@requires_shared
def test_load_reference_map():
    vol = load_structure(structure_path("4v4r"), 20.0, 32)
    assert vol.shape == (32, 32, 32) and vol.min() >= 0
    with pytest.raises(InputError, match="smaller than the structure"):
        load_structure(structure_path("4v4r"), 20.0, 12)


# ----------------------------------------------------------- subtomograms


def test_subtomogram_snr_is_as_requested():
    ref = make_phantom("ring7", 32, 20.0)
    params = SubtomogramParams(snr=0.1)
    sset = simulate_subtomograms({"ring7": ref}, 16, params, rng=3, keep_clean=True)
    # Per box, exactly: var(signal) / var(noise)
    for vol, clean in zip(sset.volumes, sset.clean):
        noise = vol.astype(np.float64) - clean
        assert clean.var() / noise.var() == pytest.approx(0.1, rel=1e-3)
    np.testing.assert_allclose(sset.truth.snr, 0.1, rtol=1e-3)
    # Independently: a second noise realisation of the same particles, SNR
    # estimated from the correlation of the pair (FAML paper's estimator).
    rng = np.random.default_rng(99)
    filt = acquisition_filter((32,) * 3, params)
    wedge = wedge_mask((32,) * 3, -60, 60, rfft=True)
    est = []
    for i in range(len(sset)):
        moved = transform_volume(ref, sset.truth.rotations[i], sset.truth.shifts[i])
        again, _ = apply_acquisition(moved, filt, wedge, 0.1, rng)
        est.append(pair_snr(sset.volumes[i], again))
    assert np.mean(est) == pytest.approx(0.1, rel=0.10)


def test_subtomogram_rotated_back_correlates_with_structure():
    ref = make_phantom("twolobe", 32, 20.0)
    sset = simulate_subtomograms(
        {"twolobe": ref}, 6, SubtomogramParams(snr=1.0, max_shift=3), rng=5, keep_clean=True
    )
    t = sset.truth
    good, wrong, raw = [], [], []
    for i in range(len(sset)):
        back = _inverse(sset.volumes[i], t.rotations[i], t.shifts[i])
        good.append(ncc(back, -ref))  # cryo-ET contrast: protein dark
        j = (i + 1) % len(sset)
        wrong.append(ncc(_inverse(sset.volumes[i], t.rotations[j], t.shifts[j]), -ref))
        raw.append(ncc(sset.volumes[i], -ref))
        clean_back = _inverse(sset.clean[i], t.rotations[i], t.shifts[i])
        assert ncc(clean_back, -ref) > 0.6
    assert min(good) > 0.4
    assert np.mean(good) > np.mean(wrong) + 0.2
    assert np.mean(good) > np.mean(raw) + 0.2
    # Truth bookkeeping: Euler angles (RELION ZYZ) reproduce the matrices
    np.testing.assert_allclose(euler_to_matrix(t.eulers), t.rotations, atol=1e-9)
    assert np.all(np.linalg.norm(t.shifts, axis=1) <= 3 + 1e-9)
    np.testing.assert_allclose(t.shifts_angstrom, -t.shifts * 20.0)  # RELION origins


def test_subtomogram_options():
    ref = make_phantom("ring7", 24, 20.0)
    p = SubtomogramParams(box=24, snr=np.inf, orientations="y", ctf=None, max_shift=0)
    sset = simulate_subtomograms({"a": ref}, 4, p, rng=0)
    np.testing.assert_allclose(sset.truth.rotations[:, 1, 1], 1.0, atol=1e-12)
    np.testing.assert_allclose(sset.truth.shifts, 0.0)
    inv = simulate_subtomograms(
        {"a": ref},
        4,
        SubtomogramParams(box=24, snr=np.inf, orientations="y", ctf=None, max_shift=0, invert=True),
        rng=0,
    )
    np.testing.assert_allclose(inv.volumes, -sset.volumes, atol=1e-6)
    # Two classes with given counts
    two = simulate_subtomograms(
        {"a": ref, "b": make_phantom("lshape", 24, 20.0)}, [3, 5], SubtomogramParams(box=24), rng=0
    )
    assert np.bincount(two.truth.class_index).tolist() == [3, 5]
    assert list(two.truth.class_number) == list(two.truth.class_index + 1)


def test_subtomograms_same_seed_identical_different_seed_differs():
    ref = make_phantom("ring7", 24, 20.0)
    p = SubtomogramParams(box=24, defocus_spread=0.5)
    a = simulate_subtomograms({"r": ref}, 3, p, rng=11)
    b = simulate_subtomograms({"r": ref}, 3, p, rng=11)
    c = simulate_subtomograms({"r": ref}, 3, p, rng=12)
    np.testing.assert_array_equal(a.volumes, b.volumes)
    np.testing.assert_array_equal(a.truth.rotations, b.truth.rotations)
    np.testing.assert_array_equal(a.truth.defocus, b.truth.defocus)
    assert not np.allclose(a.volumes, c.volumes)
    assert not np.allclose(a.truth.rotations, c.truth.rotations)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"snr": 0}, "snr must be > 0"),
        ({"snr": -1}, "snr must be > 0"),
        ({"snr": np.nan}, "snr"),
        ({"tilt_min": -100}, r"\[-90, 90\]"),
        ({"tilt_max": 95}, r"\[-90, 90\]"),
        ({"tilt_min": 40, "tilt_max": 10}, "tilt_min"),
        ({"max_shift": -1}, "max_shift"),
        ({"max_shift": 20}, "max_shift"),
        ({"orientations": "z"}, "orientations"),
        ({"box": 5}, "box"),
        ({"pixel_size": 0}, "pixel_size"),
        ({"defocus_spread": -1}, "defocus_spread"),
    ],
)
def test_subtomogram_bad_parameters(kw, match):
    with pytest.raises(InputError, match=match):
        SubtomogramParams(**kw).validate()


def test_subtomogram_bad_inputs():
    ref = make_phantom("ring7", 24, 20.0)
    with pytest.raises(InputError, match="expected a 32\\^3 box"):
        simulate_subtomograms({"r": ref}, 2, SubtomogramParams(box=32))
    with pytest.raises(InputError, match="positive integer"):
        simulate_subtomograms({"r": ref}, 0, SubtomogramParams(box=24))
    with pytest.raises(InputError, match="counts given"):
        simulate_subtomograms({"r": ref}, [1, 2], SubtomogramParams(box=24))


# ------------------------------------------------------------ tilt series


def test_slab_beads_are_separated_and_inside():
    p = SlabParams(**{**SMALL_SLAB, "n_beads": 12})
    slab = make_slab(p, rng=0)
    b = slab.beads
    assert b.shape == (12, 3)
    d = np.linalg.norm(b[:, None] - b[None], axis=-1) + np.eye(12) * 1e9
    assert d.min() >= 3 * p.bead_diameter / p.pixel_size - 1e-9
    r = slab.bead_radius_px
    half = p.slab_thickness / p.pixel_size / 2
    assert np.all(np.abs(b[:, 2] - p.nz // 2) <= half - r + 1e-9)
    assert np.all((b[:, :2] >= 20) & (b[:, :2] <= 127 - 20))
    surf = make_slab(SlabParams(**{**SMALL_SLAB, "bead_layout": "surfaces"}), rng=0)
    np.testing.assert_allclose(np.abs(surf.beads[:, 2] - p.nz // 2), half - r)
    with pytest.raises(InputError, match="cannot place 400 beads"):
        make_slab(SlabParams(**{**SMALL_SLAB, "n_beads": 400}), rng=0)


def test_aligned_series_reconstructs_beads_within_one_pixel():
    ts = simulate_tilt_series(SlabParams(**SMALL_SLAB), AcquisitionParams(), rng=7)
    assert ts.images.shape == (41, 128, 128)
    tomo = reconstruct_wbp(ts.images, ts.angles, 48)
    assert tomo.shape == (48, 128, 128)
    r = ts.slab.bead_radius_px
    found = bead_centroids(tomo, np.round(ts.beads), 1.5 * r)
    err = np.linalg.norm(found - ts.beads, axis=1)
    assert err.max() < 1.0, err
    # Beads are the darkest objects: the mean over each bead is far below the
    # tomogram mean (multislice gold projects as a flat dark disc, so a bead
    # reconstructs as a dark sphere with a less dark core)
    g = np.indices(tomo.shape)
    for b in ts.beads:
        d = np.sqrt((g[2] - b[0]) ** 2 + (g[1] - b[1]) ** 2 + (g[0] - b[2]) ** 2)
        assert tomo[d <= r].mean() < tomo.mean() - 8 * tomo.std()
    # Binned reconstruction: same beads at binned_coordinates, within 1 binned voxel
    tomo2 = reconstruct_wbp(ts.images, ts.angles, 48, binning=2)
    assert tomo2.shape == (24, 64, 64)
    truth2 = binned_coordinates(ts.beads, 2)
    found2 = bead_centroids(tomo2, np.round(truth2), 1.5 * r / 2 + 1)
    assert np.linalg.norm(found2 - truth2, axis=1).max() < 1.0


def test_local_reconstruction_matches_whole_tomogram():
    ts = simulate_tilt_series(SlabParams(**SMALL_SLAB), AcquisitionParams(tilt_step=6), rng=1)
    tomo = reconstruct_wbp(ts.images, ts.angles, 48)
    c = np.array([70, 60, 25])
    local = reconstruct_local(ts.images, ts.angles, c, 16, 48)
    np.testing.assert_allclose(local, tomo[17:33, 52:68, 62:78], atol=1e-5)
    coarse = reconstruct_local(ts.images, ts.angles, ts.beads[0], 16, 48, scale=2.0)
    assert np.unravel_index(np.argmin(coarse), coarse.shape) in {
        (z, y, x) for z in (7, 8, 9) for y in (7, 8, 9) for x in (7, 8, 9)
    }


def test_reconstruction_geometry_matches_wedge_mask():
    """Projector, back-projector and wedge_mask agree on the tilt direction."""
    acq = AcquisitionParams(tilt_min=-20, tilt_max=60, tilt_step=4, noise=False)
    p = SlabParams(**{**SMALL_SLAB, "n_beads": 10, "bead_margin": 12})
    ts = simulate_tilt_series(p, acq, rng=2)
    tomo = reconstruct_wbp(ts.images, ts.angles, 48)
    power = np.abs(np.fft.fftn(tomo - tomo.mean())) ** 2
    inside = wedge_mask(tomo.shape, -20, 60, dtype=bool)
    mirrored = wedge_mask(tomo.shape, -60, 20, dtype=bool)
    # (a little power leaks across the wedge edges: the box truncates the
    # back-projected rays along z)
    assert power[inside].sum() / power.sum() > 0.9
    only_in, only_mirror = inside & ~mirrored, mirrored & ~inside
    assert power[only_in].mean() > 10 * power[only_mirror].mean()


def _bead_boxes(ts, box=24):
    return [reconstruct_local(ts.images, ts.angles, c, box, ts.slab.params.nz) for c in ts.beads]


@pytest.mark.parametrize(
    "kind,magnitudes",
    [("bananas", (8, 20, 40, 80)), ("birds", (15, 40, 80, 160)), ("twisters", (0.5, 1, 2, 4))],
)
def test_misalignment_distorts_beads_monotonically(kind, magnitudes):
    p = SlabParams(**{**SMALL_SLAB, "nx": 160, "ny": 160})
    # rendered at the detector pixel: the geometry, not the gold physics, is tested
    acq = AcquisitionParams(render_sampling=p.pixel_size)
    n = acq.angles().size
    aligned = simulate_tilt_series(p, acq, rng=3)
    ref = _bead_boxes(aligned)
    same = simulate_tilt_series(p, acq, misalignment_preset(kind, 0, n), rng=3)
    np.testing.assert_array_equal(same.images, aligned.images)
    scores = []
    for m in magnitudes:
        ts = simulate_tilt_series(p, acq, misalignment_preset(kind, m, n), rng=3)
        boxes = _bead_boxes(ts)
        scores.append(bead_distortion(boxes, ref, None, 24).mean())
    assert scores[0] > 0.02
    assert np.all(np.diff(scores) > 0.02), scores
    # The reference-free spread of the dark bead density grows too (at the
    # largest magnitude, by more than a voxel)
    assert bead_spread(boxes).mean() > bead_spread(ref).mean() + 1.0


def test_misalignment_models():
    n = 41
    dx, dy, da = misalignment_preset("bananas", 80, n).evaluate(n)
    np.testing.assert_allclose(dx, 80.0)  # the paper's constant X offset
    assert not dy.any() and not da.any()
    dx, dy, da = misalignment_preset("birds", 27, n).evaluate(n)
    np.testing.assert_allclose(dy, np.linspace(-27, 27, n))
    dx, dy, da = misalignment_preset("twisters", 2, n).evaluate(n)
    np.testing.assert_allclose(da, 2.0)
    p = (1.0, 0.5, 3.0, 2.0, 4.0, 5.0, 0.0)
    dx, _, _ = MisalignmentModel(x=p).evaluate(n)
    i = np.arange(n)
    expect = (
        1 + 0.5 * i + 3 * np.abs(np.sin((i + 2) / n * np.pi)) + 4 * np.sin((i + 5) / n * 2 * np.pi)
    )
    np.testing.assert_allclose(dx, expect)
    noisy = MisalignmentModel(angle=(0, 0, 0, 0, 0, 0, 1.5))
    a1, a2 = noisy.evaluate(n, 1)[2], noisy.evaluate(n, 1)[2]
    np.testing.assert_array_equal(a1, a2)
    assert 1.0 < a1.std() < 2.0
    with pytest.raises(InputError, match="7 finite parameters"):
        MisalignmentModel(x=(1, 2)).evaluate(n)
    with pytest.raises(InputError, match="kind"):
        misalignment_preset("snakes", 1, n)


def test_tilt_images_have_dose_dependent_poisson_noise():
    p = SlabParams(**{**SMALL_SLAB, "n_beads": 2})
    kw = dict(tilt_step=30, order="sequential", exposure_filter=False)
    clean = simulate_tilt_series(p, AcquisitionParams(noise=False, **kw), rng=4)
    noisy = simulate_tilt_series(p, AcquisitionParams(**kw), rng=4)
    high = simulate_tilt_series(p, AcquisitionParams(dose=480, **kw), rng=4)
    for i in range(len(clean.angles)):
        resid = noisy.images[i] - clean.images[i]
        assert resid.var() == pytest.approx(clean.images[i].mean(), rel=0.05)
    rel = (noisy.images - clean.images).std() / clean.images.mean()
    np.testing.assert_allclose(
        simulate_tilt_series(p, AcquisitionParams(dose=480, noise=False, **kw), rng=4).images,
        4 * clean.images,
        rtol=1e-5,
    )
    rel_high = (high.images - 4 * clean.images).std() / (4 * clean.images.mean())
    assert rel_high == pytest.approx(rel / 2, rel=0.05)
    # thicker path at high tilt: fewer electrons (inelastic loss)
    mean = clean.images.mean(axis=(1, 2))
    assert mean[0] < mean[2] and mean[-1] < mean[2]
    np.testing.assert_allclose(clean.pre_exposure, np.arange(5) * 120 / 5)


def test_tilt_series_same_seed_identical_different_seed_differs():
    p = SlabParams(**{**SMALL_SLAB, "nx": 64, "ny": 64, "n_beads": 2, "bead_margin": 10})
    acq = AcquisitionParams(tilt_step=20)
    model = MisalignmentModel(x=(0, 0, 0, 0, 0, 0, 5.0))
    a = simulate_tilt_series(p, acq, model, rng=21)
    b = simulate_tilt_series(p, acq, model, rng=21)
    c = simulate_tilt_series(p, acq, model, rng=22)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.beads, b.beads)
    np.testing.assert_array_equal(a.shift_x, b.shift_x)
    assert not np.array_equal(a.images, c.images)
    assert not np.allclose(a.beads, c.beads)
    assert not np.allclose(a.shift_x, c.shift_x)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"bead_diameter": 700.0}, "larger than the slab thickness"),
        ({"slab_thickness": 900.0}, "exceeds the tomogram thickness"),
        ({"bead_diameter": 0.0}, "bead_diameter must be > 0"),
        ({"n_beads": -1}, "n_beads"),
        ({"protein_fraction": 0.9}, "protein_fraction"),
        ({"nx": 4}, "nx"),
        ({"bead_layout": "random"}, "bead_layout"),
        ({"pixel_size": -1.0}, "pixel_size"),
    ],
)
def test_slab_bad_parameters(kw, match):
    with pytest.raises(InputError, match=match):
        SlabParams(**{**SMALL_SLAB, **kw}).validate()


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"tilt_min": -91}, r"\[-90, 90\]"),
        ({"tilt_max": 120}, r"\[-90, 90\]"),
        ({"tilt_step": 0}, "tilt_step"),
        ({"dose": 0}, "dose"),
        ({"tilt_min": 0, "tilt_max": 2}, "fewer than 2 images"),
        ({"order": "random"}, "order"),
    ],
)
def test_acquisition_bad_parameters(kw, match):
    with pytest.raises(InputError, match=match):
        AcquisitionParams(**kw).validate()


def test_reconstruction_bad_parameters():
    imgs = np.zeros((3, 16, 16), np.float32)
    with pytest.raises(InputError, match="3 images"):
        reconstruct_wbp(imgs, [0, 1], 8)
    with pytest.raises(InputError, match="binning"):
        reconstruct_wbp(imgs, [-1, 0, 1], 8, binning=0)
    with pytest.raises(InputError, match=r"\[-90, 90\]"):
        reconstruct_wbp(imgs, [-100, 0, 1], 8)
    with pytest.raises(InputError, match="filter"):
        reconstruct_wbp(imgs, [-1, 0, 1], 8, filter="wiener")
    with pytest.raises(InputError, match="scale"):
        reconstruct_local(imgs, [-1, 0, 1], (8, 8, 4), 4, 8, scale=0)
