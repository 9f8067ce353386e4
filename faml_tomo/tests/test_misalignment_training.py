"""Training-set generation and training of the misalignment networks
(small sizes: the real run is in faml_tomo/models/MODEL_CARD.md)."""

import numpy as np
import pytest

from faml_tomo.errors import InputError
from faml_tomo.misalignment import extract_boxes
from faml_tomo.misalignment.dataset import (
    BEAD_RANGES,
    CLASSES,
    DATA_VERSION,
    bead_box_volume,
    bead_errors,
    draw_specimen,
    generate_shards,
    load_shards,
    scaled_model,
    simulate_specimen,
)
from faml_tomo.misalignment.training import STRONG_GROUPS, augment_flips, balanced_batch, confusion
from faml_tomo.simulation import (
    AcquisitionParams,
    SlabParams,
    misalignment_preset,
    reconstruct_wbp,
    simulate_tilt_series,
)


def test_rigid_displacement_has_no_residual():
    angles = np.linspace(-60, 60, 41)
    th = np.radians(angles)
    beads = np.array([[40.0, 50.0, 30.0], [90.0, 20.0, 35.0]])
    # the projection of a 3D shift (2, -1, 3) px
    sx = 2 * np.cos(th) + 3 * np.sin(th)
    sy = np.full_like(th, -1.0)
    disp, res = bead_errors(beads, angles, sx, sy, np.zeros_like(th), (64, 128, 128))
    np.testing.assert_allclose(res, 0, atol=1e-9)
    np.testing.assert_allclose(disp, [[2, -1, 3]] * 2, atol=1e-9)


def test_bananas_ramp_is_mostly_a_z_shift_and_birds_is_not():
    angles = np.linspace(-60, 60, 41)
    beads = np.array([[64.0, 64.0, 32.0]])
    ramp = np.linspace(-10, 10, 41)  # px
    zero = np.zeros(41)
    disp, res_b = bead_errors(beads, angles, ramp, zero, zero, (64, 128, 128))
    assert res_b[0] == pytest.approx(0.031 * 10, rel=0.05)
    assert abs(disp[0, 2]) > 9  # moved in z
    _, res_y = bead_errors(beads, angles, zero, ramp, zero, (64, 128, 128))
    assert res_y[0] == pytest.approx(10 / np.sqrt(3), rel=0.05)  # rms of the ramp


def test_twister_residual_grows_with_distance_from_centre():
    angles = np.linspace(-60, 60, 41)
    beads = np.array([[64.0, 64.0, 32.0], [64.0, 120.0, 32.0], [120.0, 64.0, 32.0]])
    zero = np.zeros(41)
    _, res = bead_errors(beads, angles, zero, zero, np.full(41, 2.0), (64, 128, 128))
    assert res[0] < 0.01 < res[1] and res[2] > 0.1


@pytest.mark.parametrize("kind", ["bananas", "birds", "twisters", "general", "none"])
def test_scaled_model_hits_the_target_residual(kind):
    rng = np.random.default_rng(3)
    angles = np.linspace(-60, 60, 41)
    beads = np.column_stack(
        [rng.uniform(20, 236, 12), rng.uniform(20, 236, 12), rng.uniform(20, 60, 12)]
    )
    shape, px = (80, 256, 256), 12.0
    model = scaled_model(kind, 1.5, rng, beads, angles, shape, px, 11)
    dx, dy, da = model.evaluate(41, np.random.default_rng(11))
    _, res = bead_errors(beads, angles, dx / px, dy / px, da, shape)
    assert np.median(res) == pytest.approx(1.5, rel=0.03)


def test_specimens_cover_the_ranges_and_are_seeded():
    draws = [draw_specimen(np.random.default_rng([5, i])) for i in range(200)]
    px = np.array([d.slab.pixel_size for d in draws])
    bead = np.array([d.slab.bead_diameter for d in draws])
    n = np.array([d.acquisition.angles().size for d in draws])
    assert 4 <= px.min() < 5 and 19 < px.max() <= 20
    assert 50 <= bead.min() < 60 and 185 < bead.max() <= 200
    assert np.all(bead / px >= 2.5)
    assert n.min() == 41 and n.max() == 61
    # domain randomisation: every processing and acquisition variant occurs
    proc = [d.processing for d in draws]
    assert {p.ctf_correction for p in proc} == {"none", "phase-flip", "wiener"}
    assert {p.dose_weighting for p in proc} == {True, False}
    assert len({p.recon_filter for p in proc}) >= 4
    assert any(p.recon_lowpass > 0 for p in proc) and any(p.recon_lowpass == 0 for p in proc)
    df = np.array([-d.acquisition.ctf.defocus for d in draws])
    assert 1 <= df.min() < 1.3 and 7 < df.max() <= 8
    assert {d.acquisition.ctf.voltage for d in draws} == {200.0, 300.0}
    assert {d.acquisition.binning for d in draws} == {"mean", "fourier"}
    assert any(d.slab.carbon_edge is not None for d in draws)
    assert any(d.slab.bead_pair_fraction > 0 for d in draws)
    asym = [d for d in draws if abs(d.acquisition.tilt_min + d.acquisition.tilt_max) > 0.01]
    assert 0.3 < len(asym) / len(draws) < 0.7
    a = draw_specimen(np.random.default_rng([5, 0]))
    assert a.slab == draws[0].slab and a.seed == draws[0].seed


