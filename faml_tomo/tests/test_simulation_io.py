"""STAR helpers, simulation writers and the ``faml-tomo simulate`` command."""

import json

import mrcfile
import numpy as np
import pytest

from faml_tomo.cli import main
from faml_tomo.geometry import euler_to_matrix
from faml_tomo.io.mrc import read_mrc
from faml_tomo.io.star import (
    StarError,
    read_star,
    read_star_blocks,
    star_block_names,
    write_star,
    write_star_blocks,
)
from faml_tomo.tests.helpers import requires_shared, structure_path

# ------------------------------------------------------------------- STAR


def test_star_round_trip_columns_and_types(tmp_path):
    path = tmp_path / "t.star"
    write_star(
        path,
        {
            "rlnImageName": ["a.mrc", "b c.mrc", ""],
            "rlnAngleRot": np.array([1.5, -2e-5, 1e8]),
            "rlnClassNumber": np.array([1, 2, 3]),
            "mixed": [1, 2.5, 3],
        },
        "particles",
    )
    got = read_star(path)
    assert list(got) == ["rlnImageName", "rlnAngleRot", "rlnClassNumber", "mixed"]
    assert got["rlnImageName"].tolist() == ["a.mrc", "b c.mrc", ""]
    np.testing.assert_allclose(got["rlnAngleRot"], [1.5, -2e-5, 1e8], rtol=1e-6)
    assert got["rlnClassNumber"].dtype == np.int64
    assert got["mixed"].dtype == np.float64
    text = path.read_text()
    assert "data_particles" in text and "loop_" in text and "_rlnImageName" in text


def test_star_rows_blocks_and_pairs(tmp_path):
    path = tmp_path / "m.star"
    write_star_blocks(
        path,
        {
            "general": {"rlnTomoName": "TS 01", "rlnTomoSizeX": 512},
            "optics": {"rlnOpticsGroup": [1], "rlnVoltage": [300.0]},
            "particles_extra": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
            "particles": {"rlnCoordinateX": [1.0, 2.0]},
            "empty": {"x": [], "y": []},
        },
    )
    assert star_block_names(path) == ["general", "optics", "particles_extra", "particles", "empty"]
    blocks = read_star_blocks(path)
    assert blocks["general"] == {"rlnTomoName": "TS 01", "rlnTomoSizeX": 512}
    assert blocks["particles_extra"]["b"].tolist() == ["x", "y"]
    assert blocks["empty"]["x"].size == 0
    # default block: "particles", not the earlier "particles_extra"
    np.testing.assert_allclose(read_star(path)["rlnCoordinateX"], [1.0, 2.0])
    assert read_star(path, "optics")["rlnVoltage"][0] == 300.0
    forced = read_star(path, "particles_extra", dtypes={"a": str})
    assert forced["a"].tolist() == ["1", "2"]


def test_star_reads_relion_style_headers(tmp_path):
    path = tmp_path / "r.star"
    path.write_text(
        "# RELION\n\ndata_particles\n\nloop_\n_rlnImageName #1\n"
        "_rlnAngleRot #2\n000001@stack.mrcs 10.5\n000002@stack.mrcs -3\n"
    )
    got = read_star(path)
    assert got["rlnImageName"].tolist() == ["000001@stack.mrcs", "000002@stack.mrcs"]
    np.testing.assert_allclose(got["rlnAngleRot"], [10.5, -3])


def test_star_errors(tmp_path):
    with pytest.raises(StarError, match="no such file"):
        read_star(tmp_path / "missing.star")
    path = write_star(tmp_path / "a.star", {"x": [1]}, "one")
    with pytest.raises(StarError, match="no block data_two; blocks present: data_one"):
        read_star(path, "two")
    with pytest.raises(StarError, match="different lengths"):
        write_star(tmp_path / "b.star", {"x": [1, 2], "y": [1]})
    assert not (tmp_path / "b.star").exists()  # atomic: nothing left behind
    bad = tmp_path / "bad.star"
    bad.write_text("data_\nloop_\n_x\n_y\n1 2 3\n")
    with pytest.raises(StarError, match="3 values for 2 columns"):
        read_star(bad)
    with pytest.raises(StarError, match="not a STAR file"):
        (tmp_path / "empty.star").write_text("")
        read_star(tmp_path / "empty.star")


