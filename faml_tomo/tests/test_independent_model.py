"""Known-answer tests of the independent validation forward model
(faml_tomo.simulation.independent).

Small volumes (about 96 x 96 x 48 voxels, 41 tilts) keep the file under a
minute on one core.
"""

import numpy as np
import pytest
from scipy import ndimage

from faml_tomo.errors import InputError
from faml_tomo.misalignment.dataset import bead_errors
from faml_tomo.simulation.gold import TABLE_PATH
from faml_tomo.simulation.independent import (
    FourierSliceProjector,
    IndependentParams,
    Optics,
    TiltImager,
    accumulated_exposure,
    acquisition_order,
    apply_misalignment,
    bead_wave_profile,
    bin_fourier,
    bin_mean,
    critical_exposure,
    electron_wavelength,
    fourier_upsample,
    interaction_constant,
    make_optics,
    preprocess_series,
    reconstruct,
    simulate,
    tilt_angles,
)

SMALL = dict(
    nx=96,
    ny=96,
    nz=48,
    pixel_size_A=10.0,
    thickness_A=320.0,
    ice_gradient=0.0,
    n_vesicles=0,
    tilt_step_deg=3.0,
)


def _dark_centroid(tomo, approx, radius, iterations=4):
    """Centroid (x, y, z) of the density darker than the local background
    within ``radius`` voxels of ``approx``."""
    p = np.asarray(approx, float).copy()
    nz, ny, nx = tomo.shape
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx]
    for _ in range(iterations):
        d2 = (x - p[0]) ** 2 + (y - p[1]) ** 2 + (z - p[2]) ** 2
        ring = (d2 > (2 * radius) ** 2) & (d2 < (3 * radius) ** 2)
        w = np.clip(np.median(tomo[ring]) - tomo, 0, None) * (d2 <= radius**2)
        p = np.array([(w * x).sum(), (w * y).sum(), (w * z).sum()]) / w.sum()
    return p


def _sphere_mask(shape, centre_xyz, radius):
    z, y, x = np.ogrid[0 : shape[0], 0 : shape[1], 0 : shape[2]]
    return (
        (x - centre_xyz[0]) ** 2 + (y - centre_xyz[1]) ** 2 + (z - centre_xyz[2]) ** 2
    ) <= radius**2


def _ball(shape, centre_xyz, radius, ss=4):
    """Supersampled (anti-aliased) uniform ball."""
    nz, ny, nx = shape
    z, y, x = np.mgrid[0:nz, 0:ny, 0:nx].astype(float)
    vol = np.zeros(shape)
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    for oz in offs:
        for oy in offs:
            for ox in offs:
                vol += (
                    (x + ox - centre_xyz[0]) ** 2
                    + (y + oy - centre_xyz[1]) ** 2
                    + (z + oz - centre_xyz[2]) ** 2
                ) <= radius**2
    return vol / ss**3


@pytest.fixture(scope="module")
def bead_run():
    """One specimen with beads, reconstructed aligned and with a constant X
    offset of 4 px in every image."""
    p = IndependentParams(
        **SMALL,
        n_beads=4,
        bead_diameter_A=100.0,
        protein_fraction=0.05,
        dose_e_per_A2=160.0,
        defocus_um=3.0,
        bead_surface_fraction=0.0,
    )
    return simulate(p, {"aligned": (0.0, 0.0, 0.0), "x4": (40.0, 0.0, 0.0)}, seed=11)


# --------------------------------------------------------------- constants


def test_wavelength_sigma_and_critical_exposure():
    assert electron_wavelength(300.0) == pytest.approx(0.019687, abs=2e-6)
    assert electron_wavelength(200.0) == pytest.approx(0.025079, abs=2e-6)
    assert interaction_constant(300.0) == pytest.approx(6.526e-4, rel=2e-3)
    # Grant & Grigorieff: 0.245 k^-1.665 + 2.81 at 300 kV; 0.8x at 200 kV
    assert critical_exposure(0.1) == pytest.approx(14.11, rel=1e-2)
    assert critical_exposure(0.1, 200.0) == pytest.approx(0.8 * 14.11, rel=1e-2)
    assert np.isinf(critical_exposure(0.0))


