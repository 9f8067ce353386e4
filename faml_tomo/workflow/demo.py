"""The end-to-end demo (``faml-tomo demo``, ``make demo``).

1. Simulates a small dataset with ground truth: tomograms with gold beads
   (aligned, weakly and strongly misaligned) and a two-class subtomogram
   set (MRC files under ``<out>/data``).
2. Fills faml_tomo's two workflow templates with it
   (``<out>/workflows/*.json``).
3. Creates a Scipion project from them inside the results folder
   (``<out>/faml_tomo_demo``) and runs it headless to the end, in a child
   process (``python -m faml_tomo.workflow``) that starts with the Scipion
   variables set (:func:`~faml_tomo.workflow.env.scipion_environment`;
   the ones already set are kept).
4. Prints each protocol's summary, saves the viewers' figures
   (``<out>/figures``) and writes ``report.md`` and ``job.json`` with the
   results compared to the truth.
"""

import importlib.util
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import FamlTomoError
from ..io import atomic_path, write_job_json, write_mrc
from .env import scipion_environment
from .runner import MARK
from .templates import fill_template

logger = logging.getLogger(__name__)

__all__ = ["run_demo", "simulate_tomograms", "simulate_subtomograms", "PROJECT_NAME"]

PROJECT_NAME = "faml_tomo_demo"
#: (name, simulated misalignment, magnitude in Å, expected decision)
TOMO_CASES = [
    ("TS_aligned", "none", 0.0, "aligned"),
    ("TS_weak_birds", "birds", 22.0, "weak"),
    ("TS_strong_bananas", "bananas", 300.0, "strong"),
]
PIXEL_SIZE = 15.0
BEAD_NM = 10.0
SUB_BOX, SUB_PIXEL, SUB_SNR = 32, 20.0, 0.05
SUB_STRUCTURES = ("twolobe", "ring7")
TILT = (-60.0, 60.0, 3.0)


class _Progress:
    """Progress lines ``[  12.3 s] message`` (time since the start)."""

    def __init__(self, stream=None):
        self.t0 = time.perf_counter()
        self.stream = stream

    def __call__(self, msg):
        print(
            f"[{time.perf_counter() - self.t0:6.1f} s] {msg}",
            flush=True,
            file=self.stream or sys.stdout,
        )


def simulate_tomograms(folder, seed, quick, say=print):
    """Simulate and reconstruct the demo tomograms (MRC, one per case).

    Returns
    -------
    list of dict
        Per tomogram: ``name``, ``kind``, ``magnitude``, ``expected``
        decision, true bead positions ``beads`` (x, y, z voxels), ``shape``
        (nz, ny, nx) and ``path``.
    """
    from ..simulation import (
        AcquisitionParams,
        SlabParams,
        misalignment_preset,
        reconstruct_wbp,
        simulate_tilt_series,
    )

    size, nz = (256, 64) if quick else (384, 96)
    acq = AcquisitionParams(tilt_min=TILT[0], tilt_max=TILT[1], tilt_step=TILT[2])
    cases = []
    for i, (name, kind, magnitude, expected) in enumerate(TOMO_CASES):
        slab = SlabParams(
            nx=size,
            ny=size,
            nz=nz,
            pixel_size=PIXEL_SIZE,
            slab_thickness=0.8 * nz * PIXEL_SIZE,
            bead_diameter=BEAD_NM * 10,
            n_beads=14 if quick else 25,
        )
        ts = simulate_tilt_series(
            slab, acq, misalignment_preset(kind, magnitude, acq.angles().size), rng=seed * 100 + i
        )
        tomo = reconstruct_wbp(ts.images, ts.angles, thickness=nz)
        path = write_mrc(Path(folder) / f"{name}.mrc", tomo, PIXEL_SIZE)
        cases.append(
            {
                "name": name,
                "kind": kind,
                "magnitude": magnitude,
                "expected": expected,
                "beads": np.asarray(ts.slab.beads).tolist(),
                "shape": list(tomo.shape),
                "path": str(path),
            }
        )
        say(
            f"simulated {name}: {size}x{size}x{nz} voxels at {PIXEL_SIZE:g} Å/px, "
            f"{len(ts.slab.beads)} beads of {BEAD_NM:g} nm, misalignment {kind}"
            + (f" {magnitude:g} Å" if magnitude else "")
        )
    return cases


