"""Misalignment detection on whole tomograms: compute path and the
``faml-tomo detect-misalignment`` / ``train-misalignment`` command lines.

Networks here are freshly initialised (weights random but seeded) so the
tests check the plumbing, not the trained accuracy (see
benchmarks/bench_misalignment.py and the model card for that)."""

import numpy as np
import pytest

from faml_tomo.cli import main
from faml_tomo.errors import InputError
from faml_tomo.io import write_mrc
from faml_tomo.io.star import read_star, write_star
from faml_tomo.misalignment.detect import sampling_warnings, score_tomogram
from faml_tomo.simulation import (
    AcquisitionParams,
    SlabParams,
    misalignment_preset,
    reconstruct_wbp,
    simulate_tilt_series,
)


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    from faml_tomo.models.network import build_network
    from faml_tomo.tfutil import import_tensorflow

    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("models")
    for name in ("strong", "weak"):
        build_network(name).save(str(folder / f"{name}.keras"))
    return folder


@pytest.fixture(scope="module")
def tomo_files(tmp_path_factory):
    """Two small simulated tomograms with their bead STAR files."""
    folder = tmp_path_factory.mktemp("tomos")
    out = []
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
        acq = AcquisitionParams(tilt_step=4)
        ts = simulate_tilt_series(sp, acq, misalignment_preset(kind, mag, 31), rng=i)
        tomo = reconstruct_wbp(ts.images, ts.angles, sp.nz)
        name = f"TS_{i + 1:02d}"
        write_mrc(folder / f"{name}.mrc", tomo, 15.0)
        write_star(
            folder / f"{name}_beads.star",
            {
                "rlnTomoName": [name] * len(ts.beads),
                "rlnCoordinateX": ts.beads[:, 0],
                "rlnCoordinateY": ts.beads[:, 1],
                "rlnCoordinateZ": ts.beads[:, 2],
            },
            "beads",
        )
        out.append((folder / f"{name}.mrc", folder / f"{name}_beads.star", ts.beads))
    return out


class _FixedScorer:
    """Scores from a function of the box index (no TensorFlow)."""

    def __init__(self, strong, weak):
        self.s, self.w = strong, weak

    def score(self, boxes, scale, weak=True):
        n = len(boxes)
        return np.full(n, self.s, np.float32), np.full(n, self.w, np.float32)


def test_score_tomogram_keeps_every_coordinate_in_order():
    tomo = np.random.default_rng(0).normal(size=(40, 64, 64)).astype(np.float32)
    coords = [(32, 32, 20), (1, 2, 3), (63, 63, 39), (30, 20, 10)]
    r = score_tomogram("t", tomo, coords, 15.0, 100.0, _FixedScorer(0.9, 0.2), weak_threshold=0.5)
    assert len(r.strong) == len(r.weak) == 4
    np.testing.assert_array_equal(r.coords, np.asarray(coords, float))
    assert r.outside_fraction[1] > 0 and r.outside_fraction[0] == 0
    # the two corner boxes are mostly padding: not scored, said why
    assert r.decision.label == "weak" and "not scored" in r.decision.message
    assert np.isnan(r.strong[1]) and np.isnan(r.strong[2]) and r.strong[3] == pytest.approx(0.9)
    assert "outside the tomogram" in r.excluded[1] and r.excluded[0] == ""
    assert list(r.used) == [True, False, False, True] and r.decision.n_excluded == 2
    assert r.verdict == ["weak", "", "", "weak"] and not r.disagree.any()
    assert r.decision.strong_spread == pytest.approx(0.0)
    # no weak threshold: not strongly misaligned -> aligned, weak score reported
    r = score_tomogram("t", tomo, coords, 15.0, 100.0, _FixedScorer(0.9, 0.2))
    assert r.decision.label == "aligned" and r.decision.weak_score == pytest.approx(0.2)
    r = score_tomogram("t", tomo, coords, 15.0, 100.0, _FixedScorer(0.3, 0.9))
    assert r.decision.label == "strong"


class _IndexScorer:
    """Strong score 0.9 for bright-centred boxes, 0.1 otherwise."""

    def score(self, boxes, scale, weak=True):
        c = boxes[:, 14:18, 14:18, 14:18].mean(axis=(1, 2, 3))
        s = np.where(c > 0, 0.9, 0.1).astype(np.float32)
        return s, s.copy()