def test_tilt_scheme_dose_symmetric():
    angles = tilt_angles(-6.0, 6.0, 3.0)
    np.testing.assert_allclose(angles, [-6, -3, 0, 3, 6])
    order = acquisition_order(angles, "dose-symmetric", 0.0, group=2)
    np.testing.assert_array_equal(angles[order], [0, 3, 6, -3, -6])
    dose, exposure = accumulated_exposure(order, 100.0)
    np.testing.assert_allclose(dose, 20.0)
    # mid-image accumulated exposure, in angle order
    np.testing.assert_allclose(exposure, [90, 70, 10, 30, 50])
    asym = tilt_angles(-48.0, 60.0, 3.0)
    assert asym[0] == -48 and asym[-1] == 60 and len(asym) == 37
    order = acquisition_order(asym, "dose-symmetric", 0.0, 2)
    assert sorted(order) == list(range(37)) and asym[order[-1]] == 60


# --------------------------------------------------------------- geometry


def test_projector_matches_analytic_ball():
    shape = (40, 36, 80)
    centre = (45.0, 17.0, 17.0)
    radius = 12.0
    proj = FourierSliceProjector(_ball(shape, centre, radius), oversampling=2.0)
    vv, uu = np.mgrid[0 : shape[1], 0 : shape[2]]
    for angle in (0.0, 30.0, 55.0):
        th = np.radians(angle)
        u0 = (centre[0] - 40) * np.cos(th) + (centre[2] - 20) * np.sin(th) + 40
        rho2 = (uu - u0) ** 2 + (vv - centre[1]) ** 2
        exact = 2 * np.sqrt(np.clip(radius**2 - rho2, 0, None))
        img = proj.project(angle)
        inner = rho2 < (0.85 * radius) ** 2
        assert np.abs(img - exact)[inner].max() < 0.02 * 2 * radius, angle
        assert img.sum() == pytest.approx(exact.sum(), rel=0.01)


def test_full_range_reconstruction_recovers_ball():
    shape = (40, 24, 64)
    vol = _ball(shape, (30.0, 12.0, 22.0), 9.0)
    proj = FourierSliceProjector(vol)
    angles = np.arange(-90.0, 90.0, 1.5)
    stack = np.stack([proj.project(a) for a in angles])
    rec = reconstruct(stack, angles, shape[0], "ramp")
    assert rec.shape == shape and rec.dtype == np.float32
    assert rec[vol > 0.999].mean() == pytest.approx(1.0, abs=0.03)
    assert abs(rec[vol == 0].mean()) < 0.01


def test_misalignment_warp_moves_features_as_specified():
    ny, nx = 64, 80
    vv, uu = np.mgrid[0:ny, 0:nx]
    u, v = 52.3, 20.6
    img = np.exp(-((uu - u) ** 2 + (vv - v) ** 2) / (2 * 2.0**2))
    sx, sy, rot = 3.5, -2.25, 7.0
    out = apply_misalignment(img, sx, sy, rot)
    c, s = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    cx, cy = nx // 2, ny // 2
    u2 = cx + c * (u - cx) - s * (v - cy) + sx
    v2 = cy + s * (u - cx) + c * (v - cy) + sy
    w = out / out.sum()
    assert (w * uu).sum() == pytest.approx(u2, abs=0.05)
    assert (w * vv).sum() == pytest.approx(v2, abs=0.05)


def test_resampling_keeps_positions():
    vv, uu = np.mgrid[0:32, 0:48]
    blob = np.exp(-((uu - 20.3) ** 2 + (vv - 11.7) ** 2) / 18.0)
    up = fourier_upsample(blob, 3)
    # fine pixel centres at 3 j + 1
    assert up[3 * 11 + 1, 3 * 20 + 1] == pytest.approx(blob[11, 20], abs=1e-4)
    np.testing.assert_allclose(bin_fourier(up, 3), blob, atol=1e-4)
    assert bin_mean(up, 3).mean() == pytest.approx(blob.mean(), rel=1e-4)


# --------------------------------------------------------------- beads