def simulate_subtomograms(folder, seed, quick, say=print):
    """Simulate the two-class subtomogram set (one MRC per subtomogram).

    Returns
    -------
    dict
        ``files`` (MRC paths), ``truth`` (``{file name: class index}``),
        ``structures``, ``references`` (MRC paths of the true maps).
    """
    from ..simulation import SubtomogramParams, make_phantom, simulate_subtomograms as sim
    from ..simulation.writers import write_subtomograms

    n_per = 16 if quick else 40
    structures = {n: make_phantom(n, SUB_BOX, SUB_PIXEL) for n in SUB_STRUCTURES}
    params = SubtomogramParams(
        box=SUB_BOX, pixel_size=SUB_PIXEL, snr=SUB_SNR, tilt_min=TILT[0], tilt_max=TILT[1]
    )
    sset = sim(structures, [n_per] * len(structures), params, np.random.default_rng(seed))
    paths = write_subtomograms(folder, sset)
    truth = {Path(p).name: int(c) for p, c in zip(paths["subtomograms"], sset.truth.class_index)}
    say(
        f"simulated {len(sset)} subtomograms ({' and '.join(SUB_STRUCTURES)}, "
        f"{n_per} each), {SUB_BOX}^3 voxels at {SUB_PIXEL:g} Å/px, SNR {SUB_SNR:g}, "
        f"tilt {TILT[0]:g}..{TILT[1]:g} deg"
    )
    return {
        "files": [str(p) for p in paths["subtomograms"]],
        "truth": truth,
        "structures": list(SUB_STRUCTURES),
        "references": {k: str(v) for k, v in paths["references"].items()},
    }


def faml_available():
    """Whether the FAML classification protocol is installed."""
    return importlib.util.find_spec("faml_tomo.protocols.protocol_faml_classify") is not None


def write_workflows(out, tomo_dir, sub_dir, seed, quick, threads, with_faml):
    """Fill the templates with the demo data; returns the workflow files."""
    files = [
        fill_template(
            "misalignment",
            {
                "tomograms": tomo_dir,
                "tomogram_pattern": "TS_*.mrc",
                "sampling_rate": PIXEL_SIZE,
                "tilt_min": TILT[0],
                "tilt_max": TILT[1],
                "tilt_step": TILT[2],
                "bead_nm": BEAD_NM,
                "bead_nm_networks": BEAD_NM,
                "threads": threads,
                "strong_threshold": 0.5,
                "weak_threshold": 0.5,
            },
            out / "misalignment.json",
        )
    ]
    if with_faml:
        files.append(
            fill_template(
                "classify",
                {
                    "subtomograms": sub_dir,
                    "subtomogram_pattern": "*.mrc",
                    "sampling_rate": SUB_PIXEL,
                    "tilt_min": TILT[0],
                    "tilt_max": TILT[1],
                    "classes": 2,
                    "iterations": 4 if quick else 10,
                    "seed": seed,
                    "threads": threads,
                },
                out / "classify.json",
            )
        )
    return files


def run_workflow_process(name, workflows, location, figures, results, log, say):
    """Run ``python -m faml_tomo.workflow`` in a child process with the
    current environment; forwards its progress lines, keeps the rest in
    ``log``."""
    cmd = [
        sys.executable,
        "-m",
        "faml_tomo.workflow",
        name,
        *map(str, workflows),
        "--location",
        str(location),
        "--overwrite",
        "--figures",
        str(figures),
        "--results",
        str(results),
        "--mark",
    ]
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            cwd=str(location),
            env=dict(os.environ, MPLBACKEND="Agg"),
        )  # figures headless
        for line in proc.stdout:
            fh.write(line)
            if line.startswith(MARK):
                say(line[len(MARK) :].rstrip())
        rc = proc.wait()
    if rc != 0:
        tail = "".join(Path(log).read_text().splitlines(keepends=True)[-25:])
        raise FamlTomoError(f"the Scipion workflow failed (exit code {rc}); log: {log}\n{tail}")


def _by_class(protocols, cls):
    return next((p for p in protocols if p["class"] == cls), None)


