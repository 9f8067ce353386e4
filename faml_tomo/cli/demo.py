"""``faml-tomo demo``: an end-to-end run on built-in simulated data.

Simulates tomograms with gold beads (aligned, weakly and strongly misaligned)
and a two-class subtomogram set, then runs every capability that is
installed: fiducial detection, misalignment detection (when trained networks
are present) and FAML classification, and writes figures (PNG), the data and
a short report to the output folder.  No file outside the package is needed.
"""
import logging
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..io import atomic_path, write_job_json, write_mrc

logger = logging.getLogger(__name__)

TOMO_CASES = [("TS_aligned", "none", 0.0), ("TS_weak_birds", "birds", 22.0),
              ("TS_strong_bananas", "bananas", 300.0)]
PIXEL_SIZE = 15.0
BEAD_NM = 10.0


def add_parser(subparsers):
    p = subparsers.add_parser(
        "demo", help="end-to-end demo on built-in simulated data",
        description="Simulate tomograms with gold beads (aligned, weakly and strongly "
                    "misaligned) and two classes of subtomograms, run fiducial "
                    "detection, misalignment detection and FAML classification, "
                    "and write figures and a report.")
    p.add_argument("--out", default="results/demo", help="output folder (results/demo)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--quick", action="store_true",
                   help="smaller data and fewer iterations (about a minute)")
    p.add_argument("--threads", type=int, default=2, help="threads / processes (2)")
    p.set_defaults(func=run)
    return p


class _Progress:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self, msg):
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {msg}", flush=True)


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    return path


def simulate_tomograms(out, seed, quick, say):
    """Simulate and reconstruct the demo tomograms; returns a list of dicts."""
    from ..simulation import (AcquisitionParams, SlabParams, misalignment_preset,
                              reconstruct_wbp, simulate_tilt_series)
    size, nz = (256, 64) if quick else (384, 96)
    acq = AcquisitionParams()
    cases = []
    for i, (name, kind, magnitude) in enumerate(TOMO_CASES):
        slab = SlabParams(nx=size, ny=size, nz=nz, pixel_size=PIXEL_SIZE,
                          slab_thickness=0.8 * nz * PIXEL_SIZE, bead_diameter=BEAD_NM * 10,
                          n_beads=14 if quick else 25)
        ts = simulate_tilt_series(slab, acq, misalignment_preset(kind, magnitude,
                                                                 acq.angles().size),
                                  rng=seed * 100 + i)
        tomo = reconstruct_wbp(ts.images, ts.angles, thickness=nz)
        path = write_mrc(out / "tomograms" / f"{name}.mrc", tomo, PIXEL_SIZE)
        cases.append({"name": name, "kind": kind, "magnitude": magnitude, "tomogram": tomo,
                      "truth": ts.slab.beads, "path": path})
        say(f"simulated {name}: {size}x{size}x{nz} at {PIXEL_SIZE:g} Å/px, "
            f"{len(ts.slab.beads)} beads, misalignment {kind} {magnitude:g}")
    return cases


def detect_fiducials(cases, out, threads, say):
    from ..fiducials import PeakHighContrastParams, box_inside, match_points, peak_high_contrast
    from ..viewers.viewer_peak_high_contrast import central_slab, slab_figure
    params = PeakHighContrastParams(bead_diameter_nm=BEAD_NM)
    bead_px = BEAD_NM * 10 / PIXEL_SIZE
    rows = []
    for case in cases:
        res = peak_high_contrast(case["tomogram"], PIXEL_SIZE, params, workers=threads)
        case["coords"] = res.coordinates
        valid = box_inside(case["truth"], case["tomogram"].shape, params.box_size)
        m = match_points(res.coordinates, case["truth"], bead_px, valid=valid)
        image, z_range = central_slab(case["tomogram"], 24)
        fig = slab_figure(image, res.coordinates, res.scores, z_range, bead_px,
                          title=f"{case['name']}: {len(res)} fiducials")
        _save(fig, out / "figures" / f"fiducials_{case['name']}.png")
        rows.append((case["name"], len(res), int(valid.sum()), m["recall"], m["precision"],
                     m["rms"], res.relaxed_mode_used))
        say(f"fiducials in {case['name']}: {len(res)} found, recall {m['recall']:.2f}, "
            f"precision {m['precision']:.2f}, RMS {m['rms']:.2f} px"
            + (" (relaxed mode)" if res.relaxed_mode_used else ""))
    return rows


def detect_misalignment(cases, out, say):
    from ..errors import InputError
    from ..misalignment.detect import score_tomogram
    from ..misalignment.predict import MisalignmentScorer
    try:
        scorer = MisalignmentScorer()
    except InputError as exc:
        say(f"misalignment detection skipped: {exc}")
        return None
    from ..viewers.viewer_misalignment import score_histograms, tomogram_score_plot
    rows, results = [], {}
    for case in cases:
        res = score_tomogram(case["name"], case["tomogram"], case.get("coords", case["truth"]),
                             PIXEL_SIZE, BEAD_NM * 10, scorer, weak_threshold=0.5)
        d = res.decision
        results[case["name"]] = {"label": d.label, "strong": res.strong.tolist(),
                                 "weak": res.weak.tolist(), "strong_score": d.strong_score,
                                 "weak_score": d.weak_score}
        rows.append((case["name"], case["kind"], d.label, d.strong_score, d.weak_score,
                     d.n_beads))
        say(f"misalignment of {case['name']}: {d.label} (strong {d.strong_score:.2f}, "
            f"weak {d.weak_score:.2f}, {d.n_beads} beads)")
    _save(score_histograms(results, 0.5, 0.5), out / "figures" / "misalignment_scores.png")
    _save(tomogram_score_plot(results, 0.5, 0.5), out / "figures" / "misalignment_tomograms.png")
    return rows


