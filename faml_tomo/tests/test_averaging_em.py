"""FAML / FA expectation-maximisation: classification, averaging, checkpoint
and resume, bad inputs.  Default tests use small boxes; the slow ones follow
the accuracy criteria of issue 4 on procedural phantoms (and, when
../shared/data/structures is present, on real maps)."""

import numpy as np
import pytest

from faml_tomo.averaging.align import AlignParams
from faml_tomo.averaging.em import CHECKPOINT_NAME, classify
from faml_tomo.averaging.testing import (
    aligned_correlation,
    f1_score,
    phantom,
    simulate_subtomograms,
)
from faml_tomo.errors import CheckpointMismatch, InputError

FAST = AlignParams(lmax=23)  # 48^3 Euler grid (7.5 degrees): quick tests


@pytest.fixture(scope="module")
def two_class_set():
    # Two structures of different size (as ribosome vs proteasome): with
    # similar shapes and few particles per class, reference-free
    # classification from a random split can lock into a biased split.
    refs = [phantom(24, seed=0), phantom(24, seed=3, radius=3.0)]
    return simulate_subtomograms(refs, 12, 2.0, (-60, 60), seed=1, max_shift=1.5)


def test_two_classes_recovered(two_class_set):
    sim = two_class_set
    res = classify(
        sim.volumes, sim.tilt_range, n_classes=2, max_iter=4, seed=0, align=FAST, n_voronoi=2000
    )
    assert f1_score(sim.classes, res.classes) >= 0.99
    assert res.averages.shape == (2, 24, 24, 24)
    assert res.alpha.sum() == pytest.approx(1.0)
    assert np.all((res.max_posterior > 0) & (res.max_posterior <= 1 + 1e-12))
    assert np.all(res.n_candidates >= 1) and np.all(res.n_candidates <= 50)
    assert len(res.log_likelihood) == res.n_iterations
    assert res.euler_angles().shape == (24, 3)
    # Each class average resembles its structure.
    for k in range(2):
        members = sim.classes[res.classes == k]
        truth = sim.references[np.bincount(members).argmax()]
        assert aligned_correlation(res.averages[k], truth, FAST)[0] > 0.8


def test_user_references_and_transforms(two_class_set):
    sim = two_class_set
    res = classify(
        sim.volumes,
        sim.tilt_range,
        references=list(sim.references),
        n_classes=2,
        max_iter=1,
        align=FAST,
        n_voronoi=2000,
        marching=False,
    )
    # Given the true structures, classes and transforms are right at once
    # (full band: frequency marching would start at 3 shells).
    assert np.array_equal(res.classes, sim.classes)
    from faml_tomo.geometry import rotation_angle_deg

    ang = rotation_angle_deg(res.rotations, sim.rotations)
    assert np.median(ang) < 5 and np.median(np.linalg.norm(res.shifts - sim.shifts, axis=1)) < 0.6


@pytest.mark.parametrize("mode", ["faml", "fa"])
def test_resume_equals_uninterrupted(tmp_path, mode):
    ref = phantom(20, seed=2)
    sim = simulate_subtomograms([ref], 6, 0.3, (-60, 60), seed=7)
    kw = dict(
        n_classes=1, mode=mode, max_iter=3, tol=0, seed=5, align=FAST, n_voronoi=1000, chunk_size=4
    )
    full = classify(sim.volumes, sim.tilt_range, **kw)

    class Killed(Exception):
        pass

    def kill_after_two(state):
        if state.iteration == 2:
            raise Killed

    ck = tmp_path / "run"
    with pytest.raises(Killed):
        classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, callback=kill_after_two, **kw)
    assert (ck / CHECKPOINT_NAME).exists()
    resumed = classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, **kw)
    assert resumed.n_iterations == full.n_iterations == 3
    assert np.array_equal(resumed.averages, full.averages)
    assert np.array_equal(resumed.rotations, full.rotations)
    assert np.array_equal(resumed.shifts, full.shifts)
    assert np.array_equal(resumed.max_posterior, full.max_posterior)
    assert resumed.log_likelihood == full.log_likelihood
    # A finished run found again returns the same result without iterating.
    again = classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, **kw)
    assert np.array_equal(again.averages, full.averages)
    # Other settings: refused, not silently mixed.
    with pytest.raises(CheckpointMismatch, match="checkpoint"):
        classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, **{**kw, "seed": 6})