def evaluate(results, cases, subs):
    """Compare the project's outputs with the truth.

    Returns
    -------
    dict
        ``fiducials`` (per tomogram: found, true beads with the box inside,
        recall, precision, RMS in voxels), ``misalignment`` (per tomogram:
        simulated, expected and found decision, scores) and ``faml``
        (class agreement with the truth, class sizes) when present.
    """
    from ..fiducials import PeakHighContrastParams, box_inside, match_points

    protocols = results["protocols"]
    out = {"fiducials": [], "misalignment": [], "faml": None}
    phc = _by_class(protocols, "ProtPeakHighContrast")
    params = PeakHighContrastParams(bead_diameter_nm=BEAD_NM)
    bead_px = params.bead_diameter_px(PIXEL_SIZE)
    # beads the finder can report: box inside in X and Y, the bead's own
    # cube (two diameters) inside in Z (its default border rule)
    z_size = 2 * int(round(bead_px)) + 1 if params.z_border == "bead" else None
    for case in cases:
        rows = np.asarray(
            (phc or {}).get("data", {}).get("coordinates", {}).get(case["name"], []), float
        ).reshape(-1, 4)
        truth = np.asarray(case["beads"], float)
        valid = box_inside(truth, tuple(case["shape"]), params.box_size, z_size)
        m = match_points(rows[:, :3], truth, bead_px, valid=valid)
        out["fiducials"].append(
            {
                "tomogram": case["name"],
                "found": len(rows),
                "true": int(valid.sum()),
                "recall": float(m["recall"]),
                "precision": float(m["precision"]),
                "rms": float(m["rms"]),
            }
        )
    mis = _by_class(protocols, "ProtDetectMisalignment")
    decisions = (mis or {}).get("data", {}).get("tomograms", {})
    for case in cases:
        d = decisions.get(case["name"], {})
        out["misalignment"].append(
            {
                "tomogram": case["name"],
                "simulated": case["kind"],
                "magnitude": case["magnitude"],
                "expected": case["expected"],
                "decision": d.get("label"),
                "strong": d.get("strong_score"),
                "weak": d.get("weak_score"),
                "beads": d.get("n_beads"),
            }
        )
    faml = _by_class(protocols, "ProtFAMLClassify")
    if faml is not None:
        members = faml["data"].get("classes", {})
        truth = subs["truth"]
        names = sorted(set(members) & set(truth))
        found = np.array([members[n] for n in names])
        true = np.array([truth[n] for n in names])
        out["faml"] = {
            "n": len(truth),
            "assigned": len(names),
            "accuracy": class_agreement(found, true),
            "sizes": {str(k): int(v) for k, v in zip(*np.unique(found, return_counts=True))},
        }
    return out


def class_agreement(found, truth):
    """Fraction of items whose class matches the truth under the best
    one-to-one relabelling of the (unlabelled) found classes."""
    from scipy.optimize import linear_sum_assignment

    found, truth = np.asarray(found), np.asarray(truth)
    if found.size == 0:
        return 0.0
    fk, fi = np.unique(found, return_inverse=True)
    tk, ti = np.unique(truth, return_inverse=True)
    table = np.zeros((len(fk), len(tk)), int)
    np.add.at(table, (fi, ti), 1)
    r, c = linear_sum_assignment(-table)
    return float(table[r, c].sum() / found.size)


def _fmt(v, spec=".2f"):
    return "–" if v is None or v != v else format(v, spec)


