"""What the training simulator now varies (domain randomisation): touching
bead pairs, a carbon-film edge, ice-thickness gradients, B-factor, binning,
and the user's preprocessing (CTF correction, dose weighting, SIRT-like
low-pass)."""

from dataclasses import replace

import numpy as np
import pytest

from faml_tomo.errors import InputError
from faml_tomo.simulation import (
    AcquisitionParams,
    CTFParams,
    SlabParams,
    make_slab,
    reconstruct_local,
)
from faml_tomo.simulation.optics import ctf, radial_frequency
from faml_tomo.simulation.preprocess import correct_ctf, dose_weight, preprocess_tilt_series
from faml_tomo.simulation.tiltseries import project_slab

BARE = dict(
    nx=96,
    ny=96,
    nz=40,
    pixel_size=12.0,
    slab_thickness=400.0,
    n_beads=0,
    protein_fraction=0.0,
    n_vesicles=0,
)
QUIET = dict(tilt_min=0, tilt_max=3, tilt_step=3, noise=False, mtf=False, exposure_filter=False)


def _image(slab_kw, acq_kw=None):
    slab = make_slab(SlabParams(**{**BARE, **slab_kw}), rng=0)
    acq = AcquisitionParams(**{**QUIET, **(acq_kw or {})})
    images, _, _ = project_slab(slab, acq)
    return images[0] / images[0].mean()


def test_touching_bead_pairs():
    p = SlabParams(
        **{
            **BARE,
            "n_beads": 8,
            "bead_pair_fraction": 0.5,
            "slab_thickness": 450.0,
            "bead_min_distance": 200.0,
        }
    )
    b = make_slab(p, rng=3).beads
    d = np.linalg.norm(b[:, None] - b[None], axis=-1) + np.eye(8) * 1e9
    touching = np.sum(d.min(axis=1) * p.pixel_size <= 1.12 * p.bead_diameter)
    assert touching >= 4  # 2 pairs: 4 beads touch one
    with pytest.raises(InputError, match="bead_pair_fraction"):
        SlabParams(**{**BARE, "bead_pair_fraction": 1.5}).validate()


def test_carbon_edge_darkens_its_side():
    img = _image({"carbon_edge": 48.0, "carbon_thickness": 300.0})
    left, right = img[:, 10:40].mean(), img[:, 56:86].mean()
    assert right < left - 0.05  # amplitude loss through the film
    flat = _image({})
    assert abs(flat[:, 10:40].mean() - flat[:, 56:86].mean()) < 1e-3


def test_thickness_gradient_attenuates_along_x():
    slab = make_slab(SlabParams(**{**BARE, "thickness_gradient": 0.5}), rng=0)
    acq = AcquisitionParams(**{**QUIET, "inelastic_mfp": 3000.0})
    img = project_slab(slab, acq)[0][0]
    cols = img.mean(axis=0)
    assert cols[5] > cols[90] and np.all(np.diff(cols[4:92]) < 0)
    ratio = cols[90] / cols[5]
    expected = np.exp(-400 * 0.5 * (90 - 5) / 96 / 3000)
    assert ratio == pytest.approx(expected, rel=0.02)


def test_b_factor_and_binning_modes():
    kw = {"n_beads": 4, "bead_margin": 20, "pixel_size": 15.0}
    sharp = _image(kw, {"ctf": CTFParams(defocus=-3.0)})
    blurred = _image(kw, {"ctf": CTFParams(defocus=-3.0), "b_factor": 2000.0})
    assert blurred.std() < sharp.std()
    fourier = _image(kw, {"ctf": CTFParams(defocus=-3.0), "binning": "fourier"})
    assert not np.allclose(fourier, sharp, atol=1e-3)
    assert np.corrcoef(fourier.ravel(), sharp.ravel())[0, 1] > 0.9
    with pytest.raises(InputError, match="binning"):
        AcquisitionParams(binning="nearest").validate()
    with pytest.raises(InputError, match="b_factor"):
        AcquisitionParams(b_factor=-1).validate()


def test_ctf_correction_restores_the_signal():
    rng = np.random.default_rng(0)
    px, params = 5.0, CTFParams(defocus=-3.0)
    truth = np.fft.irfft2(
        np.fft.rfft2(rng.normal(size=(128, 128)))
        * np.exp(-((radial_frequency((128, 128), px, rfft=True) * 12) ** 2)),
        s=(128, 128),
    )
    k = radial_frequency((128, 128), px, rfft=True)
    # the CTF of this package is negative at low k: dark protein
    observed = np.fft.irfft2(np.fft.rfft2(truth) * ctf(k, params), s=(128, 128))[None]
    r0 = np.corrcoef(-observed.ravel(), truth.ravel())[0, 1]
    flipped = correct_ctf(observed, px, params, "phase-flip")
    r1 = np.corrcoef(-flipped.ravel(), truth.ravel())[0, 1]
    wiener = correct_ctf(observed, px, params, "wiener", wiener_snr=1.0)
    r2 = np.corrcoef(-wiener.ravel(), truth.ravel())[0, 1]
    assert r1 > r0 + 0.2 and r2 > r0 + 0.2  # and the sign stays: dark stays dark
    assert np.allclose(correct_ctf(observed, px, params, "none"), observed, atol=1e-6)
    with pytest.raises(InputError, match="CTF correction"):
        correct_ctf(observed, px, params, "flip")
    with pytest.raises(InputError, match="wiener_snr"):
        correct_ctf(observed, px, params, "wiener", wiener_snr=0)


def test_dose_weighting_fades_late_images():
    rng = np.random.default_rng(1)
    imgs = rng.normal(size=(2, 64, 64)).astype(np.float32)
    out = dose_weight(imgs, 4.0, [0.0, 100.0], 3.0)
    assert out[1].std() < out[0].std() < imgs[0].std() + 1e-6
    with pytest.raises(InputError, match="exposures"):
        dose_weight(imgs, 4.0, [0.0], 3.0)
    counts = 100 + rng.normal(size=(2, 32, 32))
    pre = preprocess_tilt_series(counts, 4.0, CTFParams(), "phase-flip", [0.0, 10.0], 3.0)
    assert pre.shape == counts.shape and abs(pre.mean()) < 0.01


def test_sirt_like_lowpass_smooths_reconstructions():
    rng = np.random.default_rng(2)
    images = 100 + rng.normal(size=(21, 32, 48)).astype(np.float32)
    angles = np.linspace(-60, 60, 21)
    plain = reconstruct_local(images, angles, (24, 16, 10), 12, 20)
    smooth = reconstruct_local(images, angles, (24, 16, 10), 12, 20, lowpass=2.0)
    assert smooth.std() < 0.7 * plain.std()
    with pytest.raises(InputError, match="lowpass"):
        reconstruct_local(images, angles, (24, 16, 10), 12, 20, lowpass=-1)


def test_specimen_draws_use_the_processing_they_name():
    from faml_tomo.misalignment.dataset import Processing, draw_specimen

    spec = draw_specimen(np.random.default_rng(4))
    assert isinstance(spec.processing, Processing)
    assert replace(spec.processing, ctf_correction="none").ctf_correction == "none"