def test_aligned_bead_centres_within_half_pixel(bead_run):
    tomo = bead_run.tomograms["aligned"]
    assert tomo.shape == (48, 96, 96) and tomo.dtype == np.float32
    assert len(bead_run.beads) == 4
    radius = 0.5 * bead_run.bead_diameter_A / bead_run.pixel_size_A
    for b in bead_run.beads:
        c = _dark_centroid(tomo, b, 1.4 * radius)
        assert np.linalg.norm(c - b) < 0.5, (b, c)
        # gold is dark: the bead's sphere is well below the tomogram median
        # (a dark shell with a less dark core, as its flat-amplitude
        # multislice exit wave reconstructs)
        assert tomo[_sphere_mask(tomo.shape, b, radius)].mean() < np.median(tomo) - 3 * tomo.std()


def test_misaligned_bead_appears_where_bead_errors_says(bead_run):
    aligned, shifted = bead_run.tomograms["aligned"], bead_run.tomograms["x4"]
    n = len(bead_run.angles)
    sx, sy, rot = bead_run.misalignments_px["x4"]
    np.testing.assert_allclose(sx, 4.0)
    disp, resid = bead_errors(bead_run.beads, bead_run.angles, sx, sy, rot, aligned.shape)
    assert disp.shape == (len(bead_run.beads), 3) and n == 41
    assert disp[0, 0] > 4.0 and np.all(resid > 0.5)
    radius = 0.5 * bead_run.bead_diameter_A / bead_run.pixel_size_A
    for b, d in zip(bead_run.beads, disp):
        c = _dark_centroid(shifted, b + d, 1.4 * radius)
        assert np.linalg.norm(c - (b + d)) < 1.0, (b, d, c)
        assert np.linalg.norm(c - b) > 3.0
        # smeared: not just the aligned bead moved rigidly by d
        moved = ndimage.shift(aligned, d[::-1], order=3, mode="nearest")
        box = tuple(slice(int(round(q)) - 7, int(round(q)) + 8) for q in (b + d)[::-1])
        assert np.corrcoef(moved[box].ravel(), shifted[box].ravel())[0, 1] < 0.9


