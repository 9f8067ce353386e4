"""The README's demo command, at its quick size: it runs end to end and its
results are right (fiducials found, tomograms classified, classes found)."""
import json

from faml_tomo.cli import main


def test_quick_demo(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "done: report in" in printed and "FAML iteration 1" in printed
    job = json.loads((out / "job.json").read_text())["results"]
    fid = {r["tomogram"]: r for r in job["fiducials"]}
    assert fid["TS_aligned"]["recall"] == 1.0 and fid["TS_aligned"]["precision"] == 1.0
    assert fid["TS_aligned"]["rms"] < 1.0
    decisions = {r["tomogram"]: r["decision"] for r in job["misalignment"]}
    assert decisions == {"TS_aligned": "aligned", "TS_weak_birds": "weak",
                         "TS_strong_bananas": "strong"}
    assert job["faml"]["accuracy"] >= 0.9
    for name in ("report.md", "figures/faml_averages.png", "figures/fiducials_TS_aligned.png",
                 "averages/class_1.mrc", "tomograms/TS_aligned.mrc"):
        assert (out / name).is_file(), name