def test_same_seed_same_result_serial_and_pool():
    ref = phantom(20, seed=2)
    sim = simulate_subtomograms([ref], 5, 0.2, (-60, 60), seed=8)
    kw = dict(max_iter=2, tol=0, seed=3, align=FAST, n_voronoi=500, chunk_size=2)
    a = classify(sim.volumes, sim.tilt_range, **kw)
    b = classify(sim.volumes, sim.tilt_range, **kw)
    assert np.array_equal(a.averages, b.averages)
    c = classify(sim.volumes, sim.tilt_range, workers=2, **kw)  # process pool
    assert np.array_equal(a.averages, c.averages)
    assert np.array_equal(a.rotations, c.rotations)


def test_convergence_rule_stops_early():
    ref = phantom(20, seed=2)
    sim = simulate_subtomograms([ref], 6, 5.0, (-60, 60), seed=9)
    res = classify(sim.volumes, sim.tilt_range, max_iter=15, tol=0.02, align=FAST, n_voronoi=500)
    assert res.converged and res.n_iterations < 15


def test_bad_inputs():
    v = phantom(16, seed=1)
    vols = np.stack([v, np.roll(v, 1, axis=0), np.roll(v, 2, axis=1)])
    with pytest.raises(InputError, match="exceeds the number of subtomograms"):
        classify(vols, (-60, 60), n_classes=4)
    with pytest.raises(InputError, match="same box size"):
        classify([v, phantom(20)], (-60, 60))
    with pytest.raises(InputError, match="not cubic"):
        classify([v[:, :, :10], v[:, :, :10]], (-60, 60))
    with pytest.raises(InputError, match="constant"):
        classify([v, np.zeros_like(v)], (-60, 60))
    bad = v.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or Inf"):
        classify([v, bad], (-60, 60))
    with pytest.raises(InputError, match="outside"):
        classify(vols, (-60, 95))
    with pytest.raises(InputError, match="3 tilt ranges"):
        classify(vols[:2], [(-60, 60)] * 3)
    with pytest.raises(InputError, match="mode"):
        classify(vols, (-60, 60), mode="relion")
    # one reference per class, or one for all (K classes started from it)
    with pytest.raises(InputError, match="got 3 references for K=2"):
        classify(vols, (-60, 60), n_classes=2, references=[v, vols[1], vols[2]])
    with pytest.raises(InputError, match="no subtomograms"):
        classify([], (-60, 60))


def test_twolobe_vs_ring7_default_init():
    """The demo's 2-class case (simulator phantoms with CTF): in the paper's
    full-band algorithm the random split locks into a wrong split for some
    seeds (demo seed 1: agreement 0.53; here F1 0.57); with the defaults
    (frequency marching, FSC weighting, leave-one-out) it is classified."""
    from faml_tomo.simulation import SubtomogramParams, make_phantom
    from faml_tomo.simulation import simulate_subtomograms as simulate

    box, pixel = 24, 20.0
    structures = {n: make_phantom(n, box, pixel) for n in ("twolobe", "ring7")}
    params = SubtomogramParams(box=box, pixel_size=pixel, snr=0.05, tilt_min=-60, tilt_max=60)
    sset = simulate(structures, [12, 12], params, np.random.default_rng(1))
    res = classify(
        sset.volumes,
        (-60, 60),
        n_classes=2,
        max_iter=3,
        seed=1,
        align=AlignParams(lmax=17),
        n_voronoi=1000,
    )
    assert f1_score(np.asarray(sset.truth.class_index), res.classes) >= 0.95
    # Marching: starts band-limited (the consensus run starts at 3 shells and
    # the classes go on from the band it reached), never narrows, stays
    # inside the band.
    assert 3 <= res.radius[0] < box // 2 - 1
    assert all(b >= a for a, b in zip(res.radius, res.radius[1:]))
    assert max(res.radius) <= box // 2 - 1