# -------------------------------------------------------------------- CLI


def test_cli_simulate_subtomograms(tmp_path, capsys):
    out = tmp_path / "sub"
    rc = main(
        [
            "simulate",
            "subtomograms",
            "--structure",
            "ring7",
            "ring7_cap",
            "--count",
            "3",
            "2",
            "--box",
            "24",
            "--pixel-size",
            "20",
            "--snr",
            "0.05",
            "--seed",
            "4",
            "--write-clean",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert "wrote 5 subtomograms" in capsys.readouterr().out
    blocks = read_star_blocks(out / "particles.star")
    optics, parts = blocks["optics"], blocks["particles"]
    assert optics["rlnImagePixelSize"][0] == 20.0 and optics["rlnImageSize"][0] == 24
    assert optics["rlnImageDimensionality"][0] == 3
    for label in (
        "rlnImageName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnCoordinateZ",
        "rlnAngleRot",
        "rlnAngleTilt",
        "rlnAnglePsi",
        "rlnOriginXAngst",
        "rlnOriginYAngst",
        "rlnOriginZAngst",
        "rlnClassNumber",
        "famlR11",
        "famlShiftXPx",
        "famlSnr",
        "rlnDefocusU",
    ):
        assert parts[label].size == 5, label
    assert sorted(np.bincount(parts["rlnClassNumber"])[1:].tolist()) == [2, 3]
    np.testing.assert_allclose(parts["rlnDefocusU"], 60000.0)  # 6 µm underfocus
    # Euler angles and matrix columns describe the same rotation
    mats = np.stack([[parts[f"famlR{i}{j}"] for j in (1, 2, 3)] for i in (1, 2, 3)])
    mats = mats.transpose(2, 0, 1)
    eul = np.column_stack([parts["rlnAngleRot"], parts["rlnAngleTilt"], parts["rlnAnglePsi"]])
    np.testing.assert_allclose(euler_to_matrix(eul), mats, atol=1e-5)
    # RELION moves the particle by its origin onto the reference: origin = -t
    np.testing.assert_allclose(parts["rlnOriginXAngst"], -20 * parts["famlShiftXPx"], atol=1e-4)
    np.testing.assert_allclose(parts["famlSnr"], 0.05, rtol=1e-3)
    vol, px = read_mrc(out / parts["rlnImageName"][0])
    assert vol.shape == (24, 24, 24) and px == pytest.approx(20.0)
    assert (out / "references" / "ring7_cap.mrc").exists()
    assert len(list((out / "clean").glob("*.mrc"))) == 5
    job = json.loads((out / "job.json").read_text())
    assert job["command"] == "simulate subtomograms" and job["seed"] == 4
    assert job["parameters"]["resolved"]["snr"] == 0.05
    # Same seed, same files
    out2 = tmp_path / "sub2"
    main(
        [
            "simulate",
            "subtomograms",
            "--structure",
            "ring7",
            "ring7_cap",
            "--count",
            "3",
            "2",
            "--box",
            "24",
            "--snr",
            "0.05",
            "--seed",
            "4",
            "--out",
            str(out2),
        ]
    )
    a, _ = read_mrc(out / "subtomograms" / "subtomo_000002.mrc")
    b, _ = read_mrc(out2 / "subtomograms" / "subtomo_000002.mrc")
    np.testing.assert_array_equal(a, b)


@requires_shared
def test_cli_simulate_subtomograms_from_map(tmp_path):
    rc = main(
        [
            "simulate",
            "subtomograms",
            "--structure",
            str(structure_path("1bxn")),
            "--count",
            "2",
            "--box",
            "24",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert read_star(tmp_path / "particles.star")["famlClassName"].tolist() == ["1bxn"] * 2


def test_cli_simulate_tomogram(tmp_path, capsys):
    out = tmp_path / "tomo"
    rc = main(
        [
            "simulate",
            "tomogram",
            "--size",
            "96",
            "80",
            "--thickness",
            "40",
            "--slab-thickness",
            "500",
            "--beads",
            "3",
            "--tilt-range",
            "-50",
            "60",
            "--tilt-step",
            "5",
            "--misalignment",
            "birds",
            "--magnitude",
            "27",
            "--binning",
            "2",
            "--bead-boxes",
            "16",
            "--seed",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    with mrcfile.open(out / "TS_01.mrcs") as m:
        assert m.data.shape == (23, 80, 96) and m.is_image_stack()
    angles = np.loadtxt(out / "TS_01.tlt")
    np.testing.assert_allclose(angles, np.arange(-50, 61, 5))
    tilts = read_star(out / "TS_01_tilts.star")
    np.testing.assert_allclose(tilts["famlMisalignYAngst"], np.linspace(-27, 27, 23), atol=1e-5)
    tomo, px = read_mrc(out / "TS_01.mrc")
    assert tomo.shape == (20, 40, 48) and px == pytest.approx(30.0)
    beads = read_star(out / "TS_01_beads.star")
    full = np.column_stack([beads["famlFullResX"], beads["famlFullResY"], beads["famlFullResZ"]])
    np.testing.assert_allclose(beads["rlnCoordinateX"], (full[:, 0] - 0.5) / 2, atol=1e-5)
    assert np.loadtxt(out / "TS_01_beads.txt").shape == (3, 3)
    assert len(list((out / "beads").glob("*.mrc"))) == 3
    job = json.loads((out / "job.json").read_text())
    assert job["parameters"]["misalignment_model"]["kind"] == "birds"
    assert len(job["results"]["misalign_y_angst"]) == 23


def test_cli_simulate_general_misalignment(tmp_path):
    rc = main(
        [
            "simulate",
            "tomogram",
            "--size",
            "64",
            "64",
            "--thickness",
            "32",
            "--slab-thickness",
            "400",
            "--beads",
            "2",
            "--tilt-step",
            "15",
            "--no-tomogram",
            "--misalign-angle",
            "1",
            "0",
            "0",
            "0",
            "0",
            "0",
            "0.5",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert not (tmp_path / "TS_01.mrc").exists()
    rot = read_star(tmp_path / "TS_01_tilts.star")["famlMisalignRotDeg"]
    assert rot.size == 9 and rot.std() > 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["subtomograms", "--snr", "0"], "snr must be > 0"),
        (["subtomograms", "--snr", "-0.5"], "snr must be > 0"),
        (["subtomograms", "--box", "8", "--pixel-size", "20"], "box of 8 px is smaller than"),
        (["subtomograms", "--tilt-range", "-95", "60"], "[-90, 90]"),
        (["subtomograms", "--structure", "nothing.mrc"], "neither a phantom"),
        (["subtomograms", "--count", "2", "2"], "2 particle counts given for 1 structures"),
        (["tomogram", "--bead-diameter", "2000"], "larger than the slab thickness"),
        (["tomogram", "--tilt-range", "-60", "100"], "[-90, 90]"),
        (["tomogram", "--slab-thickness", "5000"], "exceeds the tomogram thickness"),
        (["tomogram", "--misalignment", "bananas"], "needs a non-zero --magnitude"),
        (
            [
                "tomogram",
                "--misalignment",
                "twisters",
                "--magnitude",
                "1",
                "--misalign-x",
                "1",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
            ],
            "exclusive",
        ),
        (["tomogram", "--dose", "0"], "dose must be > 0"),
    ],
)
def test_cli_simulate_bad_parameters(tmp_path, capsys, argv, message):
    rc = main(["simulate", *argv, "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "faml-tomo simulate: error:" in err and message in err
    assert not (tmp_path / "job.json").exists()
