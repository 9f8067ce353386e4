"""``faml-tomo detect-misalignment``: score the gold beads of tomograms with
the strong and weak misalignment networks and classify each tomogram as
aligned, weakly or strongly misaligned.

Example::

    faml-tomo detect-misalignment TS_01.mrc TS_02.mrc \\
        --coords TS_01_beads.star TS_02_beads.star --bead-size-nm 10 \\
        --weak-threshold 0.5 --out results/misalignment

Coordinates are STAR tables with ``rlnCoordinateX/Y/Z`` in tomogram voxels.
Give one STAR file per tomogram (paired in order), or any number of files
whose ``rlnTomoName`` (or ``rlnMicrographName``) names the tomogram (its
file name without extension).  Writes ``scores.star`` (one row per
coordinate, input order, with whether it was scored and why not, the bead's own
verdict and whether it disagrees with its tomogram), ``tomograms.star`` (one
row per tomogram: label, scores, spread of the bead scores, beads that
disagree, coordinates excluded, message) and ``job.json``.
"""
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.jobjson import write_job_json

logger = logging.getLogger(__name__)

NAME_LABELS = ("rlnTomoName", "rlnMicrographName", "tomoName")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "detect-misalignment", help="detect misaligned tomograms from their gold beads",
        description="Extract 32^3 boxes around gold-bead coordinates (resampled so the "
                    "bead spans 16 voxels), score them and their sampling with the "
                    "strong and weak misalignment networks and classify each tomogram "
                    "(mean or votes of its bead scores). Writes scores.star, tomograms.star and "
                    "job.json.")
    p.add_argument("tomograms", nargs="+", type=Path, metavar="TOMO.mrc",
                   help="tomogram MRC file(s)")
    p.add_argument("--coords", nargs="+", type=Path, required=True, metavar="STAR",
                   help="coordinate STAR file(s): one per tomogram, or tables naming the "
                        "tomogram in rlnTomoName")
    p.add_argument("--sampling-rate", type=float, default=None,
                   help="tomogram pixel size in Å/px (default: from the MRC header)")
    p.add_argument("--bead-size-nm", type=float, default=10.0,
                   help="gold bead diameter in nm (default 10)")
    p.add_argument("--strong-threshold", type=float, default=0.5,
                   help="tomograms with a strong score <= this are strongly misaligned "
                        "(default 0.5)")
    p.add_argument("--weak-threshold", type=float, default=None,
                   help="tomograms kept by the strong network with a weak score <= this "
                        "are weakly misaligned; without it they are only 'not strongly "
                        "misaligned' (labelled aligned) and the weak score is reported")
    p.add_argument("--min-beads", type=int, default=1,
                   help="fewest usable beads to judge a tomogram; with fewer it is "
                        "reported unclassified with the reason (default 1)")
    p.add_argument("--max-outside", type=float, default=0.5,
                   help="boxes with a larger part outside the tomogram (coordinates "
                        "beyond the volume) are not scored (default 0.5)")
    p.add_argument("--criterion", choices=("mean", "votes"), default="mean",
                   help="mean of the bead scores (default) or fraction of bead votes")
    p.add_argument("--gpu", default=None,
                   help="GPU index for TensorFlow (default: CPU)")
    p.add_argument("--models", type=Path, default=None,
                   help="folder with strong.keras and weak.keras (default: "
                        "$FAML_TOMO_MODELS or the shipped networks)")
    p.add_argument("--batch-size", type=int, default=64, help="boxes per batch")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=run)
    return p