def test_kmeans_seeded_and_init_options():
    from faml_tomo.averaging.consensus import kmeans

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (20, 2)), rng.normal(6, 1, (15, 2))])
    a, ia = kmeans(x, 2, np.random.default_rng(5))
    b, ib = kmeans(x, 2, np.random.default_rng(5))
    assert np.array_equal(a, b) and ia == ib
    assert f1_score(np.r_[np.zeros(20, int), np.ones(15, int)], a) == 1.0
    assert np.bincount(kmeans(x[:3], 3, rng)[0]).tolist() == [1, 1, 1]  # none empty
    v = phantom(16, seed=1)
    vols = np.stack([v, np.roll(v, 1, axis=0), np.roll(v, 2, axis=1)])
    with pytest.raises(InputError, match="init"):
        classify(vols, (-60, 60), n_classes=2, init="best")
    with pytest.raises(InputError, match="march_step"):
        classify(vols, (-60, 60), march_step=0)


def test_full_band_paper_mode():
    """marching=False, fsc_weight=False, leave_one_out=False, init='random':
    the paper's behaviour, the whole band from the first iteration."""
    ref = phantom(20, seed=2)
    sim = simulate_subtomograms([ref], 6, 0.3, (-60, 60), seed=7)
    kw = dict(max_iter=2, tol=0, align=FAST, n_voronoi=500)
    paper = classify(
        sim.volumes,
        sim.tilt_range,
        marching=False,
        fsc_weight=False,
        leave_one_out=False,
        init="random",
        **kw,
    )
    assert paper.radius == [9, 9]
    assert len(paper.fsc_radius) == 2
    # Leave-one-out changes the second iteration's scores only.
    loo = classify(
        sim.volumes, sim.tilt_range, marching=False, fsc_weight=False, init="random", **kw
    )
    assert loo.log_likelihood[0] == paper.log_likelihood[0]
    assert loo.log_likelihood[1] != paper.log_likelihood[1]


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_faml_beats_fa_at_low_snr():
    """One structure, low SNR, ±60°: the FAML average recovers the truth and
    is not worse than the FA average.  Measured (session 3, and the same at
    the start of it): FAML 0.827, FA 0.837 -- our FA comparator averages the
    best candidates with wedge compensation and is as good as FAML on this
    phantom (the same holds on real maps, see test_averaging_accuracy)."""
    ref = phantom(32, seed=0)
    sim = simulate_subtomograms([ref], 60, 0.005, (-60, 60), seed=3, max_shift=2)
    out = {}
    for mode in ("faml", "fa"):
        res = classify(sim.volumes, sim.tilt_range, mode=mode, max_iter=10, seed=1)
        out[mode] = aligned_correlation(res.averages[0], ref)[0]
    assert out["faml"] >= 0.8 and out["faml"] >= out["fa"] - 0.02, out


@pytest.mark.slow
def test_two_classes_low_snr_box32():
    refs = [phantom(32, seed=0), phantom(32, seed=3)]
    sim = simulate_subtomograms(refs, 30, 0.02, (-60, 60), seed=4, max_shift=2)
    res = classify(sim.volumes, sim.tilt_range, n_classes=2, max_iter=10, seed=0)
    assert f1_score(sim.classes, res.classes) >= 0.95


_MPI_SCRIPT = """
import sys
import numpy as np
from mpi4py import MPI
from faml_tomo.averaging import AlignParams, classify
from faml_tomo.averaging.testing import phantom, simulate_subtomograms
sim = simulate_subtomograms([phantom(20, seed=2)], 6, 0.3, (-60, 60), seed=7)
res = classify(sim.volumes, sim.tilt_range, comm=MPI.COMM_WORLD, max_iter=2, tol=0, seed=5,
               align=AlignParams(lmax=23), n_voronoi=500, chunk_size=2)
if MPI.COMM_WORLD.Get_rank() == 0:
    np.save(sys.argv[1], res.averages)
"""


