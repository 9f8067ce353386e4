"""Known-answer tests of the smeared-bead search (beads a misaligned tilt
series split into lobes and arcs)."""

import numpy as np
import pytest
from scipy import fft as sfft
from scipy import ndimage

from faml_tomo.fiducials import PeakHighContrastParams, box_inside, match_points
from faml_tomo.fiducials.phantom import bead_phantom
from faml_tomo.fiducials.pipeline import peak_high_contrast
from faml_tomo.fiducials.smeared import dog_transfer, find_smeared_beads


def test_dog_transfer_removes_the_background_and_keeps_a_spot_dark():
    h = dog_transfer((64, 64), 2.0)
    assert h[0, 0] == pytest.approx(0.0)
    img = np.full((64, 64), 5.0, np.float32)
    img[32, 32] -= 10.0
    out = sfft.irfft2(sfft.rfft2(img) * h, s=img.shape)
    assert abs(out[5, 5]) < 1e-4  # a constant background gives 0
    assert out[32, 32] == pytest.approx(out.min()) and out[32, 32] < 0


def _lobed(shape, centres, d, gap, rng):
    """Beads each split into two thin dark lobes ``gap`` voxels apart along
    X (as birds misalignment leaves them), in noise with dense blobs."""
    nz, ny, nx = shape
    vol = rng.normal(0, 1, shape).astype(np.float32)
    blobs = np.zeros(shape, np.float32)
    for c in rng.uniform([0, 0, 0], [nx, ny, nz], (400, 3)):
        blobs[tuple(np.clip(np.rint(c[::-1]).astype(int), 0, np.array(shape) - 1))] = 1
    sigma = d / 4  # protein-sized, peak 2 SD dark
    vol -= 2 * (2 * np.pi) ** 1.5 * sigma**3 * ndimage.gaussian_filter(blobs, sigma)
    zz, yy, xx = np.mgrid[:nz, :ny, :nx].astype(np.float32)
    for c in centres:
        for side in (-1, 1):
            lobe = (
                ((xx - c[0] - side * gap / 2) / (0.2 * d)) ** 2
                + ((yy - c[1]) / (0.35 * d)) ** 2
                + ((zz - c[2]) / (0.45 * d)) ** 2
            )
            vol -= 15.0 * np.exp(-lobe)
    return vol


def test_split_beads_are_found_once_each_at_their_centre():
    rng = np.random.default_rng(3)
    d = 10.0  # 10 nm beads at 10 Å/px
    shape = (60, 160, 160)
    g = np.arange(35.0, 130.0, 30.0)  # 4 x 4 grid, jittered
    centres = np.column_stack([np.repeat(g, 4), np.tile(g, 4), np.full(16, 30.0)])
    centres += rng.uniform(-5, 5, centres.shape)
    vol = _lobed(shape, centres, d, gap=0.8 * d, rng=rng)
    params = PeakHighContrastParams(bead_diameter_nm=10.0)
    r = find_smeared_beads(vol, 10.0, params)
    inside = box_inside(centres, shape, 32)
    m = match_points(r.coordinates, centres, 0.3 * d, inside)
    assert m["fn"] == 0 and m["fp"] == 0, m  # one per bead, centred


def test_no_gold_gives_no_smeared_beads():
    ph = bead_phantom(shape=(48, 128, 128), n_beads=0, n_proteins=900, n_vesicles=3, seed=5)
    r = find_smeared_beads(ph.volume, ph.sampling_rate)
    assert len(r) == 0
    assert len(find_smeared_beads(np.zeros((48, 128, 128), np.float32), 10.0)) == 0