def test_outside_and_non_finite_boxes_are_excluded_not_scored():
    rng = np.random.default_rng(1)
    tomo = rng.normal(size=(40, 96, 96)).astype(np.float32)
    inside = [(30, 30, 20), (60, 60, 20), (45, 70, 20)]
    for x, y, z in inside:
        tomo[z - 2 : z + 3, y - 2 : y + 3, x - 2 : x + 3] += 20.0  # bright: "aligned"
    far = [(500, 30, 20), (40, -300, 20)]
    r = score_tomogram("t", tomo, inside + far, 20.0, 100.0, _IndexScorer(), weak_threshold=0.5)
    # before: padding-only boxes were scored 0.1 and pulled the mean to 0.58
    assert r.decision.label == "aligned" and r.decision.strong_score == pytest.approx(0.9)
    assert r.decision.n_beads == 3 and r.decision.n_excluded == 2
    assert np.all(np.isnan(r.strong[3:])) and "outside" in r.excluded[3]
    # one NaN voxel in a bead box: that bead is excluded, the rest decide
    bad = tomo.copy()
    bad[20, 30, 31] = np.nan
    r = score_tomogram("t", bad, inside, 20.0, 100.0, _IndexScorer(), weak_threshold=0.5)
    assert r.decision.label == "aligned" and r.decision.n_beads == 2
    assert r.excluded[0] == "non-finite values in the box"
    # nothing usable: unclassified, with the reason
    r = score_tomogram("t", bad, far + [inside[0]], 20.0, 100.0, _IndexScorer(), weak_threshold=0.5)
    assert r.decision.label == "unclassified"
    assert "0 usable bead(s) of 3" in r.decision.message
    assert "2 outside the tomogram" in r.decision.message
    assert "1 with non-finite values" in r.decision.message
    # fewer usable beads than asked for
    r = score_tomogram("t", tomo, inside, 20.0, 100.0, _IndexScorer(), min_beads=4)
    assert r.decision.label == "unclassified" and "at least 4" in r.decision.message
    with pytest.raises(InputError, match="minimum number of beads"):
        score_tomogram("t", tomo, inside, 20.0, 100.0, _IndexScorer(), min_beads=0)


def test_disagreeing_beads_are_counted():
    rng = np.random.default_rng(2)
    tomo = rng.normal(size=(40, 96, 96)).astype(np.float32)
    pts = [(30, 30, 20), (60, 60, 20), (45, 70, 20)]
    for x, y, z in pts[:2]:
        tomo[z - 2 : z + 3, y - 2 : y + 3, x - 2 : x + 3] += 20.0
    r = score_tomogram("t", tomo, pts, 20.0, 100.0, _IndexScorer(), weak_threshold=0.5)
    assert r.decision.label == "aligned"  # mean (0.9 + 0.9 + 0.1) / 3
    assert r.decision.n_disagree == 1 and list(r.disagree) == [False, False, True]
    assert r.decision.strong_spread == pytest.approx(np.std([0.9, 0.9, 0.1]), abs=1e-6)


def test_no_coordinates_is_unclassified_with_a_message():
    tomo = np.zeros((8, 8, 8), np.float32)
    r = score_tomogram("TS_07", tomo, [], 10.0, 100.0, _FixedScorer(1, 1))
    assert r.decision.label == "unclassified"
    assert "TS_07" in r.decision.message and "no fiducial coordinates" in r.decision.message


def test_sampling_warnings():
    assert sampling_warnings(15.0, 100.0) == []
    assert sampling_warnings(7.0, 150.0) == []
    w = sampling_warnings(1.0, 100.0)
    assert any("pixel size 1" in s for s in w) and any("bead spans 100" in s for s in w)
    assert any("bead size 40 nm" in s for s in sampling_warnings(15.0, 400.0))
    # measured, not only trained: 5 nm beads lose aligned tomograms on independent data
    assert any("beads of 5 nm" in s and "model card" in s for s in sampling_warnings(7.0, 50.0))
    assert sampling_warnings(10.0, 100.0) == []
    # fine sampling: weak misalignment is missed more often without CTF correction
    assert any("weak misalignment was missed" in s for s in sampling_warnings(5.0, 100.0))
    assert not any("weak misalignment" in s for s in sampling_warnings(7.0, 100.0))


def test_bad_parameters():
    tomo = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(InputError, match="criterion"):
        score_tomogram("t", tomo, [], 10.0, 100.0, _FixedScorer(1, 1), criterion="max")
    with pytest.raises(InputError, match="weak threshold"):
        score_tomogram("t", tomo, [], 10.0, 100.0, _FixedScorer(1, 1), weak_threshold=2)


