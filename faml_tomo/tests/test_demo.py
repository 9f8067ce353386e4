"""The README's demo command at its quick size: it builds a Scipion project
from the two workflow templates, runs it headless to the end (synchronous
loader) and its results are right: fiducials found, tomograms sorted into
aligned / weak / strong, FAML classes that agree with the truth; summaries
printed, viewer figures and the report written."""

import json

from faml_tomo.cli import main


def test_quick_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "done in" in printed and "report in" in printed
    # progress lines forwarded from the running protocols, then the summaries
    assert "gold fiducials (ProtPeakHighContrast) running" in printed
    assert "FAML iteration 1" in printed
    assert "summary of 'misalignment' (ProtDetectMisalignment):" in printed
    assert "summary of 'FAML classes' (ProtFAMLClassify):" in printed

    job = json.loads((out / "job.json").read_text())["results"]
    fid = {r["tomogram"]: r for r in job["fiducials"]}
    assert fid["TS_aligned"]["recall"] == 1.0 and fid["TS_aligned"]["precision"] == 1.0
    assert fid["TS_aligned"]["rms"] < 1.0
    assert fid["TS_weak_birds"]["found"] >= 3
    assert fid["TS_strong_bananas"]["found"] >= 3
    decisions = {r["tomogram"]: r["decision"] for r in job["misalignment"]}
    assert decisions == {
        "TS_aligned": "aligned",
        "TS_weak_birds": "weak",
        "TS_strong_bananas": "strong",
    }
    faml = job["faml"]
    assert faml["assigned"] == faml["n"] == 32
    assert faml["accuracy"] >= 0.9

    # the project is a real Scipion project inside the results folder
    results = json.loads((out / "workflow_results.json").read_text())
    assert results["path"] == str(out / "faml_tomo_demo")
    assert (out / "faml_tomo_demo" / "project.sqlite").is_file()
    classes = [p["class"] for p in results["protocols"]]
    assert classes == [
        "ProtImportTomograms",
        "ProtPeakHighContrast",
        "ProtDetectMisalignment",
        "ProtImportSubTomograms",
        "ProtFAMLClassify",
    ]
    assert all(p["status"] == "finished" for p in results["protocols"])
    by_class = {p["class"]: p for p in results["protocols"]}
    assert by_class["ProtFAMLClassify"]["outputs"]["outputClasses"].endswith("(2)")
    assert "Coordinates3D" in by_class["ProtPeakHighContrast"]["outputs"]

    report = (out / "report.md").read_text()
    assert "| TS_strong_bananas | bananas 300 Å | strong | strong |" in report
    for name in (
        "report.md",
        "workflows/misalignment.json",
        "workflows/classify.json",
        "figures/fiducials_TS_aligned.png",
        "figures/misalignment_scores.png",
        "figures/misalignment_tomograms.png",
        "data/tomograms/TS_aligned.mrc",
    ):
        assert (out / name).is_file(), name
    for fig in (f for p in results["protocols"] for f in p["figures"]):
        assert fig.endswith(".png") and (out / "figures").exists()
        assert (out / "figures" / fig.rsplit("/", 1)[-1]).stat().st_size > 5000
    assert any("faml" in f for p in results["protocols"] for f in p["figures"])