def test_local_reconstruction_boxes_equal_full_tomogram_boxes():
    """Training boxes (local WBP) are the boxes inference gets from a whole
    tomogram."""
    sp = SlabParams(
        nx=96,
        ny=96,
        nz=48,
        pixel_size=14.0,
        slab_thickness=500,
        bead_diameter=90,
        n_beads=3,
        n_vesicles=0,
    )
    ts = simulate_tilt_series(
        sp, AcquisitionParams(tilt_step=4), misalignment_preset("birds", 30, 31), rng=2
    )
    full = reconstruct_wbp(ts.images, ts.angles, sp.nz)
    c = ts.beads[0] + np.array([0.3, -0.2, 0.4])
    vol, origin = bead_box_volume(ts, c, 90.0, sp.nz)
    a = extract_boxes(vol, [c - origin], 14.0, 90.0).boxes
    b = extract_boxes(full, [c], 14.0, 90.0).boxes
    np.testing.assert_allclose(a, b, atol=2e-3 * np.abs(b).max())


def test_specimen_boxes_labels_and_determinism(small_specimens):
    a = simulate_specimen(11, "train", 0, image_size=128, n_beads=8)
    b = simulate_specimen(11, "train", 0, image_size=128, n_beads=8)
    np.testing.assert_array_equal(a["boxes"], b["boxes"])
    assert a["boxes"].shape[1:] == (32, 32, 32) and a["boxes"].dtype == np.float16
    assert len(a["boxes"]) == len(a["label"]) == len(a["residual"]) > 6
    for cid, cls in enumerate(CLASSES):
        sel = a["label"] == cid
        lo, hi = BEAD_RANGES[cls]
        assert np.all((a["residual"][sel] >= lo) & (a["residual"][sel] <= hi))
    assert np.all(np.isfinite(a["boxes"].astype(np.float32)))
    c = simulate_specimen(11, "val", 0, image_size=128, n_beads=8)  # another specimen
    assert c["pixel_size"] != a["pixel_size"]


@pytest.fixture
def small_specimens(monkeypatch):
    """Shards of small specimens (128^2 images, 8 beads, rendered at the
    detector pixel) for the pipeline tests: full-size ones take a minute each."""
    import dataclasses
    import functools

    from faml_tomo.misalignment import dataset

    def coarse(*args, **kwargs):
        spec = draw_specimen(*args, **kwargs)
        acq = dataclasses.replace(spec.acquisition, render_sampling=spec.slab.pixel_size)
        return dataclasses.replace(spec, acquisition=acq)

    monkeypatch.setattr(dataset, "draw_specimen", coarse)
    monkeypatch.setattr(
        dataset,
        "simulate_specimen",
        functools.partial(simulate_specimen, image_size=128, n_beads=8),
    )


def test_shards_are_cached(tmp_path, small_specimens):
    t1 = generate_shards(tmp_path, 4, "val", 1)
    t2 = generate_shards(tmp_path, 4, "val", 1)
    assert t2 < t1 / 5
    data = load_shards(tmp_path, "val", 1)
    assert len(data) == len(data.tomogram) and set(np.unique(data.label)) <= {0, 1, 2}
    with pytest.raises(InputError, match="shard missing"):
        load_shards(tmp_path, "val", 2)
    with pytest.raises(InputError, match="set must be"):
        generate_shards(tmp_path, 4, "nope", 1)