def test_cli_detect_writes_scores_decisions_and_job(tmp_path, tomo_files, random_models, capsys):
    (t1, s1, b1), (t2, s2, _) = tomo_files
    out = tmp_path / "out"
    rc = main(
        [
            "detect-misalignment",
            str(t1),
            str(t2),
            "--coords",
            str(s1),
            str(s2),
            "--bead-size-nm",
            "10",
            "--weak-threshold",
            "0.5",
            "--models",
            str(random_models),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    scores = read_star(out / "scores.star")
    assert len(scores["famlStrongScore"]) == 10
    np.testing.assert_allclose(scores["rlnCoordinateX"][:5], b1[:, 0], atol=1e-4)
    assert np.all((scores["famlStrongScore"] >= 0) & (scores["famlStrongScore"] <= 1))
    tomos = read_star(out / "tomograms.star")
    assert list(tomos["rlnTomoName"]) == ["TS_01", "TS_02"]
    assert set(tomos["famlMisalignment"]) <= {"aligned", "weak", "strong"}
    # the same networks give the same scores (batched, deterministic)
    np.testing.assert_allclose(
        tomos["famlStrongScore"][0], scores["famlStrongScore"][:5].mean(), atol=1e-5
    )
    assert (out / "job.json").is_file()
    printed = capsys.readouterr().out
    assert "2 tomogram(s)" in printed and "disagree" in printed
    # each decision explained: beads used, their verdicts, who disagrees
    assert set(scores["famlUsed"]) == {1}
    assert set(scores["famlBeadVerdict"]) <= {"aligned", "weak", "strong"}
    verdicts = np.asarray(scores["famlBeadVerdict"][:5]).astype(str)
    label0 = list(tomos["famlMisalignment"])[0]
    assert int(tomos["famlBeadsDisagreeing"][0]) == int(np.sum(verdicts != label0))
    assert float(tomos["famlStrongSpread"][0]) == pytest.approx(
        np.std(scores["famlStrongScore"][:5]), abs=1e-4
    )
    assert list(tomos["famlBeadsExcluded"]) == [0, 0]
    # the recorded job replays to the same files
    again = tmp_path / "again"
    assert main(["run", str(out / "job.json"), "--out", str(again)]) == 0
    for name in ("scores.star", "tomograms.star"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


def test_cli_detect_matches_by_name_and_reports_missing(
    tmp_path, tomo_files, random_models, capsys
):
    (t1, s1, _), (t2, _, _) = tomo_files
    out = tmp_path / "out"
    # one STAR for two tomograms: matched by rlnTomoName; TS_02 has none
    rc = main(
        [
            "detect-misalignment",
            str(t1),
            str(t2),
            "--coords",
            str(s1),
            "--models",
            str(random_models),
            "--out",
            str(out),
            "--criterion",
            "votes",
        ]
    )
    assert rc == 0
    tomos = read_star(out / "tomograms.star")
    assert list(tomos["famlMisalignment"])[1] == "unclassified"
    assert "no fiducial coordinates" in list(tomos["famlMessage"])[1]
    assert "unclassified" in capsys.readouterr().out


def test_cli_missing_or_corrupt_weights_name_the_file(tmp_path, tomo_files, capsys):
    (t1, s1, _), _ = tomo_files
    rc = main(
        [
            "detect-misalignment",
            str(t1),
            "--coords",
            str(s1),
            "--models",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2
    assert str(tmp_path / "strong.keras") in capsys.readouterr().err
    (tmp_path / "strong.keras").write_bytes(b"not a keras file")
    (tmp_path / "weak.keras").write_bytes(b"not a keras file")
    rc = main(
        [
            "detect-misalignment",
            str(t1),
            "--coords",
            str(s1),
            "--models",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "strong.keras" in err and "cannot load" in err


def test_cli_bad_input(tmp_path, tomo_files, random_models, capsys):
    (t1, s1, _), _ = tomo_files
    rc = main(
        [
            "detect-misalignment",
            str(t1),
            "--coords",
            str(s1),
            "--models",
            str(random_models),
            "--out",
            str(tmp_path),
            "--strong-threshold",
            "1.5",
        ]
    )
    assert rc == 2 and "strong threshold" in capsys.readouterr().err
    rc = main(
        [
            "detect-misalignment",
            str(tmp_path / "nope.mrc"),
            "--coords",
            str(s1),
            "--models",
            str(random_models),
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 2 and "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.star"
    write_star(bad, {"rlnTomoName": ["x"], "rlnCoordinateX": [1.0]}, "b")
    rc = main(
        [
            "detect-misalignment",
            str(t1),
            "--coords",
            str(bad),
            "--models",
            str(random_models),
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 2 and "rlnCoordinateZ" in capsys.readouterr().err


def test_cli_train_help(capsys):
    with pytest.raises(SystemExit):
        main(["train-misalignment", "--help"])
    text = capsys.readouterr().out
    for opt in ("--out", "--seed", "--n-tomograms", "--epochs", "--cache", "--resume"):
        assert opt in text
