"""``faml-tomo peak-high-contrast``: STAR/text coordinates, job record,
exit codes on bad input."""

import json

import numpy as np
import pytest

from faml_tomo.cli import main
from faml_tomo.fiducials import box_inside, match_points
from faml_tomo.fiducials.phantom import bead_phantom
from faml_tomo.io import write_mrc
from faml_tomo.io.star import read_star


@pytest.fixture(scope="module")
def tomograms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tomos")
    with_beads = bead_phantom(
        shape=(80, 128, 128), n_beads=12, n_proteins=800, slab=(0.3, 0.7), seed=11
    )
    without = bead_phantom(shape=(80, 128, 128), n_beads=0, n_proteins=800, seed=12)
    a = write_mrc(folder / "TS_01.mrc", with_beads.volume, 10.0)
    b = write_mrc(folder / "TS_02.mrc", without.volume, 10.0)
    return a, b, with_beads


def test_cli_writes_star_text_and_job_record(tomograms, tmp_path, capsys):
    a, b, ph = tomograms
    out = tmp_path / "out"
    assert (
        main(["peak-high-contrast", str(a), str(b), "--bead-size-nm", "10", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert "TS_01:" in printed and "TS_02: 0 fiducials" in printed
    star = read_star(out / "coordinates.star", dtypes={"rlnTomoName": str})
    assert set(star) == {
        "rlnTomoName",
        "rlnMicrographName",
        "rlnCoordinateX",
        "rlnCoordinateY",
        "rlnCoordinateZ",
        "rlnAutopickFigureOfMerit",
    }
    assert set(star["rlnTomoName"]) == {"TS_01"}
    xyz = np.column_stack([star[f"rlnCoordinate{c}"] for c in "XYZ"])
    valid = box_inside(ph.beads, ph.volume.shape, 32)
    m = match_points(xyz, ph.beads, 5.0, valid)
    assert m["recall"] >= 0.9 and m["fp"] == 0, m
    assert np.all(star["rlnAutopickFigureOfMerit"] > 0.1)
    per_tomo = read_star(out / "TS_01.star")
    np.testing.assert_allclose(per_tomo["rlnCoordinateX"], star["rlnCoordinateX"])
    np.testing.assert_allclose(np.loadtxt(out / "TS_01.txt").reshape(-1, 3), xyz, atol=0.01)
    assert (out / "TS_02.txt").read_text() == ""
    assert len(read_star(out / "TS_02.star").get("rlnCoordinateX", [])) == 0
    job = json.loads((out / "job.json").read_text())
    assert job["command"] == "peak-high-contrast"
    assert job["parameters"]["bead_diameter_nm"] == 10.0
    assert job["results"]["tomograms"]["TS_01"]["count"] == len(xyz)
    assert job["results"]["tomograms"]["TS_02"]["warnings"]
    assert not list(out.glob(".*tmp*"))  # atomic writes left nothing


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sampling-rate", "50"], "under the minimum of 3"),
        (["--sampling-rate", "1"], "larger than the box"),
        (["--sampling-rate", "-3"], "sampling rate"),
        (["--box-size", "200"], "larger than the tomogram"),
        (["--sd-threshold", "-1"], "SD threshold"),
    ],
)
def test_cli_bad_sizes_exit_2_with_a_message(tomograms, tmp_path, capsys, extra, message):
    a, _, _ = tomograms
    assert main(["peak-high-contrast", str(a), "--out", str(tmp_path)] + extra) == 2
    assert message in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_cli_nan_and_missing_files_exit_2(tmp_path, capsys):
    vol = np.zeros((40, 64, 64), np.float32)
    vol[10, 10, 10] = np.nan
    bad = write_mrc(tmp_path / "nan.mrc", vol, 10.0, check_finite=False)
    assert main(["peak-high-contrast", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "NaN" in capsys.readouterr().err
    assert (
        main(["peak-high-contrast", str(tmp_path / "none.mrc"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "no such file" in capsys.readouterr().err
