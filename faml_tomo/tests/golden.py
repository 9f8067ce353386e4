"""Recorded outputs of small runs, for refactors that must not change results.

Each case runs a task on a small procedural data set (no ``../shared``) and
returns its outputs as named arrays; ``python -m faml_tomo.tests.golden``
records them in ``faml_tomo/tests/data/golden_<task>.npz`` and
``test_golden_outputs.py`` compares a fresh run with the recording byte for
byte (same machine type, pinned versions and one thread, as CI: a change of
numpy, BLAS, CPU or thread count may change the last bits, and then the
recording is remade after checking the difference is rounding only).  Record
with ``OMP_NUM_THREADS=1 python -m faml_tomo.tests.golden [task ...]``.
"""

import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"


def _classify_data():
    from faml_tomo.averaging.testing import phantom, simulate_subtomograms

    a, b = phantom(16, seed=3), phantom(16, seed=4)
    return a, b, simulate_subtomograms([a, b], 8, 0.5, (-60, 60), seed=5, max_shift=1.0)


def _classify_cases():
    """name -> keyword arguments of :func:`faml_tomo.averaging.em.classify`
    (every branch of the driver: K = 1, the consensus start with shared
    candidates, FA, gold standard, symmetry, references with a mask and a
    classification mask)."""
    from faml_tomo.averaging.align import AlignParams

    a, b, _ = _classify_data()
    fast = AlignParams(lmax=15, max_candidates=10)
    ball = np.zeros((16,) * 3)
    z, y, x = np.indices(ball.shape) - 8
    ball[x**2 + y**2 + z**2 <= 36] = 1.0
    focus = (x > 0).astype(float)
    common = dict(max_iter=3, n_voronoi=500, align=fast, seed=2)
    return {
        "faml_k1": dict(common, n_classes=1),
        "faml_k2_consensus": dict(common, n_classes=2, consensus_iterations=2),
        "fa_k2": dict(common, n_classes=2, mode="fa"),
        "faml_k2_gold": dict(common, n_classes=2, gold_standard=True, init="random"),
        "faml_k2_gold_consensus": dict(
            common, n_classes=2, gold_standard=True, consensus_iterations=2
        ),
        "faml_k2_random_own": dict(common, n_classes=2, init="random", shared_candidates=0),
        "faml_k1_c2": dict(
            common,
            n_classes=1,
            c1_iterations=1,
            align=AlignParams(lmax=15, max_candidates=10, symmetry="C2"),
        ),
        "faml_k2_focus": dict(common, n_classes=2, references=[a, b], mask=ball, focus_mask=focus),
    }


def classify_outputs():
    """name -> dict of output arrays, one per case."""
    from faml_tomo.averaging.em import classify

    *_, sim = _classify_data()
    out = {}
    for name, kw in _classify_cases().items():
        res = classify(sim.volumes, sim.tilt_range, **kw)
        out[name] = {
            "averages": res.averages,
            "classes": res.classes,
            "max_posterior": res.max_posterior,
            "rotations": res.rotations,
            "shifts": res.shifts,
            "alpha": res.alpha,
            "scalars": np.array([res.sigma, res.xi]),
            "log_likelihood": np.asarray(res.log_likelihood),
            "fsc": np.asarray(res.fsc if res.fsc is not None else []),
        }
    return out


def fiducial_outputs():
    """name -> outputs of :func:`faml_tomo.fiducials.peak_high_contrast` on
    small tomograms that take each path: beads found at their size, too
    few beads (small-population and relaxed rules), no gold, and beads
    split into lobes (the smeared-bead search)."""
    from faml_tomo.fiducials import PeakHighContrastParams, peak_high_contrast
    from faml_tomo.fiducials.phantom import bead_phantom
    from faml_tomo.tests.test_fiducials_smeared import _lobed

    vols = {
        name: bead_phantom(
            shape=(48, 128, 128), n_beads=nb, n_proteins=600, n_vesicles=2, seed=7
        ).volume
        for name, nb in (("beads", 15), ("few", 3), ("none", 0))
    }
    rng = np.random.default_rng(3)
    g = np.arange(35.0, 100.0, 30.0)
    centres = np.column_stack([np.repeat(g, 3), np.tile(g, 3), np.full(9, 24.0)])
    vols["lobed"] = _lobed(
        (48, 128, 128), centres + rng.uniform(-5, 5, centres.shape), 10.0, 8.0, rng
    )
    out = {}
    for name, vol in vols.items():
        r = peak_high_contrast(vol, 10.0, PeakHighContrastParams(), seed=1)
        stats = {k: v for k, v in r.stats.items() if not k.startswith("time")}
        out[name] = {
            "coordinates": r.coordinates,
            "scores": r.scores,
            "relaxed": np.array(r.relaxed_mode_used),
            "warnings": np.array(r.warnings, dtype=str),
            "stats": np.array(repr(sorted(_plain(stats).items()))),
        }
    return out