def test_mpi_two_ranks_equal_serial(tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("mpi4py")
    mpiexec = Path(sys.executable).with_name("mpiexec")
    mpiexec = str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec")
    script = tmp_path / "run.py"
    script.write_text(_MPI_SCRIPT)
    out = tmp_path / "avg.npy"
    proc = subprocess.run(
        [mpiexec, "-n", "2", sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "mpi" in proc.stderr.lower() and not out.exists():
        pytest.skip(f"MPI runtime unusable here: {proc.stderr[-300:]}")
    assert proc.returncode == 0, proc.stderr
    sim = simulate_subtomograms([phantom(20, seed=2)], 6, 0.3, (-60, 60), seed=7)
    res = classify(
        sim.volumes,
        sim.tilt_range,
        max_iter=2,
        tol=0,
        seed=5,
        align=FAST,
        n_voronoi=500,
        chunk_size=2,
    )
    assert np.array_equal(np.load(out), res.averages)


def test_streaming_from_files_equals_in_memory(tmp_path):
    from faml_tomo.averaging.parallel import VolumeFiles
    from faml_tomo.io import write_mrc

    sim = simulate_subtomograms([phantom(20, seed=2)], 5, 0.3, (-60, 60), seed=7)
    vols = sim.volumes.astype(np.float32)  # MRC stores float32
    paths = [write_mrc(tmp_path / f"p{i}.mrc", v, 20.0) for i, v in enumerate(vols)]
    kw = dict(max_iter=1, tol=0, seed=5, align=FAST, n_voronoi=500, chunk_size=2)
    a = classify(VolumeFiles(paths), sim.tilt_range, **kw)
    b = classify(vols, sim.tilt_range, **kw)
    assert np.array_equal(a.averages, b.averages)


def _soft_sphere(n, radius):
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    return np.clip(radius + 0.5 - np.sqrt(x**2 + y**2 + z**2), 0.0, 1.0)


def test_mask_checks():
    from faml_tomo.averaging.em import check_mask

    m = _soft_sphere(12, 4)
    assert check_mask(m, 12).shape == (12, 12, 12)
    with pytest.raises(InputError, match="shape"):
        check_mask(m, 10)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        check_mask(m * 2, 12)
    with pytest.raises(InputError, match="empty"):
        check_mask(np.zeros((12,) * 3), 12)
    bad = m.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        check_mask(bad, 12)


def test_masked_run_recovers_poses_and_is_part_of_the_checkpoint(tmp_path):
    """A soft spherical mask around the particle: poses still recovered (the
    mask keeps the structure); the mask changes the scores (it is used) and a
    checkpoint made with one mask is not resumed with another."""
    from faml_tomo.geometry import rotation_angle_deg

    ref = phantom(20, seed=2)
    sim = simulate_subtomograms([ref], 8, 1.0, (-60, 60), seed=4)
    kw = dict(n_classes=1, max_iter=1, seed=1, align=FAST, n_voronoi=500, references=[ref])
    mask = _soft_sphere(20, 8)
    masked = classify(sim.volumes, sim.tilt_range, mask=mask, checkpoint_dir=tmp_path, **kw)
    assert np.median(rotation_angle_deg(masked.rotations, sim.rotations)) < 8
    plain = classify(sim.volumes, sim.tilt_range, **kw)
    assert not np.allclose(masked.scores, plain.scores)
    assert masked.logliks.shape == (8,)
    assert np.isclose(masked.logliks.sum(), masked.log_likelihood[-1])
    with pytest.raises(CheckpointMismatch, match="checkpoint"):
        classify(
            sim.volumes, sim.tilt_range, mask=_soft_sphere(20, 6), checkpoint_dir=tmp_path, **kw
        )


def test_reference_of_opposite_contrast_is_inverted(caplog):
    """A reference with the data's contrast inverted (a positive map for dark
    protein) is detected, inverted, and aligns as well as the right one."""
    import logging

    from faml_tomo.geometry import rotation_angle_deg

    ref = phantom(20, seed=2)
    sim = simulate_subtomograms([ref], 8, 1.0, (-60, 60), seed=4)
    kw = dict(n_classes=1, max_iter=1, seed=1, align=FAST, n_voronoi=500)
    with caplog.at_level(logging.WARNING, logger="faml_tomo.averaging.em"):
        res = classify(sim.volumes, sim.tilt_range, references=[-ref], **kw)
    assert "opposite contrast" in caplog.text
    assert np.median(rotation_angle_deg(res.rotations, sim.rotations)) < 8
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="faml_tomo.averaging.em"):
        classify(sim.volumes, sim.tilt_range, references=[ref], **kw)
    assert "opposite contrast" not in caplog.text


def test_starved_class_is_reseeded(tmp_path):
    """Few particles per class: a class can lose them all and never recover
    (an average of one noisy subtomogram attracts nobody).  Re-seeding it
    from the worst-fitting half of the largest class recovers the split."""
    refs = [phantom(24, seed=1), phantom(24, seed=2)]
    sim = simulate_subtomograms(refs, 8, 0.5, (-60, 60), seed=4)
    # the paper's random start and per-class candidates, where starving happens
    kw = dict(
        n_classes=2,
        max_iter=8,
        seed=4,
        n_voronoi=500,
        align=FAST,
        noise_correction=False,
        init="random",
        shared_candidates=0,
    )
    off = classify(sim.volumes, sim.tilt_range, min_class_size=0, **kw)
    assert np.bincount(off.classes, minlength=2).min() < 3 and not off.reseeded
    # the default consensus start splits them at once
    consensus = classify(
        sim.volumes, sim.tilt_range, min_class_size=0, **{**kw, "init": "consensus"}
    )
    assert f1_score(sim.classes, consensus.classes) == 1.0 and not consensus.reseeded
    # The correction for the noise of the smaller class's average alone keeps
    # both classes here (no re-seeding needed).
    corrected = classify(
        sim.volumes, sim.tilt_range, min_class_size=0, **{**kw, "noise_correction": True}
    )
    assert f1_score(sim.classes, corrected.classes) == 1.0 and not corrected.reseeded
    res = classify(sim.volumes, sim.tilt_range, **kw)
    assert f1_score(sim.classes, res.classes) == 1.0
    assert res.reseeded and all(e[3] >= 3 for e in res.reseeded)
    pool = classify(sim.volumes, sim.tilt_range, workers=2, **kw)
    np.testing.assert_array_equal(pool.classes, res.classes)
    np.testing.assert_allclose(pool.averages, res.averages, atol=1e-10)
    # decided from the saved state: stopping just before it and continuing
    # (one iteration per call, as the protocol does) changes nothing
    it = res.reseeded[0][0]
    for stop in (it - 1, kw["max_iter"]):
        cont = classify(
            sim.volumes, sim.tilt_range, checkpoint_dir=tmp_path, **{**kw, "max_iter": stop}
        )
    assert cont.reseeded == res.reseeded
    np.testing.assert_allclose(cont.averages, res.averages, atol=1e-10)
    with pytest.raises(InputError, match="min_class_size"):
        classify(sim.volumes, sim.tilt_range, min_class_size=-1, **kw)


def test_rerun_removes_a_checkpoint_temp_file_left_by_a_kill(tmp_path):
    """kill -9 during a checkpoint write leaves the temporary file; the next
    run in that folder removes it (the kill test compares whole folders)."""
    stale = tmp_path / ".faml_checkpoint.npz.abc12345.tmp.npz"
    stale.write_bytes(b"")
    sim = simulate_subtomograms([phantom(16, seed=1)], 4, 1.0, seed=1)
    classify(
        sim.volumes, sim.tilt_range, max_iter=1, align=FAST, n_voronoi=100, checkpoint_dir=tmp_path
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faml_checkpoint.npz"]
