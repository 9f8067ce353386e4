"""RELION 4/5 and Warp particle STAR files in and a RELION 5 particle file
out: files written the way those programs write them (column sets of
RELION 5.0 ``Extract subtomos`` / ``Refine3D`` outputs and WarpTools 2
``ts_export_particles --3d``), read by ``faml-tomo classify``; the output
keeps every input column and meets what RELION 5 needs to refine 3D
subtomograms."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from faml_tomo.averaging.testing import phantom, simulate_subtomograms
from faml_tomo.cli import main
from faml_tomo.errors import InputError
from faml_tomo.geometry import euler_to_matrix, rotation_angle_deg, shift_from_origin
from faml_tomo.io import write_mrc
from faml_tomo.io.relion import read_particle_star, tomogram_tilt_ranges
from faml_tomo.io.star import read_star, read_star_blocks, write_star_blocks

VOXEL = 20.0
N = 8


def _volumes(folder, n=N, seed=3):
    sim = simulate_subtomograms([phantom(20, seed=2)], n, 1.0, (-50, 60), seed=seed)
    (folder / "Subtomograms" / "TS_01").mkdir(parents=True)
    names = []
    for i, v in enumerate(sim.volumes):
        name = f"Subtomograms/TS_01/{i + 1}_data.mrc"
        write_mrc(folder / name, v.astype(np.float32), VOXEL)
        write_mrc(folder / name.replace("_data", "_weights"), np.ones((20,) * 3, np.float32), VOXEL)
        names.append(name)
    return sim, names


def _relion5_star(folder, names, extra_general=None):
    """A RELION 5 particle file of 3D pseudo-subtomograms (the column set of
    a RELION 5.0 Refine3D run_data.star)."""
    n = len(names)
    optics = {
        "rlnVoltage": [200.0],
        "rlnSphericalAberration": [2.0],
        "rlnAmplitudeContrast": [0.1],
        "rlnTomoTiltSeriesPixelSize": [5.0],
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["TS_01"],
        "rlnCtfDataAreCtfPremultiplied": [1],
        "rlnImageDimensionality": [3],
        "rlnTomoSubtomogramBinning": [4.0],
        "rlnImagePixelSize": [VOXEL],
        "rlnImageSize": [20],
    }
    rng = np.random.default_rng(0)
    parts = {
        "rlnTomoName": ["TS_01"] * n,
        "rlnCenteredCoordinateXAngst": rng.uniform(-900, 900, n),
        "rlnCenteredCoordinateYAngst": rng.uniform(-900, 900, n),
        "rlnCenteredCoordinateZAngst": rng.uniform(-200, 200, n),
        "rlnAngleRot": np.zeros(n),
        "rlnAngleTilt": np.zeros(n),
        "rlnAnglePsi": np.zeros(n),
        "rlnOpticsGroup": np.ones(n, int),
        "rlnTomoParticleName": [f"TS_01/{i + 1}" for i in range(n)],
        "rlnImageName": names,
        "rlnCtfImage": [s.replace("_data", "_weights") for s in names],
        "rlnOriginXAngst": np.zeros(n),
        "rlnOriginYAngst": np.zeros(n),
        "rlnOriginZAngst": np.zeros(n),
        "rlnGroupNumber": np.ones(n, int),
        "rlnAngleTiltPrior": np.full(n, 90.0),
        "rlnRandomSubset": np.arange(n) % 2 + 1,
    }
    blocks = {
        "general": {"rlnTomoSubTomosAre2DStacks": 0, **(extra_general or {})},
        "optics": optics,
        "particles": parts,
    }
    job = folder / "Refine3D" / "job025"
    job.mkdir(parents=True, exist_ok=True)
    return write_star_blocks(job / "run_data.star", blocks, version=50001), parts


def _tomograms_star(folder):
    ts = folder / "Tomograms" / "job007" / "tilt_series"
    ts.mkdir(parents=True)
    angles = np.arange(-50.0, 61.0, 3.0)
    write_star_blocks(
        ts / "TS_01.star",
        {
            "TS_01": {
                "rlnMicrographName": [f"frames/TS_01_{i:03d}.mrc" for i in range(len(angles))],
                "rlnTomoNominalStageTiltAngle": angles,
                "rlnTomoYTilt": angles + 0.3,
                "rlnMicrographPreExposure": np.arange(len(angles)) * 3.0,
            }
        },
        version=50001,
    )
    return write_star_blocks(
        folder / "Tomograms" / "job007" / "tomograms.star",
        {
            "global": {
                "rlnTomoName": ["TS_01"],
                "rlnVoltage": [200.0],
                "rlnSphericalAberration": [2.0],
                "rlnAmplitudeContrast": [0.1],
                "rlnTomoTiltSeriesPixelSize": [5.0],
                "rlnTomoHand": [-1],
                "rlnTomoSizeX": [4000],
                "rlnTomoSizeY": [4000],
                "rlnTomoSizeZ": [1000],
                "rlnTomoTiltSeriesStarFile": ["Tomograms/job007/tilt_series/TS_01.star"],
            }
        },
        version=50001,
    )


def test_relion5_in_relion5_out_keeps_every_column_and_meets_relion_needs(tmp_path):
    sim, names = _volumes(tmp_path)
    star, parts = _relion5_star(tmp_path, names)
    src = read_particle_star(star)
    assert src.flavour == "relion5" and src.voxel_size == VOXEL
    # RELION's names are relative to the project folder, not to the job's
    assert src.paths[0] == tmp_path / names[0] and src.paths[0].is_file()
    tomos = _tomograms_star(tmp_path)
    assert tomogram_tilt_ranges(tomos) == {"TS_01": (-50.0, 58.0)}  # nominal, not YTilt
    ref = write_mrc(tmp_path / "ref.mrc", phantom(20, seed=2).astype(np.float32), VOXEL)
    out = tmp_path / "out"
    assert (
        main(
            [
                "classify",
                "--star",
                str(star),
                "--tomograms",
                str(tomos),
                "--out",
                str(out),
                "--iterations",
                "3",
                "--lmax",
                "23",
                "--references",
                str(ref),
                "--voronoi-samples",
                "500",
            ]
        )
        == 0
    )
    text = (out / "particles.star").read_text()
    assert text.startswith("# version 50001")
    blocks = read_star_blocks(out / "particles.star", dtypes={"rlnTomoName": str})
    assert list(blocks) == ["general", "optics", "particles"]
    assert blocks["general"]["rlnTomoSubTomosAre2DStacks"] == 0
    optics, res = blocks["optics"], blocks["particles"]
    # what relion_refine needs for 3D subtomograms (ObservationModel / ml_optimiser)
    for col, value in (
        ("rlnImagePixelSize", VOXEL),
        ("rlnVoltage", 200.0),
        ("rlnSphericalAberration", 2.0),
        ("rlnImageDimensionality", 3),
        ("rlnImageSize", 20),
        ("rlnOpticsGroup", 1),
        ("rlnTomoTiltSeriesPixelSize", 5.0),
        ("rlnCtfDataAreCtfPremultiplied", 1),
    ):
        assert optics[col][0] == value, col
    for col in (
        "rlnTomoName",
        "rlnOpticsGroup",
        "rlnTomoParticleName",
        "rlnGroupNumber",
        "rlnRandomSubset",
    ):  # the input's half-sets are kept (no gold standard)
        np.testing.assert_array_equal(res[col], parts[col])
    # names absolute (the new file lives elsewhere) and pointing at the same files
    for col in ("rlnImageName", "rlnCtfImage"):
        assert [Path(p) for p in res[col]] == [tmp_path / v for v in parts[col]]
    assert "rlnAngleTiltPrior" not in res  # priors of replaced poses dropped
    np.testing.assert_allclose(
        res["rlnCenteredCoordinateXAngst"],  # 6 decimals
        parts["rlnCenteredCoordinateXAngst"],
        atol=1e-6,
    )
    assert set(res["rlnClassNumber"]) == {1}
    assert sorted(set(res["rlnRandomSubset"])) == [1, 2]
    # the found transforms, in RELION's meaning, are the simulated ones
    rot = euler_to_matrix(
        np.stack([res["rlnAngleRot"], res["rlnAngleTilt"], res["rlnAnglePsi"]], 1)
    )
    assert np.median(rotation_angle_deg(rot, sim.rotations)) < 6
    shift = shift_from_origin(np.stack([res[f"rlnOrigin{a}Angst"] for a in "XYZ"], 1), VOXEL)
    assert np.median(np.linalg.norm(shift - sim.shifts, axis=1)) < 0.6
    # the tilt range came from the tomograms.star (nominal stage tilts)
    job = json.loads((out / "job.json").read_text())
    assert job["parameters"]["tomograms"].endswith("tomograms.star")
    # the output is valid input again (a round trip), and Scipion's reader takes it
    again = read_particle_star(out / "particles.star")
    assert again.flavour == "relion5" and again.paths == src.paths
    from emtable import Table

    table = Table(fileName=str(out / "particles.star"), tableName="particles")
    assert len(table) == N and "rlnClassNumber" in table.getColumnNames()


def test_warp_3d_subvolumes_in_relion5_out(tmp_path):
    """WarpTools ``ts_export_particles --3d``: one ``data_`` loop, voxel size
    from rlnPixelSize, the tilt series in rlnMicrographName."""
    sim, names = _volumes(tmp_path)
    n = len(names)
    warp = {
        "rlnCoordinateX": np.full(n, 120.5),
        "rlnCoordinateY": np.full(n, 88.0),
        "rlnCoordinateZ": np.full(n, 40.0),
        "rlnAngleRot": np.zeros(n),
        "rlnAngleTilt": np.zeros(n),
        "rlnAnglePsi": np.zeros(n),
        "rlnMicrographName": ["TS_01.tomostar"] * n,
        "rlnMagnification": np.full(n, 10000.0),
        "rlnDetectorPixelSize": np.full(n, VOXEL),
        "rlnCtfMaxResolution": np.full(n, 8.1),
        "rlnImageName": names,
        "rlnCtfImage": [s.replace("_data", "_weights") for s in names],
        "rlnPixelSize": np.full(n, VOXEL),
        "rlnVoltage": np.full(n, 300.0),
        "rlnSphericalAberration": np.full(n, 2.7),
    }
    star = write_star_blocks(tmp_path / "warp.star", {"": warp})  # names relative to it
    src = read_particle_star(star)
    assert src.flavour == "warp" and src.voxel_size == VOXEL and src.optics is None
    out = tmp_path / "out"
    assert (
        main(
            [
                "classify",
                "--star",
                str(star),
                "--out",
                str(out),
                "--iterations",
                "1",
                "--lmax",
                "23",
                "--voronoi-samples",
                "500",
                "--tilt-range",
                "-50",
                "60",
            ]
        )
        == 0
    )
    blocks = read_star_blocks(out / "particles.star", dtypes={"rlnTomoName": str})
    optics, res = blocks["optics"], blocks["particles"]
    assert optics["rlnVoltage"][0] == 300.0 and optics["rlnSphericalAberration"][0] == 2.7
    assert optics["rlnImagePixelSize"][0] == VOXEL and optics["rlnImageDimensionality"][0] == 3
    assert optics["rlnCtfDataAreCtfPremultiplied"][0] == 0  # Warp's are not
    assert list(res["rlnTomoName"]) == ["TS_01.tomostar"] * n  # RELION 5 groups by it
    assert "rlnMagnification" not in res and "rlnCoordinateX" in res
    np.testing.assert_array_equal(res["rlnCtfMaxResolution"], warp["rlnCtfMaxResolution"])


def test_folder_input_gets_a_relion5_file_with_its_own_optics(tmp_path):
    (tmp_path / "data").mkdir()
    sim = simulate_subtomograms([phantom(20, seed=2)], 4, 1.0, (-60, 60), seed=1)
    for i, v in enumerate(sim.volumes):
        write_mrc(tmp_path / "data" / f"p{i}.mrc", v.astype(np.float32), VOXEL)
    out = tmp_path / "out"
    assert (
        main(
            [
                "classify",
                "--folder",
                str(tmp_path / "data"),
                "--out",
                str(out),
                "--iterations",
                "1",
                "--lmax",
                "23",
                "--voronoi-samples",
                "500",
            ]
        )
        == 0
    )
    blocks = read_star_blocks(out / "particles.star")
    assert blocks["optics"]["rlnImagePixelSize"][0] == VOXEL
    assert blocks["optics"]["rlnVoltage"][0] == 300.0  # stated default
    assert len(blocks["particles"]["rlnImageName"]) == 4


@pytest.mark.parametrize(
    "case, message",
    [
        ("stacks", "RELION 5 2D stacks"),
        ("mrcs", "RELION 5 2D stacks"),
        ("turned", "cut in turned frames"),
        ("group", "optics group(s) [2]"),
        ("halftilt", "give both famlTiltMin and famlTiltMax"),
    ],
)
def test_unusable_particle_files_are_refused_with_the_reason(tmp_path, case, message):
    _, names = _volumes(tmp_path, n=2)
    star, parts = _relion5_star(
        tmp_path,
        names,
        extra_general={"rlnTomoSubTomosAre2DStacks": 1} if case == "stacks" else None,
    )
    blocks = read_star_blocks(
        star,
        dtypes={
            "rlnImageName": str,
            "rlnTomoName": str,
            "rlnCtfImage": str,
            "rlnOpticsGroupName": str,
            "rlnTomoParticleName": str,
        },
    )
    p = blocks["particles"]
    if case == "mrcs":
        p["rlnImageName"] = np.array([n + "s" for n in p["rlnImageName"]])
    elif case == "turned":
        p["rlnTomoSubtomogramRot"] = np.array([10.0, 0.0])
        p["rlnTomoSubtomogramTilt"] = np.array([90.0, 0.0])
        p["rlnTomoSubtomogramPsi"] = np.array([0.0, 0.0])
    elif case == "group":
        p["rlnOpticsGroup"] = np.array([1, 2])
    elif case == "halftilt":
        p["famlTiltMin"] = np.array([-60.0, -60.0])
    write_star_blocks(star, blocks, version=50001)
    with pytest.raises(InputError, match=re.escape(message)):
        read_particle_star(star)


def test_identity_subtomogram_orientations_are_accepted(tmp_path):
    """rot + psi = 0 with tilt 0 is no turn (RELION's matrix is the identity)."""
    _, names = _volumes(tmp_path, n=2)
    star, _ = _relion5_star(tmp_path, names)
    blocks = read_star_blocks(star, dtypes={"rlnImageName": str, "rlnTomoName": str})
    blocks["particles"]["rlnTomoSubtomogramRot"] = np.array([30.0, 0.0])
    blocks["particles"]["rlnTomoSubtomogramTilt"] = np.array([0.0, 0.0])
    blocks["particles"]["rlnTomoSubtomogramPsi"] = np.array([-30.0, 360.0])
    write_star_blocks(star, blocks, version=50001)
    assert len(read_particle_star(star).paths) == 2


def test_cli_reports_a_bad_particle_file_with_exit_code_2(tmp_path, capsys):
    _, names = _volumes(tmp_path, n=2)
    star, _ = _relion5_star(tmp_path, names, extra_general={"rlnTomoSubTomosAre2DStacks": 1})
    assert main(["classify", "--star", str(star), "--out", str(tmp_path / "o")]) == 2
    assert "2D stacks" in capsys.readouterr().err
    # --tomograms without rlnTomoName in the file
    star2 = write_star_blocks(tmp_path / "plain.star", {"particles": {"rlnImageName": names}})
    tomos = _tomograms_star(tmp_path)
    assert (
        main(
            [
                "classify",
                "--star",
                str(star2),
                "--tomograms",
                str(tomos),
                "--out",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )
    assert "--tomograms needs a --star file with rlnTomoName" in capsys.readouterr().err
    assert read_star(star2)["rlnImageName"].size == 2