def write_report(out, results, ev, seconds, rel):
    """``report.md``: what ran, each protocol's summary, the results against
    the truth and the figures."""
    lines = [
        f"# faml-tomo {__version__} demo",
        "",
        f"Total time {seconds:.0f} s. Scipion project `{rel(results['path'])}` "
        f"(open it with `make gui`, or `scipion3 project {results['project']}` in a "
        f"Scipion installation; `make screenshots` captures it), data in `data/`, "
        f"workflows in `workflows/`, figures of the viewers in `figures/`.",
        "",
        "## Protocols",
        "",
        "| protocol | class | time (s) | outputs |",
        "|---|---|---|---|",
    ]
    for p in results["protocols"]:
        outs = ", ".join(f"{k}: {v}" for k, v in p["outputs"].items())
        lines.append(f"| {p['label']} | {p['class']} | {_fmt(p['seconds'], '.0f')} | {outs} |")
    lines += [
        "",
        "## Fiducial detection (peak high contrast)",
        "",
        "Recall, precision and RMS against the true bead positions (the beads the "
        "finder can report: box inside the tomogram in X and Y, bead inside in Z). "
        "In misaligned tomograms the beads appear "
        "displaced and smeared (the bananas error shifts every image 300 Å, 20 voxels, "
        "along X), so a lower recall there is expected: what matters is that beads "
        "are found for the misalignment networks.",
        "",
        "| tomogram | found | true beads | recall | precision | RMS (voxels) |",
        "|---|---|---|---|---|---|",
    ]
    for r in ev["fiducials"]:
        lines.append(
            f"| {r['tomogram']} | {r['found']} | {r['true']} | {r['recall']:.2f} | "
            f"{r['precision']:.2f} | {_fmt(r['rms'])} |"
        )
    lines += [
        "",
        "## Misalignment detection",
        "",
        "| tomogram | simulated | expected | decision | strong score | weak score | beads |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ev["misalignment"]:
        sim = r["simulated"] + (f" {r['magnitude']:g} Å" if r["magnitude"] else "")
        lines.append(
            f"| {r['tomogram']} | {sim} | {r['expected']} | {r['decision']} | "
            f"{_fmt(r['strong'])} | {_fmt(r['weak'])} | {r['beads']} |"
        )
    lines += ["", "## FAML classification", ""]
    if ev["faml"] is None:
        lines.append("Not run: the FAML classification protocol is not installed.")
    else:
        f = ev["faml"]
        sizes = ", ".join(f"class {k}: {v}" for k, v in f["sizes"].items())
        lines.append(
            f"{f['n']} subtomograms ({' and '.join(SUB_STRUCTURES)}, "
            f"{f['n'] // len(SUB_STRUCTURES)} each); {sizes}; agreement with the "
            f"true classes {f['accuracy']:.2f} (best matching of class labels)."
        )
    lines += ["", "## Summaries (as Scipion shows them)", ""]
    for p in results["protocols"]:
        lines += (
            [f"**{p['label']}** ({p['class']})", "", "```"]
            + [str(s) for s in p["summary"]]
            + ["```", ""]
        )
    lines += ["## Figures", ""]
    for p in results["protocols"]:
        for fig in p.get("figures", []):
            lines.append(f"![{Path(fig).stem}]({rel(fig)})")
    with atomic_path(out / "report.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return out / "report.md"


def run_demo(out, seed=1, quick=False, threads=2, say=None):
    """Run the whole demo.

    Parameters
    ----------
    out : str or Path
        Results folder (created).
    seed : int
        Seed of the simulations and of FAML.
    quick : bool
        Smaller data and fewer FAML iterations.
    threads : int
        Threads of the protocols.
    say : callable, optional
        Receives progress lines (default: printed with the elapsed time).

    Returns
    -------
    dict
        The evaluation (see :func:`evaluate`) plus ``seconds``.
    """
    say = say or _Progress()
    t0 = time.perf_counter()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = scipion_environment(out / "scipion")
    say(f"faml-tomo {__version__} demo -> {out}")
    say(f"Scipion user data {env['SCIPION_USER_DATA']}, hosts {env['SCIPION_HOSTS']}")
    data = out / "data"
    cases = simulate_tomograms(data / "tomograms", seed, quick, say)
    with_faml = faml_available()
    subs = simulate_subtomograms(data / "subtomograms", seed, quick, say) if with_faml else None
    if not with_faml:
        say("FAML classification protocol not installed: its workflow is skipped")
    workflows = write_workflows(
        out / "workflows",
        data / "tomograms",
        data / "subtomograms" / "subtomograms",
        seed,
        quick,
        threads,
        with_faml,
    )
    say(f"workflows from the templates: {', '.join(str(w) for w in workflows)}")
    results_json = out / "workflow_results.json"
    run_workflow_process(
        PROJECT_NAME,
        workflows,
        out,
        out / "figures",
        results_json,
        out / "logs" / "workflow.log",
        say,
    )
    results = json.loads(results_json.read_text())
    ev = evaluate(results, cases, subs or {"truth": {}})
    seconds = time.perf_counter() - t0

    def rel(p):
        try:
            return os.path.relpath(p, out)
        except ValueError:
            return str(p)

    report = write_report(out, results, ev, seconds, rel)
    write_job_json(
        out / "job.json",
        "demo",
        {"out": str(out), "seed": seed, "quick": quick, "threads": threads},
        seed=seed,
        extra=dict(ev, seconds=seconds, project=results["path"]),
    )
    for r in ev["fiducials"]:
        say(
            f"fiducials {r['tomogram']}: {r['found']} found, recall {r['recall']:.2f}, "
            f"precision {r['precision']:.2f}"
        )
    for r in ev["misalignment"]:
        say(
            f"misalignment {r['tomogram']}: {r['decision']} (simulated {r['simulated']}, "
            f"expected {r['expected']})"
        )
    if ev["faml"]:
        say(f"FAML: class agreement with the truth {ev['faml']['accuracy']:.2f}")
    say(f"done in {seconds:.0f} s: report in {report}")
    return dict(ev, seconds=seconds)