def test_strongly_misaligned_simulated_tomogram_gives_usable_beads():
    """Training simulator, birds of +-250 Å at 15 Å/px (beads split far
    apart): the round-bead search at every scale finds fewer than 3, the
    smeared-bead search gives coordinates within one bead diameter of the
    beads (XY)."""
    from faml_tomo import simulation as sim

    px, nz = 15.0, 64
    slab = sim.SlabParams(nx=192, ny=192, nz=nz, pixel_size=px, slab_thickness=700.0, n_beads=10)
    acq = sim.AcquisitionParams(render_sampling=px)
    model = sim.misalignment_preset("birds", 250.0, len(acq.angles()))
    ts = sim.simulate_tilt_series(slab, acq, model, rng=4)
    tomo = sim.reconstruct_wbp(ts.images, ts.angles, nz)
    d = 100 / px
    params = PeakHighContrastParams(bead_diameter_nm=10.0, smeared_search=False)
    assert len(peak_high_contrast(tomo, px, params)) < 3
    r = peak_high_contrast(tomo, px)
    assert r.stats["search"] == "smeared" and len(r) >= 3
    xy = np.linalg.norm(r.coordinates[:, None, :2] - ts.beads[None, :, :2], axis=2).min(axis=1)
    assert np.mean(xy <= d) >= 0.8, xy / d


def test_streak_transfer_raises_a_streaks_contrast_over_noise_not_a_spots():
    """In units of the filtered white noise's SD (what the search thresholds):
    a dark line along Y stands out more with the streak filter than with the
    round one, a round spot less."""
    shape = (128, 128)
    streak, round_ = dog_transfer(shape, 2.0, sigma_y=8.0), dog_transfer(shape, 2.0)
    assert streak[0, 0] == pytest.approx(0.0)

    def snr(img, h):
        noise_sd = np.sqrt(np.sum(np.abs(np.fft.irfft2(h, s=shape)) ** 2))
        return -sfft.irfft2(sfft.rfft2(img) * h, s=shape).min() / noise_sd

    line = np.zeros(shape, np.float32)
    line[40:88, 64] = -1.0  # 48 px along Y
    spot = np.zeros(shape, np.float32)
    spot[62:67, 62:67] = -1.0
    assert snr(line, streak) > 1.5 * snr(line, round_)
    assert snr(spot, streak) < snr(spot, round_)


def _streaks(shape, centres, d, length, rng):
    """Beads drawn out into dark streaks ``length`` voxels long along Y (as
    errors along the tilt axis leave them), in noise with dense blobs."""
    nz, ny, nx = shape
    vol = rng.normal(0, 1, shape).astype(np.float32)
    zz, yy, xx = np.mgrid[:nz, :ny, :nx].astype(np.float32)
    for c in centres:
        r2 = ((xx - c[0]) / (0.3 * d)) ** 2 + ((zz - c[2]) / (0.5 * d)) ** 2
        along = np.clip(np.abs(yy - c[1]) - length / 2, 0, None) / (0.3 * d)
        vol -= 2.0 * np.exp(-r2 - along**2)
    return vol


def test_beads_drawn_out_along_the_tilt_axis_are_found_by_the_streak_search():
    rng = np.random.default_rng(5)
    d = 6.0  # 10 nm beads at ~17 Å/px
    shape = (40, 192, 192)
    g = np.array([40.0, 96.0, 152.0])  # 3 x 3 grid, jittered
    centres = np.column_stack([np.repeat(g, 3), np.tile(g, 3), np.full(9, 20.0)])
    centres += rng.uniform(-4, 4, centres.shape)
    vol = _streaks(shape, centres, d, length=5 * d, rng=rng)
    params = PeakHighContrastParams(bead_diameter_nm=10.0)
    px = 100.0 / d
    assert len(find_smeared_beads(vol, px, params)) < 3  # too faint for round pieces
    r = find_smeared_beads(vol, px, params, streak=True)
    assert r.stats["search"] == "streak"
    inside = box_inside(centres, shape, 32)
    m = match_points(r.coordinates, centres, 0.5 * d, inside)
    assert m["fn"] == 0 and m["fp"] == 0, m
    full = peak_high_contrast(vol, px, params)  # the pipeline gets there too
    assert full.stats["search"] == "streak" and "streaks" in full.warnings[0]
    # and no streak is found where there is no gold
    ph = bead_phantom(shape=(48, 128, 128), n_beads=0, n_proteins=900, n_vesicles=3, seed=5)
    assert len(find_smeared_beads(ph.volume, ph.sampling_rate, streak=True)) == 0
