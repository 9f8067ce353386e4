"""Typed jobs (:mod:`faml_tomo.jobs`, :mod:`faml_tomo.averaging.job`): one
default per setting for form, command line and API; JSON round trip; checks;
``faml-tomo run job.json`` reproduces a run."""

import json

import numpy as np
import pytest

from faml_tomo.averaging.job import ClassifyJob, job_defaults
from faml_tomo.cli import build_parser, main
from faml_tomo.errors import InputError
from faml_tomo.jobs import job_from_json, job_to_json


def _check_defaults(prot, fields, choices, defaults, argv, positional=()):
    """Form parameters and command-line options carry the job's defaults."""
    from faml_tomo.protocols.formjob import form_values

    for field, value in form_values(prot, fields, choices).items():
        assert value == defaults[field], (field, value, defaults[field])
    args = vars(build_parser().parse_args(argv))
    for field, default in defaults.items():
        if field not in positional:
            value = tuple(args[field]) if isinstance(default, tuple) else args[field]
            assert value == default, (field, args[field], default)


def test_form_command_line_and_api_share_each_default():
    """Every form parameter mapped to a job field has the job's default, and
    so has every option of ``faml-tomo classify`` and the EM settings a
    default job makes."""
    pytest.importorskip("pyworkflow")
    from faml_tomo.averaging.em import EMParams
    from faml_tomo.protocols.protocol_faml_classify import (
        FORM_CHOICES,
        FORM_FIELDS,
        ProtFAMLClassify,
    )

    _check_defaults(
        ProtFAMLClassify(),
        FORM_FIELDS,
        FORM_CHOICES,
        job_defaults(),
        ["classify", "--folder", "x", "--out", "y"],
        ("folder",),
    )
    assert ClassifyJob().em_params() == EMParams()


def test_job_json_round_trip_and_bad_records():
    job = ClassifyJob(
        star="p.star",
        references=("a.mrc", "b.mrc"),
        tilt_range=(-50, 70),
        classes=2,
        resolution=30.0,
        gold_standard=True,
    )
    back = job_from_json(ClassifyJob, json.loads(json.dumps(job_to_json(job))))
    assert back == job  # strings and lists were typed on creation
    assert back.references[1].name == "b.mrc" and back.tilt_range == (-50.0, 70.0)
    record = job_to_json(job)
    with pytest.raises(InputError, match="unknown classify job fields: bogus"):
        job_from_json(ClassifyJob, {**record, "fields": {**record["fields"], "bogus": 1}})
    with pytest.raises(InputError, match="newer"):
        job_from_json(ClassifyJob, {**record, "schema": ClassifyJob.SCHEMA + 1})
    with pytest.raises(InputError, match="not 'classify'"):
        job_from_json(ClassifyJob, {**record, "task": "simulate"})


def test_problems_name_each_unusable_setting():
    assert ClassifyJob(folder="x").problems() == []
    problems = ClassifyJob(classes=0, resolution=-3.0).problems()
    assert any("STAR file or as a folder" in p for p in problems)
    assert any("--classes must be >= 1" in p for p in problems)
    assert any("--resolution must be > 0" in p for p in problems)
    assert any("exceeds" in p for p in ClassifyJob(folder="x", classes=5).problems(3))
    assert any("symmetry" in p.lower() for p in ClassifyJob(folder="x", symmetry="Q7").problems())