def classify_subtomograms(out, seed, quick, threads, say):
    from ..averaging import classify
    from ..simulation import SubtomogramParams, make_phantom, simulate_subtomograms
    from ..simulation.writers import write_subtomograms
    box, pixel = 32, 20.0
    n_per = 16 if quick else 30
    names = ("twolobe", "ring7")
    structures = {n: make_phantom(n, box, pixel) for n in names}
    params = SubtomogramParams(box=box, pixel_size=pixel, snr=0.05, tilt_min=-60, tilt_max=60)
    sset = simulate_subtomograms(structures, [n_per, n_per], params, np.random.default_rng(seed))
    write_subtomograms(out / "subtomograms", sset)
    say(f"simulated {len(sset)} subtomograms ({', '.join(names)}), {box}^3 at {pixel:g} Å/px, "
        f"SNR 0.05, tilt -60..60")
    t0 = time.perf_counter()

    def progress(state):
        say(f"FAML iteration {state.iteration}: log-likelihood {state.log_likelihood[-1]:.4g}, "
            f"{state.class_changes[-1]} class changes")
    res = classify(sset.volumes, tilt_range=(-60, 60), n_classes=2, seed=seed,
                   max_iter=4 if quick else 8, workers=threads,
                   checkpoint_dir=out / "faml_checkpoint", callback=progress)
    truth = np.asarray(sset.truth.class_index)
    # classes are unlabelled: take the better of the two matchings
    acc = max(np.mean(res.classes == truth), np.mean(res.classes == 1 - truth))
    say(f"FAML: {res.n_iterations} iterations in {time.perf_counter() - t0:.0f} s, "
        f"class agreement with the truth {acc:.2f}")
    for k, avg in enumerate(res.averages):
        write_mrc(out / "averages" / f"class_{k + 1}.mrc", avg, pixel)
    _save(_averages_figure(res.averages, [sset.references[n] for n in names]),
          out / "figures" / "faml_averages.png")
    return {"n": len(sset), "accuracy": float(acc), "iterations": res.n_iterations,
            "sizes": np.bincount(res.classes, minlength=2).tolist(),
            "log_likelihood": [float(v) for v in res.log_likelihood]}


def _averages_figure(averages, references):
    from matplotlib.figure import Figure
    rows = list(averages) + list(references)
    fig = Figure(figsize=(7.5, 2.4 * len(rows)))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, vol in enumerate(rows):
        c = vol.shape[0] // 2
        for a, (img, plane) in enumerate(((vol[c], "XY"), (vol[:, c], "XZ"),
                                          (vol[:, :, c], "YZ"))):
            axes[r, a].imshow(img, cmap="gray", origin="lower")
            axes[r, a].set_xticks([])
            axes[r, a].set_yticks([])
            label = f"class {r + 1}" if r < len(averages) else f"truth {r - len(averages) + 1}"
            axes[r, a].set_title(f"{label} {plane}", fontsize=9)
    return fig


def write_report(out, fid_rows, mis_rows, faml, seconds):
    lines = [f"# faml-tomo {__version__} demo", "",
             f"Total time: {seconds:.0f} s. Data, figures and this report are in `{out}`.", "",
             "## Fiducial detection (peak high contrast)", "",
             "| tomogram | found | true beads (box inside) | recall | precision | RMS (px) |"
             " relaxed |", "|---|---|---|---|---|---|---|"]
    lines.insert(-2, "Recall and RMS are against the true bead positions; in misaligned "
                     "tomograms the beads appear displaced, so low recall there is expected.\n")
    for name, n, nt, rec, prec, rms, relaxed in fid_rows:
        lines.append(f"| {name} | {n} | {nt} | {rec:.2f} | {prec:.2f} | {rms:.2f} | "
                     f"{'yes' if relaxed else 'no'} |")
    lines += ["", "## Misalignment detection", ""]
    if mis_rows is None:
        lines.append("Skipped: no trained networks found.")
    else:
        lines += ["| tomogram | simulated | decision | strong score | weak score | beads |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d:.2f} | {e:.2f} | {f} |" for a, b, c, d, e, f in mis_rows]
    lines += ["", "## FAML classification (2 classes)", "",
              f"{faml['n']} subtomograms, {faml['iterations']} iterations, class sizes "
              f"{faml['sizes']}, agreement with the true classes {faml['accuracy']:.2f}.", "",
              "![averages](figures/faml_averages.png)", ""]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(lines))


def run(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = _Progress()
    t0 = time.perf_counter()
    say(f"faml-tomo {__version__} demo -> {out}")
    cases = simulate_tomograms(out, args.seed, args.quick, say)
    fid_rows = detect_fiducials(cases, out, args.threads, say)
    mis_rows = detect_misalignment(cases, out, say)
    faml = classify_subtomograms(out, args.seed, args.quick, args.threads, say)
    seconds = time.perf_counter() - t0
    write_report(out, fid_rows, mis_rows, faml, seconds)
    write_job_json(out / "job.json", "demo", vars(args) | {"func": None}, seed=args.seed,
                   extra={"seconds": seconds, "faml": faml,
                          "fiducials": [dict(zip(("tomogram", "found", "true", "recall",
                                                  "precision", "rms", "relaxed"), r))
                                        for r in fid_rows],
                          "misalignment": [dict(zip(("tomogram", "simulated", "decision",
                                                     "strong", "weak", "beads"), r))
                                           for r in (mis_rows or [])]})
    say(f"done: report in {out / 'report.md'}")
    return 0