def _tomo_name(path):
    name = Path(path).name
    for ext in (".mrc", ".rec", ".st", ".map"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(path).stem


def _numeric_coordinates(path, table):
    """``(n, 3)`` coordinates of a STAR table; an InputError names a value
    that is not a finite number."""
    cols = []
    for a in "XYZ":
        label = f"rlnCoordinate{a}"
        values = list(table[label]) if np.ndim(table[label]) else [table[label]]
        try:
            col = np.asarray(values, float)
        except (TypeError, ValueError):
            bad = next(v for v in values if not _is_number(v))
            raise InputError(f"{path}: {label} holds {bad!r}, not a number") from None
        if not np.all(np.isfinite(col)):
            row = int(np.flatnonzero(~np.isfinite(col))[0]) + 1
            raise InputError(f"{path}: {label} of row {row} is {col[row - 1]}, not a "
                             f"finite number")
        cols.append(col)
    return np.column_stack(cols).reshape(-1, 3)


def _is_number(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def read_coordinates(star_files, tomo_names):
    """Coordinates per tomogram name from STAR files.

    One file per tomogram: paired in order.  Otherwise each row's
    ``rlnTomoName`` (or ``rlnMicrographName``) must name a tomogram.

    Returns
    -------
    dict
        ``{name: numpy.ndarray (n, 3)}`` for every tomogram (possibly empty).
    """
    from ..io.star import read_star
    out = {n: [] for n in tomo_names}
    paired = len(star_files) == len(tomo_names)
    for k, path in enumerate(star_files):
        table = read_star(path, dtypes={lab: str for lab in NAME_LABELS})
        if not isinstance(table, dict) or not all(f"rlnCoordinate{a}" in table
                                                  for a in "XYZ"):
            raise InputError(f"{path}: needs columns rlnCoordinateX, rlnCoordinateY and "
                             f"rlnCoordinateZ (tomogram voxels)")
        xyz = _numeric_coordinates(path, table)
        if paired:
            out[tomo_names[k]].append(xyz)
            continue
        label = next((lab for lab in NAME_LABELS if lab in table), None)
        if label is None:
            raise InputError(f"{path}: {len(star_files)} coordinate files for "
                             f"{len(tomo_names)} tomograms; then each table needs "
                             f"rlnTomoName to say which tomogram a row belongs to")
        names = np.asarray(table[label]).astype(str)
        for name in np.unique(names):
            key = _tomo_name(name)
            if key not in out:
                logger.warning("%s: %d coordinates of %r match no tomogram given", path,
                               int(np.sum(names == name)), name)
                continue
            out[key].append(xyz[names == name])
    return {n: (np.concatenate(v) if v else np.zeros((0, 3))) for n, v in out.items()}


def check_inputs(args):
    """Every check that needs no computation, before any work: options,
    tomogram headers (voxel size), coordinate files, output folder.

    Returns
    -------
    names, sampling, coords
        Tomogram names, ``{name: Å/px}`` and ``{name: (n, 3) coordinates}``.
    """
    from ..io.mrc import header_problems
    from ..io.publish import check_output_folder
    from ..misalignment.detect import check_parameters
    check_parameters(10.0 * args.bead_size_nm, args.criterion, args.strong_threshold,
                     args.weak_threshold, args.min_beads, args.max_outside)
    if args.sampling_rate is not None and not args.sampling_rate > 0:
        raise InputError(f"--sampling-rate must be > 0 Å/px, got {args.sampling_rate}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    names = [_tomo_name(p) for p in args.tomograms]
    if len(set(names)) != len(names):
        raise InputError("two tomograms have the same name; rename one")
    for p in list(args.tomograms) + list(args.coords):
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
    problems, infos = header_problems(args.tomograms, args.sampling_rate,
                                      "give --sampling-rate")
    if problems:
        raise InputError(problems[0])
    coords = read_coordinates(args.coords, names)
    check_output_folder(args.out, [*args.tomograms, *args.coords])
    sampling = {n: infos[p].voxel_size for n, p in zip(names, args.tomograms)}
    return names, sampling, coords


def run(args):
    from ..io.mrc import open_mrc
    from ..io.publish import Publication
    from ..misalignment.detect import score_tomogram
    from ..misalignment.predict import MisalignmentScorer
    t0 = time.perf_counter()
    bead_A = 10.0 * args.bead_size_nm
    names, sampling, coords = check_inputs(args)
    scorer = MisalignmentScorer(args.models, gpu=args.gpu, batch_size=args.batch_size)
    results = []
    for path, name in zip(args.tomograms, names):
        with open_mrc(path) as (data, _header_voxel):
            res = score_tomogram(name, data, coords[name], sampling[name], bead_A, scorer,
                                 args.criterion, args.strong_threshold, args.weak_threshold,
                                 min_beads=args.min_beads, max_outside=args.max_outside)
        for w in res.warnings:
            logger.warning("%s: %s", name, w)
        if res.decision.message:
            logger.info("%s: %s", name, res.decision.message)
        results.append(res)
    with Publication(args.out, "detect-misalignment") as stage:
        _write_results(stage, results, args, scorer, t0)
    _print_summary(results, args.out, time.perf_counter() - t0)
    return 0


def _write_results(out, results, args, scorer, t0):
    from ..io.star import write_star
    rows = [r for r in results if len(r.coords)]
    cat = (lambda f: np.concatenate([f(r) for r in rows])) if rows else \
        (lambda f: np.zeros(0))
    write_star(out / "scores.star", {
        "rlnTomoName": [r.name for r in rows for _ in range(len(r.coords))],
        "rlnCoordinateX": cat(lambda r: r.coords[:, 0]),
        "rlnCoordinateY": cat(lambda r: r.coords[:, 1]),
        "rlnCoordinateZ": cat(lambda r: r.coords[:, 2]),
        "famlStrongScore": cat(lambda r: r.strong),
        "famlWeakScore": cat(lambda r: r.weak),
        "famlOutsideFraction": cat(lambda r: r.outside_fraction),
        "famlUsed": cat(lambda r: r.used.astype(int)),
        "famlBeadVerdict": [v or "-" for r in rows for v in r.verdict],
        "famlDisagrees": cat(lambda r: r.disagree.astype(int)),
        "famlExcluded": [(e or "-").replace(" ", "_") for r in rows for e in r.excluded],
    }, "scores")
    write_star(out / "tomograms.star", {
        "rlnTomoName": [r.name for r in results],
        "famlMisalignment": [r.decision.label for r in results],
        "famlStrongScore": [r.decision.strong_score for r in results],
        "famlWeakScore": [r.decision.weak_score for r in results],
        "famlNumberOfBeads": [r.decision.n_beads for r in results],
        "famlStrongSpread": [r.decision.strong_spread for r in results],
        "famlBeadsDisagreeing": [r.decision.n_disagree for r in results],
        "famlBeadsExcluded": [r.decision.n_excluded for r in results],
        "famlMessage": [r.decision.message or "-" for r in results],
    }, "tomograms")
    elapsed = time.perf_counter() - t0
    params = {k: v for k, v in vars(args).items() if k != "func"}
    write_job_json(out / "job.json", "detect-misalignment", params, extra={
        "tomograms": {r.name: {"label": r.decision.label,
                               "strong_score": r.decision.strong_score,
                               "weak_score": r.decision.weak_score,
                               "n_beads": r.decision.n_beads,
                               "strong_spread": r.decision.strong_spread,
                               "n_disagree": r.decision.n_disagree,
                               "n_excluded": r.decision.n_excluded,
                               "message": r.decision.message,
                               "warnings": r.warnings} for r in results},
        "models": str(scorer.folder) if hasattr(scorer, "folder") else str(args.models),
        "seconds": round(elapsed, 3)})


def _print_summary(results, out, elapsed):
    counts = {}
    for r in results:
        counts[r.decision.label] = counts.get(r.decision.label, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"{len(results)} tomogram(s): {summary}; wrote {out}/scores.star and "
          f"tomograms.star in {elapsed:.1f} s")
    for r in results:
        d = r.decision
        why = (f", spread {d.strong_spread:.2f}, {d.n_disagree} disagree"
               if d.label != "unclassified" else "")
        print(f"  {r.name}: {d.label} (strong {d.strong_score:.3f}, "
              f"weak {d.weak_score:.3f}, {d.n_beads} beads{why})"
              f"{' - ' + d.message if d.message else ''}")