def test_replaying_job_json_reproduces_the_outputs(tmp_path, capsys):
    from faml_tomo.averaging.testing import phantom, simulate_subtomograms
    from faml_tomo.io import write_mrc

    data = tmp_path / "data"
    data.mkdir()
    sim = simulate_subtomograms(
        [phantom(16, seed=1), phantom(16, seed=2)], 5, 1.0, seed=3, max_shift=1.0
    )
    for i, v in enumerate(sim.volumes):
        write_mrc(data / f"s{i:02d}.mrc", v.astype(np.float32), 20.0)
    first, again = tmp_path / "first", tmp_path / "again"
    assert (
        main(
            [
                "classify",
                "--folder",
                str(data),
                "--out",
                str(first),
                "--classes",
                "2",
                "--iterations",
                "2",
                "--lmax",
                "15",
                "--voronoi-samples",
                "300",
                "--consensus-iterations",
                "2",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert main(["run", str(first / "job.json"), "--out", str(again)]) == 0
    for name in ("class_01.mrc", "class_02.mrc", "particles.star"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    a, b = (json.loads((d / "job.json").read_text()) for d in (first, again))
    assert a["job"] == b["job"] and a["job"]["fields"]["seed"] == 5
    capsys.readouterr()
    # a record without a typed job, and an unreadable one: clear errors
    (tmp_path / "old.json").write_text(json.dumps({"command": "classify"}))
    assert main(["run", str(tmp_path / "old.json")]) == 2
    assert "no typed job" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_fiducial_form_command_line_and_api_share_each_default():
    pytest.importorskip("pyworkflow")
    from faml_tomo.fiducials import PeakHighContrastParams
    from faml_tomo.fiducials.job import FiducialJob, job_defaults
    from faml_tomo.protocols.protocol_peak_high_contrast import (
        FORM_CHOICES,
        FORM_FIELDS,
        ProtPeakHighContrast,
    )

    prot = ProtPeakHighContrast()
    _check_defaults(
        prot,
        FORM_FIELDS,
        FORM_CHOICES,
        job_defaults(),
        ["peak-high-contrast", "t.mrc", "--out", "y"],
        ("tomograms",),
    )
    assert prot._job().params() == FiducialJob().params() == PeakHighContrastParams()


def test_replaying_a_fiducial_job_reproduces_the_coordinates(tmp_path):
    from faml_tomo.fiducials.phantom import bead_phantom
    from faml_tomo.io import write_mrc

    ph = bead_phantom(shape=(48, 128, 128), n_beads=12, n_proteins=400, n_vesicles=1, seed=4)
    tomo = write_mrc(tmp_path / "TS_01.mrc", ph.volume.astype(np.float32), 10.0)
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["peak-high-contrast", str(tomo), "--out", str(first), "--seed", "3"]) == 0
    assert main(["run", str(first / "job.json"), "--out", str(again)]) == 0
    for name in ("coordinates.star", "TS_01.star", "TS_01.txt"):
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    assert len((first / "TS_01.txt").read_text().splitlines()) >= 8


def test_misalignment_form_command_line_and_api_share_each_default():
    pytest.importorskip("pyworkflow")
    from faml_tomo.misalignment.job import MisalignmentJob, job_defaults
    from faml_tomo.protocols.protocol_detect_misalignment import (
        FORM_CHOICES,
        FORM_FIELDS,
        ProtDetectMisalignment,
    )

    _check_defaults(
        ProtDetectMisalignment(),
        FORM_FIELDS,
        FORM_CHOICES,
        job_defaults(),
        ["detect-misalignment", "t.mrc", "--coords", "c.star", "--out", "y"],
        ("tomograms", "coords"),
    )
    # an optional setting with a default is unset with "none"
    args = build_parser().parse_args(
        [
            "detect-misalignment",
            "t.mrc",
            "--coords",
            "c.star",
            "--out",
            "y",
            "--weak-threshold",
            "none",
        ]
    )
    assert args.weak_threshold is None
    assert MisalignmentJob(tomograms=("t.mrc",), coords=("c.star",)).problems() == []
    assert any(
        "strong threshold" in p
        for p in MisalignmentJob(
            tomograms=("t.mrc",), coords=("c.star",), strong_threshold=2.0
        ).problems()
    )


def test_simulation_jobs_share_defaults_and_replay(tmp_path):
    import dataclasses

    from faml_tomo.simulation.job import SubtomogramSimJob, TomogramSimJob

    for job_cls, argv in (
        (SubtomogramSimJob, ["simulate", "subtomograms", "--out", "o"]),
        (TomogramSimJob, ["simulate", "tomogram", "--out", "o"]),
    ):
        args = vars(build_parser().parse_args(argv))
        for f in dataclasses.fields(job_cls):
            value = tuple(args[f.name]) if isinstance(f.default, tuple) else args[f.name]
            assert value == f.default, (job_cls.TASK, f.name)
    first, again = tmp_path / "first", tmp_path / "again"
    assert (
        main(
            [
                "simulate",
                "subtomograms",
                "--structure",
                "ring7",
                "twolobe",
                "--count",
                "2",
                "2",
                "--box",
                "20",
                "--seed",
                "3",
                "--out",
                str(first),
            ]
        )
        == 0
    )
    assert main(["run", str(first / "job.json"), "--out", str(again)]) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.suffix in (".mrc", ".star"))
    assert len(files) >= 5
    for name in files:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name
    tomo, tomo2 = tmp_path / "tomo", tmp_path / "tomo2"
    assert (
        main(
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
                "3",
                "--tilt-step",
                "10",
                "--misalignment",
                "bananas",
                "--magnitude",
                "40",
                "--seed",
                "2",
                "--out",
                str(tomo),
            ]
        )
        == 0
    )
    assert main(["run", str(tomo / "job.json"), "--out", str(tomo2)]) == 0
    assert (tomo / "TS_01.mrc").read_bytes() == (tomo2 / "TS_01.mrc").read_bytes()