def _plain(d):
    """Stats without timings (nested dicts too), for a repr that only
    changes when a result does."""
    return {
        k: (_plain(v) if isinstance(v, dict) else v)
        for k, v in d.items()
        if not k.startswith("time")
    }


def simulation_outputs():
    """name -> outputs of the simulator: subtomograms of two phantoms, and a
    small misaligned tilt series with its tomogram."""
    from faml_tomo.simulation import (
        AcquisitionParams,
        SlabParams,
        SubtomogramParams,
        get_structure,
        misalignment_preset,
        reconstruct_wbp,
        simulate_subtomograms,
        simulate_tilt_series,
    )

    refs = {n: get_structure(n, 20, 20.0, 240.0) for n in ("ring7", "twolobe")}
    sset = simulate_subtomograms(refs, [2, 2], SubtomogramParams(box=20, pixel_size=20.0), rng=3)
    sp = SlabParams(
        nx=64,
        ny=64,
        nz=24,
        pixel_size=15.0,
        slab_thickness=300,
        bead_diameter=100,
        n_beads=3,
        n_vesicles=1,
    )
    acq = AcquisitionParams(tilt_step=10)
    ts = simulate_tilt_series(sp, acq, misalignment_preset("bananas", 60, 13), rng=2)
    return {
        "subtomograms": {
            "volumes": sset.volumes,
            "rotations": sset.truth.rotations,
            "shifts": sset.truth.shifts,
        },
        "tilt_series": {
            "images": ts.images,
            "beads": ts.beads,
            "tomogram": reconstruct_wbp(ts.images, ts.angles, sp.nz),
        },
    }


def misalignment_outputs():
    """name -> bead scores and decisions of the shipped networks on two small
    simulated tomograms (aligned, and birds-misaligned)."""
    from faml_tomo.misalignment.detect import score_tomogram
    from faml_tomo.misalignment.predict import MisalignmentScorer
    from faml_tomo.simulation import (
        AcquisitionParams,
        SlabParams,
        misalignment_preset,
        reconstruct_wbp,
        simulate_tilt_series,
    )

    scorer = MisalignmentScorer()
    out = {}
    for i, (kind, mag) in enumerate((("none", 0), ("birds", 200))):
        sp = SlabParams(
            nx=128,
            ny=128,
            nz=48,
            pixel_size=15.0,
            slab_thickness=600,
            bead_diameter=100,
            n_beads=5,
            n_vesicles=0,
        )
        ts = simulate_tilt_series(
            sp, AcquisitionParams(tilt_step=4), misalignment_preset(kind, mag, 31), rng=i
        )
        tomo = reconstruct_wbp(ts.images, ts.angles, sp.nz)
        r = score_tomogram(kind, tomo, ts.beads, 15.0, 100.0, scorer, weak_threshold=0.5)
        out[kind] = {
            "strong": r.strong,
            "weak": r.weak,
            "decision": np.array(
                [r.decision.label, repr(r.decision.strong_score), repr(r.decision.weak_score)]
            ),
        }
    return out


def training_data_outputs():
    """name -> one simulated training specimen of the misalignment networks
    (boxes, labels, residuals; small field of view)."""
    from faml_tomo.misalignment.dataset import simulate_specimen

    r = simulate_specimen(11, "train", 0, image_size=128, n_beads=8)
    return {"specimen": {k: v for k, v in r.items() if k != "seconds"}}


TASKS = {
    "classify": classify_outputs,
    "fiducials": fiducial_outputs,
    "simulation": simulation_outputs,
    "misalignment": misalignment_outputs,
    "training_data": training_data_outputs,
}


def flatten(outputs):
    return {f"{case}/{key}": np.asarray(v) for case, d in outputs.items() for key, v in d.items()}


def record(task):
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"golden_{task}.npz"
    np.savez_compressed(path, **flatten(TASKS[task]()))
    return path


if __name__ == "__main__":
    for t in sys.argv[1:] or TASKS:
        print("recorded", record(t))
