"""``faml-tomo classify`` end to end on a few simulated subtomograms."""

import json

import numpy as np

from faml_tomo.averaging.testing import phantom, simulate_subtomograms
from faml_tomo.cli import main
from faml_tomo.geometry import euler_to_matrix, rotation_angle_deg
from faml_tomo.io import write_mrc
from faml_tomo.io.star import read_star, write_star


def _write_set(folder, n=6, seed=3):
    sim = simulate_subtomograms([phantom(20, seed=2)], n, 1.0, (-60, 60), seed=seed)
    names = []
    for i, v in enumerate(sim.volumes):
        write_mrc(folder / f"p{i:02d}.mrc", v.astype(np.float32), 20.0)
        names.append(f"p{i:02d}.mrc")
    write_star(folder / "in.star", {"rlnImageName": names}, "particles")
    return sim


def test_classify_cli_outputs_and_resume(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _write_set(data)
    out = tmp_path / "out"
    argv = [
        "classify",
        "--star",
        str(data / "in.star"),
        "--out",
        str(out),
        "--iterations",
        "2",
        "--lmax",
        "23",
        "--voronoi-samples",
        "500",
        "--seed",
        "4",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "iteration 1/2" in printed and "iteration 2/2" in printed
    assert (out / "class_01.mrc").exists()
    star = read_star(out / "particles.star")
    assert len(star["rlnClassNumber"]) == 6 and set(star["rlnClassNumber"]) == {1}
    job = json.loads((out / "job.json").read_text())
    assert job["seed"] == 4 and job["command"] == "classify"
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["log_likelihood"]) == 2
    assert hist["band_radius"][0] == 3  # frequency marching from n/8 (>= 3)
    assert "band 3 shells" in printed
    # Same command again: resumes from the checkpoint, nothing left to do.
    assert main(argv) == 0
    assert "iteration 1/2" not in capsys.readouterr().out


def test_classify_cli_transforms_in_relion_convention(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    sim = _write_set(data)
    ref = write_mrc(tmp_path / "ref.mrc", phantom(20, seed=2).astype(np.float32), 20.0)
    out = tmp_path / "out"
    assert (
        main(
            [
                "classify",
                "--folder",
                str(data),
                "--out",
                str(out),
                "--iterations",
                "1",
                "--lmax",
                "23",
                "--references",
                str(ref),
            ]
        )
        == 0
    )
    star = read_star(out / "particles.star")
    rot = euler_to_matrix(
        np.stack([star["rlnAngleRot"], star["rlnAngleTilt"], star["rlnAnglePsi"]], 1)
    )
    assert np.median(rotation_angle_deg(rot, sim.rotations)) < 5
    shift = -np.stack([star[f"rlnOrigin{a}Angst"] for a in "XYZ"], 1) / 20.0
    assert np.median(np.linalg.norm(shift - sim.shifts, axis=1)) < 0.5


def test_classify_cli_bad_input(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    assert main(["classify", "--folder", str(folder), "--out", str(tmp_path / "o")]) == 2
    assert "no .mrc files" in capsys.readouterr().err
    write_mrc(folder / "a.mrc", np.zeros((8, 8, 8), np.float32) + 1, 10.0)
    write_mrc(folder / "b.mrc", np.random.default_rng(0).normal(size=(8, 8, 8)), 10.0)
    assert (
        main(["classify", "--folder", str(folder), "--out", str(tmp_path / "o"), "--classes", "3"])
        == 2
    )
    assert "exceeds" in capsys.readouterr().err
    assert (
        main(
            [
                "classify",
                "--folder",
                str(folder),
                "--out",
                str(tmp_path / "o"),
                "--start-resolution",
                "15",
            ]
        )
        == 2
    )
    assert "beyond Nyquist" in capsys.readouterr().err


def test_classify_cli_iterations_tilt_columns_mask_and_continue(tmp_path, capsys):
    from faml_tomo.averaging.outputs import (
        finished_iterations,
        iteration_average_path,
        read_history,
        read_iteration,
    )

    data = tmp_path / "data"
    data.mkdir()
    _write_set(data)
    star = read_star(data / "in.star")
    star["famlTiltMin"] = [-60.0, -50.0, -60.0, -45.0, -60.0, -60.0]
    star["famlTiltMax"] = [60.0, 55.0, 60.0, 45.0, 60.0, 60.0]
    write_star(data / "tilt.star", star, "particles")
    z, y, x = np.mgrid[:20, :20, :20] - 10
    mask = np.clip(8.0 - np.sqrt(x**2 + y**2 + z**2), 0, 1).astype(np.float32)
    write_mrc(tmp_path / "mask.mrc", mask, 20.0)
    out = tmp_path / "out"
    argv = [
        "classify",
        "--star",
        str(data / "tilt.star"),
        "--out",
        str(out),
        "--lmax",
        "23",
        "--voronoi-samples",
        "500",
        "--seed",
        "4",
        "--mask",
        str(tmp_path / "mask.mrc"),
    ]
    assert main(argv + ["--iterations", "1"]) == 0
    assert finished_iterations(out) == [1]
    # A larger --iterations continues the same run (the protocol's one step per
    # iteration) and ends where an uninterrupted run ends.
    assert main(argv + ["--iterations", "2"]) == 0
    assert finished_iterations(out) == [1, 2]
    assert iteration_average_path(out, 2, 0).exists()
    hist = read_history(out)
    assert hist["iterations"] == 2 and hist["class_sizes"] == [[6], [6]]
    it2 = read_iteration(out, 2)
    assert it2["averages"].shape == (1, 20, 20, 20) and it2["logliks"].shape == (6,)
    assert np.isclose(it2["logliks"].sum(), hist["log_likelihood"][-1])
    once = tmp_path / "once"
    assert main([a if a != str(out) else str(once) for a in argv] + ["--iterations", "2"]) == 0
    np.testing.assert_allclose(read_iteration(once)["averages"], it2["averages"])
    stars = read_star(out / "particles.star")
    assert "rlnLogLikeliContribution" in stars
    capsys.readouterr()
    # A mask of the wrong size is named.
    write_mrc(tmp_path / "small.mrc", mask[:10, :10, :10], 20.0)
    bad = argv[:-1] + [str(tmp_path / "small.mrc"), "--out", str(tmp_path / "o2")]
    assert main(bad) == 2
    assert "mask box 10x10x10 differs" in capsys.readouterr().err
    del star["famlTiltMax"]
    write_star(data / "half.star", star, "particles")
    assert main(["classify", "--star", str(data / "half.star"), "--out", str(tmp_path / "o3")]) == 2
    assert "famlTiltMax" in capsys.readouterr().err


def test_classify_cli_reports_a_reseeded_class(tmp_path, capsys):
    """A class that lost its subtomograms is re-seeded, said in the progress
    and kept in history.json (same data as the compute test)."""
    sim = simulate_subtomograms(
        [phantom(24, seed=1), phantom(24, seed=2)], 8, 0.5, (-60, 60), seed=4
    )
    data = tmp_path / "data"
    data.mkdir()
    for i, v in enumerate(sim.volumes):
        write_mrc(data / f"p{i:02d}.mrc", v.astype(np.float32), 20.0)
    out = tmp_path / "out"
    argv = [
        "classify",
        "--folder",
        str(data),
        "--out",
        str(out),
        "--classes",
        "2",
        "--iterations",
        "4",
        "--voronoi-samples",
        "500",
        "--seed",
        "4",
        "--init",
        "random",
        "--shared-candidates",
        "0",
    ]  # the start that starves
    assert main(argv) == 0
    assert "re-seeded before this iteration" in capsys.readouterr().out
    hist = json.loads((out / "history.json").read_text())
    assert hist["reseeded"] and hist["reseeded"][0]["subtomograms"] >= 3
    assert min(hist["class_sizes"][-1]) >= 3
    assert main(argv + ["--restart", "--min-class-size", "0"]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert hist["reseeded"] == []


def test_classify_cli_symmetry_flag(tmp_path, capsys):
    """``--symmetry``: a bad name is exit code 2 with the accepted forms; a
    C2 run imposes it after ``--c1-iterations`` and records it in job.json."""
    data = tmp_path / "data"
    data.mkdir()
    _write_set(data)
    out = tmp_path / "out"
    base = [
        "classify",
        "--star",
        str(data / "in.star"),
        "--out",
        str(out),
        "--lmax",
        "23",
        "--voronoi-samples",
        "500",
    ]
    assert main(base + ["--symmetry", "C0", "--iterations", "2"]) == 2
    assert "symmetry 'C0'" in capsys.readouterr().err
    assert main(base + ["--symmetry", "c2", "--iterations", "2", "--c1-iterations", "1"]) == 0
    job = json.loads((out / "job.json").read_text())
    assert job["parameters"]["symmetry"] == "c2" and job["parameters"]["c1_iterations"] == 1
    from faml_tomo.averaging.symmetry import symmetry_group
    from faml_tomo.averaging.symmetry_frame import symmetry_score
    from faml_tomo.io import read_mrc

    avg = read_mrc(out / "class_01.mrc")[0]
    assert symmetry_score(avg, symmetry_group("C2")) > 0.98  # imposed in iteration 2


def test_classify_cli_focus_mask_of_the_wrong_box_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _write_set(data)
    focus = write_mrc(tmp_path / "focus.mrc", np.ones((16, 16, 16), np.float32), 20.0)
    argv = [
        "classify",
        "--star",
        str(data / "in.star"),
        "--out",
        str(tmp_path / "out"),
        "--iterations",
        "1",
        "--lmax",
        "23",
        "--focus-mask",
        str(focus),
    ]
    assert main(argv) == 2
    assert "mask has shape (16, 16, 16)" in capsys.readouterr().err


def test_classify_cli_gold_standard_writes_subsets_class_fsc_and_the_resolution(tmp_path, capsys):
    """``--gold-standard``: RELION's rlnRandomSubset in the STAR file, the
    per-class FSC in the iteration files, its kind in the history, and the
    resolution (or that there is none beyond the shared shells) printed."""
    data = tmp_path / "data"
    data.mkdir()
    _write_set(data, n=8)
    out = tmp_path / "out"
    argv = [
        "classify",
        "--star",
        str(data / "in.star"),
        "--out",
        str(out),
        "--lmax",
        "23",
        "--voronoi-samples",
        "500",
        "--iterations",
        "2",
        "--gold-standard",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "class 1: gold-standard resolution (FSC 0.143)" in printed
    star = read_star(out / "particles.star")
    assert sorted(star["rlnRandomSubset"]) == [1] * 4 + [2] * 4
    hist = json.loads((out / "history.json").read_text())
    assert hist["gold_standard"] and hist["fsc_level"] == 0.143
    assert hist["fsc_kind"].startswith("gold-standard") and hist["join_radius"] == 3
    assert len(hist["class_fsc_radius"]) == 1
    from faml_tomo.averaging.outputs import read_iteration

    it = read_iteration(out, averages=False)
    assert it["fsc_classes"].shape == (1, len(it["fsc"]))
    np.testing.assert_array_equal(it["subsets"], star["rlnRandomSubset"])
    job = json.loads((out / "job.json").read_text())
    assert job["parameters"]["gold_standard"] is True