def test_flips_and_balanced_batches():
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(64, 32, 32, 32)).astype(np.float32)
    flipped = augment_flips(boxes.copy(), np.random.default_rng(1))
    same = [np.array_equal(flipped[i], boxes[i]) for i in range(64)]
    assert 2 <= sum(same) <= 20  # 1/8 identity on average
    # each flipped box is one of the 8 sign flips of its original
    i = int(np.flatnonzero(~np.array(same))[0])
    assert any(
        np.array_equal(flipped[i], np.flip(boxes[i], axes))
        for axes in [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    )

    class D:
        label = np.array([0] * 30 + [1] * 5 + [2] * 100)
        boxes = np.zeros((135, 32, 32, 32), np.float16)
        scale = np.r_[np.full(35, 0.5), np.full(100, 2.0)]

    (x, s), y = balanced_batch(D, STRONG_GROUPS, 64, rng)
    assert x.shape == (64, 32, 32, 32, 1) and x.dtype == np.float32
    # the scale input follows each box: log2 0.5 for aligned/weak, log2 2 for strong
    assert s.shape == (64, 1) and s.dtype == np.float32
    np.testing.assert_array_equal(s[:, 0], np.where(y == 0, 1.0, -1.0))
    assert np.sum(y == 0) == 32 and np.sum(y == 1) == 32


def test_confusion_matrix_rows_are_truth():
    m = confusion([0, 0, 1, 2, 2], ["aligned", "weak", "weak", "strong", "unclassified"])
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_training_runs_saves_and_resumes(tmp_path, small_specimens):
    """Tiny end-to-end run: shards, both networks, checkpoint, resume."""
    from faml_tomo.misalignment.training import checkpoint_folder, train_misalignment
    from faml_tomo.models.network import N_PARAMS, load_network

    lines = []
    kw = dict(
        seed=2,
        n_train=2,
        n_val=1,
        epochs=1,
        steps=2,
        batch_size=8,
        cache=tmp_path / "cache",
        workers=1,
        threads=1,
        log=lines.append,
    )
    r = train_misalignment(tmp_path / "out", **kw)
    for name in ("strong.keras", "weak.keras"):
        path = tmp_path / "out" / name
        assert load_network(path).count_params() == N_PARAMS
        assert path.stat().st_size < 2_000_000
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert set(r["validation"]) >= {
        "confusion_rows_real_aligned_weak_strong",
        "tomo_strong_flagged",
        "tomo_aligned_kept",
    }
    # a finished run resumes to nothing new
    lines.clear()
    train_misalignment(tmp_path / "out", **kw, resume=True)
    assert any("strong network: already trained" in s for s in lines)
    assert any("weak network: already trained" in s for s in lines)
    assert any("0 to simulate" in s for s in lines)
    # an interrupted weak network (no 'done' marker) goes on from its last epoch
    ck = tmp_path / "cache" / f"v{DATA_VERSION}_seed_2" / checkpoint_folder(2, 1, 2, 8)
    (ck / "weak_done").unlink()
    r2 = train_misalignment(tmp_path / "out", **{**kw, "epochs": 2}, resume=True)
    assert r2["training"]["weak"]["epochs_this_run"] == 1
    assert r2["training"]["weak"]["epochs_run"] == 2
    assert checkpoint_folder(2, 1, 2, 8, 4, 8).endswith("_p4-8")
    # other data sizes start afresh instead of resuming this run's epochs
    r3 = train_misalignment(tmp_path / "out3", **{**kw, "n_val": 2}, resume=True)
    assert r3["training"]["strong"]["epochs_this_run"] == 1


def test_fine_sampling_specimens_span_16_px_and_leave_the_other_sets_alone():
    from faml_tomo.misalignment.dataset import _specimen_rng, draw_specimen

    fine = [draw_specimen(_specimen_rng(11, "fine", i), fine=True).slab for i in range(40)]
    bead_px = np.array([s.bead_diameter / s.pixel_size for s in fine])
    assert bead_px.min() >= 16 - 1e-9 and np.all([s.pixel_size >= 4.0 for s in fine])
    # the training set's draws are those the shipped networks were trained on
    s = draw_specimen(_specimen_rng(11, "train", 0)).slab
    assert (round(s.pixel_size, 4), round(s.bead_diameter, 3)) == (5.5402, 179.551)


def test_box_data_extend_keeps_tomograms_apart():
    from faml_tomo.misalignment.dataset import BoxData
    from faml_tomo.misalignment.training import checkpoint_folder

    def part(n, tomo):
        return BoxData(
            np.zeros((n, 32, 32, 32), np.float16),
            np.zeros(n, np.int8),
            np.zeros(n, np.int8),
            np.zeros(n, np.float32),
            np.asarray(tomo),
            np.full(n, 5.0, np.float32),
            np.full(n, 100.0, np.float32),
        )

    both = part(3, [0, 1, 2]).extend(part(2, [0, 1]))
    assert len(both) == 5 and both.tomogram.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(both.scale, 1.25)
    assert checkpoint_folder(2, 1, 2, 8, n_fine=3).endswith("_f3")
    assert "_f" not in checkpoint_folder(2, 1, 2, 8)
