"""faml_tomo's workflow templates and the headless project machinery
(:mod:`faml_tomo.workflow`): Scipion lists the templates, their fields fill
into workflows that load into a project with the right protocols, labels and
links, bad values are refused with a clear message, and (slow) the
misalignment workflow runs through Scipion's own ``create`` + ``schedule``
batch scripts."""

import json
import uuid

import pytest

from faml_tomo.errors import InputError
from faml_tomo.workflow import runner
from faml_tomo.workflow.project import create_project, plain_text, schedule_workflow
from faml_tomo.workflow.templates import TEMPLATES, fill_template, template_fields


def test_scipion_lists_the_templates():
    from pyworkflow.template import TemplateList

    templates = TemplateList()
    templates.addPluginTemplates()
    ids = {t.getObjId() for t in templates.templates}
    assert {"faml_tomo-faml_tomo_misalignment", "faml_tomo-faml_tomo_classify"} <= ids
    one = TemplateList()
    one.addPluginTemplates(tempId="faml_tomo-faml_tomo_classify")
    assert [t.getObjId() for t in one.templates] == ["faml_tomo-faml_tomo_classify"]
    assert "FAML" in one.templates[0].description


def test_template_fields():
    fields = {f["alias"]: f for f in template_fields("misalignment")}
    assert {
        "tomograms",
        "tomogram_pattern",
        "sampling_rate",
        "tilt_min",
        "tilt_max",
        "tilt_step",
        "bead_nm",
        "threads",
        "strong_threshold",
        "weak_threshold",
    } == set(fields)
    assert fields["tomograms"]["type"] == 6 and fields["threads"]["type"] == 3
    fields = {f["alias"]: f for f in template_fields("classify")}
    assert {
        "subtomograms",
        "subtomogram_pattern",
        "sampling_rate",
        "tilt_min",
        "tilt_max",
        "classes",
        "iterations",
        "mode",
        "seed",
        "threads",
    } == set(fields)
    assert fields["classes"]["default"] == "2"


def test_fill_template_refuses_bad_values(tmp_path):
    with pytest.raises(InputError, match="unknown field.*nclasses"):
        fill_template("classify", {"nclasses": 3}, tmp_path / "a.json")
    with pytest.raises(InputError, match="field subtomograms"):
        fill_template("classify", {"subtomograms": tmp_path / "missing"}, tmp_path / "a.json")
    with pytest.raises(InputError, match="field classes"):
        fill_template("classify", {"classes": "two"}, tmp_path / "a.json")
    with pytest.raises(InputError, match="unknown workflow template"):
        fill_template("nothing", {}, tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()


def _name(prefix):
    """A project name not used before (Scipion's user data outlives tmp_path)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _workflows(tmp_path):
    (tmp_path / "tomos").mkdir()
    (tmp_path / "subs").mkdir()
    wf1 = fill_template(
        "misalignment",
        {
            "tomograms": tmp_path / "tomos",
            "bead_nm": 6.5,
            "sampling_rate": 12.5,
            "threads": 3,
        },
        tmp_path / "wf1.json",
    )
    wf2 = fill_template(
        TEMPLATES["classify"],
        {"subtomograms": tmp_path / "subs", "classes": 3, "mode": 1, "seed": 7},
        tmp_path / "wf2.json",
    )
    return wf1, wf2


def test_filled_workflows_load_into_one_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wf1, wf2 = _workflows(tmp_path)
    steps = json.loads(wf1.read_text())
    # the bead diameter is asked once: detect-misalignment points to the finder's
    assert steps[1]["fiducialSize"] == 6.5 and steps[2]["beadSizeNm"] == "3.fiducialSize"
    assert steps[0]["filesPath"] == str(tmp_path / "tomos")

    name = _name("wf")
    project = create_project(name, [wf1, wf2], location=tmp_path)
    runs = sorted(project.getRuns(), key=lambda p: p.getObjId())
    assert [p.getClassName() for p in runs] == [
        "ProtImportTomograms",
        "ProtPeakHighContrast",
        "ProtDetectMisalignment",
        "ProtImportSubTomograms",
        "ProtFAMLClassify",
    ]
    assert [p.getObjLabel() for p in runs] == [
        "import tomograms",
        "gold fiducials",
        "misalignment",
        "import subtomograms",
        "FAML classes",
    ]
    imp, phc, mis, isub, faml = runs
    assert imp.samplingRate.get() == 12.5
    assert phc.inputTomograms.getObjValue().getObjId() == imp.getObjId()
    assert phc.inputTomograms.getExtended() == "Tomograms"
    assert phc.numberOfThreads.get() == 3
    assert mis.inputCoordinates.getObjValue().getObjId() == phc.getObjId()
    assert mis.inputCoordinates.getExtended() == "Coordinates3D"
    assert mis.beadSizeNm.get() == 6.5  # the fiducial finder's, through a pointer
    assert faml.inputSubtomograms.getObjValue().getObjId() == isub.getObjId()
    assert (faml.numberOfClasses.get(), faml.mode.get(), faml.seed.get()) == (3, 1, 7)
    assert str(tmp_path) in project.path

    with pytest.raises(InputError, match="exists already"):
        create_project(name, [wf1], location=tmp_path)
    again = create_project(name, [wf1], location=tmp_path, overwrite=True)
    assert len(again.getRuns()) == 3


def test_plain_text_drops_scipion_markup():
    assert (
        plain_text(
            "Tomograms [[sci-open:237][2.Tomograms.237]] imported; "
            "Sampling rate: *15.00* (Å/px), Step: *3*"
        )
        == "Tomograms 2.Tomograms.237 imported; Sampling rate: 15.00 (Å/px), Step: 3"
    )
    assert plain_text("a * b * c, 2*3*4") == "a * b * c, 2*3*4"


def test_runner_reports_bad_input(tmp_path, capsys):
    assert runner.main(["p", str(tmp_path / "missing.json")]) == 2
    assert "missing.json: workflow file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_create_and_schedule_misalignment_workflow(tmp_path):
    """``pyworkflow.project.scripts.create`` + ``schedule`` on the quick demo's
    tomograms (Scipion waits 30 s per dependency level: about 75 s)."""
    from faml_tomo.workflow.demo import simulate_tomograms

    cases = simulate_tomograms(tmp_path / "tomos", seed=1, quick=True, say=lambda m: None)
    wf = fill_template(
        "misalignment",
        {"tomograms": tmp_path / "tomos", "threads": 1, "weak_threshold": 0.5},
        tmp_path / "wf.json",
    )
    assert json.loads(wf.read_text())[2]["beadSizeNm"] == "3.fiducialSize"
    infos = schedule_workflow(
        _name("sched"), wf, location=tmp_path / "projects", timeout=600, say=lambda m: None
    )
    assert [i["class"] for i in infos] == [
        "ProtImportTomograms",
        "ProtPeakHighContrast",
        "ProtDetectMisalignment",
    ]
    assert all(i["status"] == "finished" for i in infos)
    assert infos[1]["outputs"]["Coordinates3D"].startswith("SetOfCoordinates3D")
    counts = {
        line.split(":")[0].strip(): int(line.split(":")[1].split()[0])
        for line in infos[1]["summary"][1:]
        if line.startswith("  ")
    }
    assert set(counts) == {c["name"] for c in cases}
    assert all(n >= 5 for n in counts.values()), counts
    with open(f"{infos[2]['path']}/extra/misalignment_results.json") as fh:
        res = json.load(fh)
    assert {ts: r["label"] for ts, r in res.items()} == {c["name"]: c["expected"] for c in cases}
