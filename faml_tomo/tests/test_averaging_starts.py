"""Independent starts (``EMParams.starts``): the start with the highest
log-likelihood is returned, each start is the run it would be on its own,
and a killed multi-start run resumes to the uninterrupted result."""

import json

import numpy as np
import pytest

from faml_tomo.averaging.align import AlignParams
from faml_tomo.averaging.em import CHECKPOINT_NAME, CONSENSUS_CHECKPOINT_NAME, EMParams, classify
from faml_tomo.averaging.testing import phantom, simulate_subtomograms
from faml_tomo.errors import InputError

FAST = AlignParams(lmax=15, max_candidates=10)


@pytest.fixture(scope="module")
def low_snr_set():
    return simulate_subtomograms([phantom(16, seed=2)], 8, 0.05, (-60, 60), seed=7)


def _kw(**over):
    return {**dict(max_iter=3, tol=0, seed=5, align=FAST, n_voronoi=500, chunk_size=4), **over}


def _same(a, b):
    assert np.array_equal(a.averages, b.averages)
    assert np.array_equal(a.rotations, b.rotations)
    assert a.log_likelihood == b.log_likelihood


def test_starts_return_the_highest_log_likelihood(low_snr_set):
    sim = low_snr_set
    res = classify(sim.volumes, sim.tilt_range, **_kw(starts=3))
    alone = [classify(sim.volumes, sim.tilt_range, **_kw(start=s)) for s in range(3)]
    finals = [a.log_likelihood[-1] for a in alone]
    # each start is the run it would be on its own; they differ
    assert res.start_log_likelihoods == finals
    assert len(set(finals)) == 3
    assert res.start == int(np.argmax(finals))
    _same(res, alone[res.start])
    # start 0 is the plain run with the same seed
    _same(alone[0], classify(sim.volumes, sim.tilt_range, **_kw()))
    assert EMParams(seed=5, start=0).run_seed() == 5
    assert EMParams(seed=5, start=1).run_seed() != EMParams(seed=5, start=2).run_seed()


def test_killed_starts_resume_and_a_plain_run_continues_as_start_one(tmp_path, low_snr_set):
    sim = low_snr_set
    whole = classify(sim.volumes, sim.tilt_range, **_kw(starts=2))

    class Killed(Exception):
        pass

    def kill(state):
        if state.iteration == 2:
            raise Killed

    ck = tmp_path / "run"
    with pytest.raises(Killed):
        classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, callback=kill, **_kw(starts=2))
    assert (ck / CHECKPOINT_NAME).is_file()
    assert (ck / "faml_checkpoint_start2.npz").is_file()
    seen = []
    resumed = classify(
        sim.volumes, sim.tilt_range, checkpoint_dir=ck, callback=seen.append, **_kw(starts=2)
    )
    _same(resumed, whole)
    # the restored best state, then iteration 3's best
    assert [s.iteration for s in seen] == [2, 3]

    # one iteration per call, as the protocol's steps run it
    steps = tmp_path / "steps"
    for it in (1, 2, 3):
        stepped = classify(
            sim.volumes, sim.tilt_range, checkpoint_dir=steps, **_kw(starts=2, max_iter=it)
        )
    _same(stepped, whole)

    plain = tmp_path / "plain"
    classify(sim.volumes, sim.tilt_range, checkpoint_dir=plain, **_kw(max_iter=2))
    more = classify(sim.volumes, sim.tilt_range, checkpoint_dir=plain, **_kw(starts=2))
    _same(more, whole)


def test_a_start_left_behind_catches_up_and_starts_stop_together(tmp_path, low_snr_set):
    """A kill between two starts' checkpoints leaves one an iteration behind:
    it catches up before the others go on (the callback sees only passes
    where all starts are at the same iteration).  Starts stop together, once
    all have converged."""
    from faml_tomo.averaging.em.starts import _go_on

    sim = low_snr_set
    ck = tmp_path / "run"
    classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, **_kw(max_iter=2))
    classify(sim.volumes, sim.tilt_range, checkpoint_dir=ck, **_kw(start=1, max_iter=1))
    seen = []
    res = classify(
        sim.volumes, sim.tilt_range, checkpoint_dir=ck, callback=seen.append, **_kw(starts=2)
    )
    _same(res, classify(sim.volumes, sim.tilt_range, **_kw(starts=2)))
    assert [s.iteration for s in seen][1:] == [2, 3]  # after the restored state

    class S:
        def __init__(self, iteration, converged):
            self.iteration, self.converged = iteration, converged

    assert _go_on([S(2, True), S(1, True)], 5)  # one behind
    assert _go_on([S(2, True), S(2, False)], 5)  # not all converged
    assert not _go_on([S(2, True), S(2, True)], 5)
    assert not _go_on([S(5, False), S(5, False)], 5)


