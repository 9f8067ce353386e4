"""The demo's results against the truth: the evaluation of the project's
outputs (fiducials, misalignment decisions, FAML classes), ``report.md`` and
the result lines printed at the end.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from .. import __version__
from ..io import atomic_path
from .demo_data import BEAD_NM, PIXEL_SIZE, SUB_STRUCTURES

logger = logging.getLogger(__name__)

__all__ = ["evaluate", "class_agreement", "write_report", "say_results"]


def _by_class(protocols: Sequence[Mapping], cls: str) -> Mapping | None:
    return next((p for p in protocols if p["class"] == cls), None)


def evaluate(results: Mapping, cases: Sequence[Mapping], subs: Mapping) -> dict:
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
    out: dict = {"fiducials": [], "misalignment": [], "faml": None}
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


def class_agreement(found: ArrayLike, truth: ArrayLike) -> float:
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


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "–" if v is None or v != v else format(v, spec)


def write_report(
    out: Path, results: Mapping, ev: Mapping, seconds: float, rel: Callable[[str], str]
) -> Path:
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


def say_results(ev: Mapping, say: Callable[[str], None]) -> None:
    """The evaluation (see :func:`evaluate`) in a few progress lines."""
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