@pytest.mark.skipif(
    not TABLE_PATH.exists(),
    reason="gold table (faml_tomo/simulation/data/gold_table.npz) not computed yet",
)
def test_gold_bead_dark_disc_matches_multislice_table():
    px, n = 7.0, 160
    im = TiltImager((n, n), px, Optics(), 1, 2.5)
    ref = np.load(TABLE_PATH)
    vv, uu = np.mgrid[0:n, 0:n]
    r = np.hypot(uu - n // 2, vv - n // 2) * px
    for diameter in (100.0, 150.0):
        prof = bead_wave_profile(diameter, 300.0, im.band_limit)
        wave = im.exit_wave(
            np.zeros((n, n), np.float32),
            0.0,
            None,
            bead_uv=np.array([[n // 2, n // 2]]),
            bead_profiles=[prof],
        )
        inten = im.intensity(wave, 3.0)
        rel = inten / np.median(inten)
        # a dark disc (with Fresnel structure: darkest at the centre and rim)
        disc = rel[r < 0.4 * diameter].mean()
        assert 0.4 <= disc <= 0.8, (diameter, disc)
        assert 0.25 <= rel[n // 2, n // 2] <= 0.8
        assert rel[(r > diameter) & (r < 3 * diameter)].mean() == pytest.approx(1.0, abs=0.05)
        if diameter != 100.0:
            continue
        # radial profile against the abTEM reference image (7 Å/px, 3 µm)
        table = ref["ref_profile"][
            list(ref["diameters"]).index(diameter),
            list(ref["voltages"]).index(300.0),
            list(ref["ref_defocus"]).index(3.0),
            list(ref["ref_pixel"]).index(px),
        ]
        radii = np.arange(len(table)) * px / 2
        ok = np.isfinite(table) & (radii < diameter)
        mine = np.array([rel[np.abs(r - q) < px / 4].mean() for q in radii[ok]])
        assert np.sqrt(np.mean((mine - table[ok]) ** 2)) < 0.04


# --------------------------------------------------------------- CTF


def test_ctf_sign_protein_dark_and_phase_flip_helps():
    p = IndependentParams(
        **SMALL,
        n_beads=0,
        protein_fraction=0.15,
        defocus_um=6.0,
        radiation_damage=False,
        dose_weighting=False,
        detector="ideal",
        ctf_correction="none",
    )
    run = simulate(p, seed=5, keep_volume=True, noise=False)
    truth = run.volume
    inside = truth > 0.5 * p.protein_potential_V
    optics = make_optics(p)
    corr = {}
    for method in ("none", "phase-flip", "wiener"):
        stack = preprocess_series(
            run.tilt_series,
            run.defocus_um,
            run.exposure_e_per_A2,
            optics,
            p.pixel_size_A,
            None,
            method,
            1.0,
            False,
        )
        tomo = reconstruct(stack, run.angles, p.shape[0])
        assert tomo[inside].mean() < tomo[~inside].mean(), method  # dark protein
        corr[method] = np.corrcoef(tomo.ravel(), truth.ravel())[0, 1]
    np.testing.assert_allclose(
        run.tomograms["aligned"],
        reconstruct(
            preprocess_series(
                run.tilt_series,
                run.defocus_um,
                run.exposure_e_per_A2,
                optics,
                p.pixel_size_A,
                None,
                "none",
                1.0,
                False,
            ),
            run.angles,
            p.shape[0],
        ),
        atol=1e-6,
    )
    # dark: anti-correlated with the potential; phase flip restores the
    # flipped bands (Wiener with SNR 1 also damps the low frequencies)
    assert corr["none"] < -0.3 and corr["wiener"] < -0.3
    assert corr["phase-flip"] < corr["none"] - 0.03


# --------------------------------------------------------------- API


def test_same_seed_same_output_different_seed_different_noise():
    p = IndependentParams(
        nx=48,
        ny=48,
        nz=32,
        pixel_size_A=12.0,
        thickness_A=250.0,
        n_beads=2,
        n_vesicles=0,
        tilt_min_deg=-30,
        tilt_max_deg=30,
        tilt_step_deg=6.0,
        protein_fraction=0.05,
    )
    a = simulate(p, seed=7)
    b = simulate(p, seed=7)
    c = simulate(p, seed=8)
    np.testing.assert_array_equal(a.tilt_series, b.tilt_series)
    np.testing.assert_array_equal(a.tomograms["aligned"], b.tomograms["aligned"])
    np.testing.assert_array_equal(a.beads, b.beads)
    assert not np.array_equal(a.tilt_series, c.tilt_series)
    assert np.abs(a.tilt_series - c.tilt_series).mean() > 0.01


@pytest.mark.parametrize(
    "field, value",
    [
        ("defocus_um", -1.0),
        ("recon_filter", "fbp"),
        ("nx", 95),
        ("bead_diameter_A", 300.0),
        ("ctf_correction", "flip"),
        ("voltage_kv", 120.0),
        ("tilt_step_deg", 0.0),
        ("n_structures", 3),
        ("dose_e_per_A2", float("nan")),
        ("tomogram_binning", 0),
    ],
)
def test_bad_parameters_raise_input_error_naming_them(field, value):
    p = IndependentParams(**{field: value})
    assert any(field in msg for msg in p.problems())
    with pytest.raises(InputError, match=field):
        p.validate()
    with pytest.raises(InputError, match=field):
        simulate(p)


def test_bad_misalignment_raises_input_error():
    p = IndependentParams(
        nx=32, ny=32, nz=24, thickness_A=200.0, n_beads=0, tilt_min_deg=-9, tilt_max_deg=9
    )
    with pytest.raises(InputError, match="misalignment"):
        simulate(p, {"weak": (np.zeros(3), 0.0, 0.0)})
    assert IndependentParams().validate().shape == (188, 256, 256)


# --------------------------------------------------------------- physics


def test_ice_and_carbon_attenuate_with_path_length():
    base = dict(
        nx=64,
        ny=64,
        pixel_size_A=10.0,
        thickness_A=1500.0,
        n_beads=0,
        protein_fraction=0.0,
        n_vesicles=0,
        detector="ideal",
        tilt_step_deg=30.0,
    )
    run = simulate(IndependentParams(**base, ice_gradient=0.0), noise=False)
    np.testing.assert_allclose(run.angles, [-60, -30, 0, 30, 60])
    mean = run.tilt_series.mean(axis=(1, 2))
    assert mean[2] == pytest.approx(np.exp(-1500 / 3500), rel=0.01)
    assert mean[4] == pytest.approx(np.exp(-1500 / 3500 / 0.5), rel=0.01)
    run = simulate(IndependentParams(**base, ice_gradient=0.4), noise=False)
    img = run.tilt_series[2]
    for u in (8, 56):
        t = 1500 * (1 + 0.4 * (u - 32) / 64)
        assert img[:, u].mean() == pytest.approx(np.exp(-t / 3500), rel=0.01)
    run = simulate(IndependentParams(**base, ice_gradient=0.0, carbon_coverage=0.3), noise=False)
    img = run.tilt_series[2]
    # beyond the edge (x > 0.7 nx, tilted by at most 20 degrees) carbon replaces ice
    inelastic = np.exp(-300 * (1 / 1800 - 1 / 3500))
    assert img[24:40, 60:].mean() < inelastic * img[24:40, :16].mean()


def test_detector_noise_is_poisson_for_ideal_and_excess_for_k3():
    from faml_tomo.simulation.independent import detect

    flat = np.full((256, 256), 0.8)
    ideal = detect(flat, 50.0, "ideal", np.random.default_rng(0))
    assert ideal.mean() == pytest.approx(0.8, rel=0.01)
    assert ideal.var() == pytest.approx(0.8 / 50.0, rel=0.05)
    k3 = detect(flat, 50.0, "k3", np.random.default_rng(0))
    low = np.abs(np.fft.rfft2(k3 - k3.mean())[1:20, 1:20]) ** 2
    low_ideal = np.abs(np.fft.rfft2(ideal - ideal.mean())[1:20, 1:20]) ** 2
    assert low.mean() / low_ideal.mean() == pytest.approx(1 / 0.85, rel=0.1)
    assert detect(flat, 50.0, "k3", None, noise=False).mean() == pytest.approx(0.8, rel=1e-4)


def test_pasted_density_maps(tmp_path):
    from faml_tomo.io.mrc import write_mrc
    from faml_tomo.simulation.independent import SlabGeometry, build_specimen, place_beads

    z, y, x = np.mgrid[0:12, 0:12, 0:12]
    blob = 100.0 * (((x - 6) / 5.0) ** 2 + ((y - 6) / 3.0) ** 2 + ((z - 6) / 4.0) ** 2 < 1)
    write_mrc(tmp_path / "blob.mrc", blob.astype(np.float32), 10.0)
    p = IndependentParams(
        nx=64,
        ny=64,
        nz=40,
        pixel_size_A=20.0,
        thickness_A=600.0,
        protein_fraction=0.0,
        n_vesicles=0,
        n_beads=0,
        structures_dir=str(tmp_path),
        n_structures=3,
    )
    assert p.problems() == []
    rng = np.random.default_rng(0)
    slab = SlabGeometry(p.shape, p.pixel_size_A, p.thickness_A)
    vol = build_specimen(p, slab, place_beads(slab, 0, 100.0, rng), rng)
    dense = vol > 0.5 * p.protein_potential_V
    # each blob: 4/3 pi 50 x 30 x 40 Å^3 = 31 voxels of 20 Å
    assert 40 < dense.sum() < 110
    assert vol[dense].mean() == pytest.approx(p.protein_potential_V, rel=0.3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no .mrc"):
        build_specimen(
            IndependentParams(**{**p.to_dict(), "structures_dir": str(empty)}),
            slab,
            place_beads(slab, 0, 100.0, rng),
            rng,
        )


def test_filters_and_sirt_limit():
    from faml_tomo.simulation.independent import reconstruction_filter

    f = np.fft.rfftfreq(512)
    ramp = reconstruction_filter(512, "ramp")
    assert ramp[-1] == pytest.approx(0.5, abs=1e-3)
    np.testing.assert_allclose(ramp[10:], f[10:], rtol=0.02)
    assert reconstruction_filter(512, "hann")[-1] == pytest.approx(0.0, abs=1e-6)
    sirt5 = reconstruction_filter(512, "sirt", 5)
    sirt_many = reconstruction_filter(512, "sirt", 100000)
    np.testing.assert_allclose(sirt_many[1:], f[1:], rtol=1e-3)
    # few iterations: ramp at the lowest frequency, flat at 5 / 512 above
    assert sirt5[1] == pytest.approx(f[1])
    assert sirt5[-1] == pytest.approx(5 / 512, rel=0.05)


def test_radiation_damage_fades_late_images():
    p = IndependentParams(
        nx=64,
        ny=64,
        nz=32,
        pixel_size_A=8.0,
        thickness_A=200.0,
        n_beads=0,
        n_vesicles=0,
        protein_fraction=0.2,
        tilt_min_deg=-6,
        tilt_max_deg=6,
        tilt_step_deg=6.0,
        dose_e_per_A2=300.0,
        detector="ideal",
    )
    fresh = simulate(
        IndependentParams(**{**p.to_dict(), "radiation_damage": False}), seed=2, noise=False
    ).tilt_series
    aged = simulate(p, seed=2, noise=False).tilt_series

    # 0 deg was recorded first (least damage), -6 deg last (250 e/Å²)
    def hf_power(img):
        spec = np.abs(np.fft.rfft2(img / img.mean())) ** 2
        return spec[8:, 8:24].sum()

    assert hf_power(aged[1]) > 0.5 * hf_power(fresh[1])
    assert hf_power(aged[0]) < 0.5 * hf_power(fresh[0])


def test_bead_placement_touching_pairs_and_min_distance():
    from faml_tomo.simulation.independent import SlabGeometry, place_beads

    slab = SlabGeometry((60, 128, 128), 10.0, 500.0)
    beads = place_beads(
        slab,
        12,
        100.0,
        np.random.default_rng(4),
        diameter_sd=0.1,
        surface_fraction=0.5,
        cluster_fraction=0.5,
        min_distance_A=250.0,
    )
    assert len(beads) == 12
    assert np.all((beads.diameters_A >= 50) & (beads.diameters_A <= 200))
    p = beads.positions
    d = np.linalg.norm(p[:, None] - p[None], axis=2) * 10.0
    contact = 0.5 * (beads.diameters_A[:, None] + beads.diameters_A[None])
    np.fill_diagonal(d, np.inf)
    touching = np.isclose(d, contact, atol=1.0)
    same = beads.cluster[:, None] == beads.cluster[None]
    assert touching.any() and np.all(same[touching])  # some pairs touch
    assert len(np.unique(beads.cluster)) < 12
    assert np.all(d > contact - 0.1)  # none overlap
    assert np.all(same | (d >= 250.0 - 1e-6))  # clusters keep apart
    lo, hi = slab.bounds(p[:, 0])
    radius = 0.5 * beads.diameters_A / 10.0
    assert np.all((p[:, 2] > lo - radius - 1e-6) & (p[:, 2] < hi + radius + 1e-6))


def test_binned_200kv_series_keeps_bead_positions_and_sirt_smooths(bead_run):
    runs = {}
    for method in ("mean", "fourier"):
        p = IndependentParams(
            **SMALL,
            n_beads=3,
            protein_fraction=0.05,
            voltage_kv=200.0,
            dose_e_per_A2=160.0,
            bead_surface_fraction=0.0,
            tomogram_binning=2,
            binning_method=method,
        )
        runs[method] = simulate(p, seed=21)
    assert not np.array_equal(
        runs["mean"].tomograms["aligned"], runs["fourier"].tomograms["aligned"]
    )
    for run in runs.values():
        for b in run.beads:
            c = _dark_centroid(run.tomograms["aligned"], b, 7.0)
            assert np.linalg.norm(c - b) < 0.5, (b, c)
    run = runs["fourier"]
    stack = preprocess_series(
        run.tilt_series, run.defocus_um, run.exposure_e_per_A2, make_optics(run.params), 10.0
    )
    ramp = reconstruct(stack, run.angles, 48, "ramp")
    sirt = reconstruct(stack, run.angles, 48, "sirt", 10)
    np.testing.assert_allclose(ramp, run.tomograms["aligned"], atol=1e-6)
    hf = [
        np.abs(np.fft.rfft(t, axis=2)[..., 30:]).mean() / np.abs(t.mean(axis=(0, 1))).std()
        for t in (ramp, sirt)
    ]
    assert hf[1] < 0.5 * hf[0]