def test_starts_with_classes_run_their_own_consensus(tmp_path):
    a, b = phantom(16, seed=3), phantom(16, seed=4)
    sim = simulate_subtomograms([a, b], 6, 0.5, (-60, 60), seed=5, max_shift=1.0)
    kw = _kw(n_classes=2, consensus_iterations=2, max_iter=2, starts=2)
    res = classify(sim.volumes, sim.tilt_range, checkpoint_dir=tmp_path, **kw)
    assert (tmp_path / CONSENSUS_CHECKPOINT_NAME).is_file()
    assert (tmp_path / "faml_consensus_checkpoint_start2.npz").is_file()
    alone = classify(sim.volumes, sim.tilt_range, **{**kw, "starts": 1, "start": res.start})
    _same(res, alone)


def test_starts_are_checked_and_reported(tmp_path, low_snr_set):
    sim = low_snr_set
    with pytest.raises(InputError, match="starts"):
        classify(sim.volumes, sim.tilt_range, starts=0)
    from faml_tomo.averaging.outputs import _write_history

    res = classify(sim.volumes, sim.tilt_range, **_kw(starts=2, max_iter=1))
    hist = _write_history(tmp_path, res)
    assert json.loads((tmp_path / "history.json").read_text()) == hist
    assert hist["start"] == res.start
    assert hist["start_log_likelihoods"] == res.start_log_likelihoods


def test_classify_cli_starts(tmp_path, capsys):
    """``faml-tomo classify --starts 2``: the kept start in history.json and
    job.json; ``--restart`` removes every start's checkpoint; a bad count
    is refused with a message."""
    from faml_tomo.cli import main
    from faml_tomo.tests.test_averaging_cli import _write_set

    _write_set(tmp_path)
    out = tmp_path / "out"
    argv = ["classify", "--star", str(tmp_path / "in.star"), "--out", str(out)]
    argv += ["--iterations", "2", "--lmax", "15", "--voronoi-samples", "300", "--starts", "2"]
    assert main(argv) == 0
    hist = json.loads((out / "history.json").read_text())
    assert f"start {hist['start'] + 1} of 2 kept" in capsys.readouterr().out
    lls = hist["start_log_likelihoods"]
    assert len(lls) == 2 and hist["start"] == int(np.argmax(lls))
    assert hist["log_likelihood"][-1] == max(lls)
    job = json.loads((out / "job.json").read_text())
    assert job["parameters"]["starts"] == 2 and job["results"]["start"] == hist["start"]
    assert (out / "faml_checkpoint_start2.npz").is_file()
    assert main(argv + ["--restart", "--iterations", "1"]) == 0
    assert len(json.loads((out / "history.json").read_text())["log_likelihood"]) == 1
    capsys.readouterr()
    assert main(argv[:-1] + ["0"]) != 0
    assert "--starts must be >= 1" in capsys.readouterr().err


def test_protocol_summary_names_the_kept_start():
    from faml_tomo.protocols.classify_summary import summary_lines

    hist = {
        "iterations": 2,
        "converged": False,
        "n_particles": 6,
        "n_classes": 1,
        "class_sizes": [[6], [6]],
        "log_likelihood": [-12.0, -10.0],
        "start": 1,
        "start_log_likelihoods": [-11.0, -10.0],
    }
    kw = dict(
        mode="FAML",
        max_iterations=2,
        finished=True,
        voxel_size=10.0,
        focused=False,
        symmetry="C1",
        use_references=False,
        c1_iterations=0,
    )
    lines = summary_lines(hist, **kw)
    assert any(line.startswith("Independent starts: start 2 of 2 kept") for line in lines)
    one = {k: v for k, v in hist.items() if not k.startswith("start")}
    assert not any("Independent starts" in line for line in summary_lines(one, **kw))
