"""``faml-tomo peak-high-contrast``: find gold fiducials in MRC tomograms.

Examples
--------
Two tomograms at 15 Å/voxel with 10 nm beads::

    faml-tomo peak-high-contrast TS_01.mrc TS_02.mrc --sampling-rate 15 \\
        --bead-size-nm 10 --out results/fiducials

writes, in ``results/fiducials``:

* ``coordinates.star``: one row per fiducial of every tomogram
  (``rlnTomoName``, ``rlnMicrographName``, ``rlnCoordinateX/Y/Z`` in voxels
  of the tomogram, ``rlnAutopickFigureOfMerit`` = mirror correlation);
* ``<tomogram>.star`` and ``<tomogram>.txt`` per tomogram, named after the
  tomogram (the STAR for RELION-style coordinate imports, the ``x y z`` text
  for Scipion's ``tomo - import coordinates 3D``, which matches files to
  tomograms by name);
* ``job.json``: parameters, counts, warnings, timings;
* ``faml_run.json``: the run marker (all files of a run are published
  together; see :mod:`faml_tomo.io.publish`).
"""
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.jobjson import write_job_json
from ..io.mrc import atomic_path

logger = logging.getLogger(__name__)


def add_parser(subparsers):
    from ..fiducials import PeakHighContrastParams
    d = PeakHighContrastParams()
    p = subparsers.add_parser(
        "peak-high-contrast", help="find gold fiducials (beads) in tomograms",
        description="Locate gold fiducials in MRC tomograms with the peak-high-contrast "
                    "algorithm (de Isidro-Gómez et al. 2024, §2.3) and write their "
                    "coordinates as STAR and text files plus a job record.")
    p.add_argument("tomograms", nargs="+", type=Path, metavar="TOMO.mrc",
                   help="tomograms (dark beads), memory-mapped")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--sampling-rate", type=float, default=None,
                   help="Å/voxel (default: from each MRC header)")
    p.add_argument("--bead-size-nm", type=float, default=d.bead_diameter_nm,
                   help=f"bead diameter in nm (default {d.bead_diameter_nm:g})")
    p.add_argument("--box-size", type=int, default=d.box_size,
                   help=f"box in voxels; fiducials whose box crosses the X or Y border "
                        f"are dropped (default {d.box_size})")
    p.add_argument("--z-border", choices=("bead", "box"), default=d.z_border,
                   help="Z border rule: 'bead' keeps fiducials whose two-diameter cube "
                        "lies inside (beads on the ice surfaces of thin tomograms; "
                        "default), 'box' drops those whose whole box crosses the top or "
                        "bottom (the paper's rule)")
    p.add_argument("--sd-threshold", type=float, default=d.sd_threshold,
                   help=f"dark-outlier threshold in SD (default {d.sd_threshold:g})")
    p.add_argument("--sampling-slices", type=int, default=d.sampling_slices,
                   help=f"central slices for the threshold (default {d.sampling_slices})")
    p.add_argument("--min-coordinates", type=int, default=d.min_coordinates,
                   help=f"minimum outlier voxels per fiducial (default {d.min_coordinates})")
    p.add_argument("--mirror-correlation", type=float,
                   default=d.mirror_correlation_threshold,
                   help=f"minimum mirror correlation (default "
                        f"{d.mirror_correlation_threshold:g})")
    p.add_argument("--mahalanobis", type=float, default=d.mahalanobis_threshold,
                   help=f"Mahalanobis distance threshold in SD (default "
                        f"{d.mahalanobis_threshold:g})")
    p.add_argument("--min-contrast", type=float, default=d.min_contrast,
                   help=f"minimum bead contrast in robust SD, 0 = off (default "
                        f"{d.min_contrast:g})")
    p.add_argument("--no-relaxed-mode", action="store_true",
                   help="never return unfiltered coordinates")
    p.add_argument("--relaxed-mode-threshold", type=int, default=d.relaxed_mode_threshold,
                   help=f"relaxed mode when fewer coordinates pass the filters "
                        f"(default {d.relaxed_mode_threshold})")
    p.add_argument("--smeared-scales", type=float, nargs="*", default=list(d.smeared_scales),
                   metavar="S",
                   help="with fewer beads than the relaxed-mode threshold, search again "
                        "for beads S times larger (smeared by misalignment; default "
                        f"{' '.join(f'{v:g}' for v in d.smeared_scales)}; none: off)")
    p.add_argument("--no-smeared-search", action="store_true",
                   help="never search for beads smeared into lobes, arcs or streaks when too "
                        "few round beads are found (on by default: keep it before "
                        "detect-misalignment)")
    p.add_argument("--threads", type=int, default=1, help="FFT threads (default 1)")
    p.set_defaults(func=run)
    return p


def params_from_args(args):
    """:class:`~faml_tomo.fiducials.PeakHighContrastParams` from parsed
    arguments."""
    from ..fiducials import PeakHighContrastParams
    return PeakHighContrastParams(
        bead_diameter_nm=args.bead_size_nm, box_size=args.box_size, z_border=args.z_border,
        relaxed_mode=not args.no_relaxed_mode,
        relaxed_mode_threshold=args.relaxed_mode_threshold,
        sampling_slices=args.sampling_slices, sd_threshold=args.sd_threshold,
        min_coordinates=args.min_coordinates,
        mirror_correlation_threshold=args.mirror_correlation,
        mahalanobis_threshold=args.mahalanobis, min_contrast=args.min_contrast,
        smeared_scales=tuple(args.smeared_scales),
        smeared_search=not args.no_smeared_search)


def coordinate_table(name, file_name, coordinates, scores):
    """STAR columns of one tomogram's fiducials (RELION labels)."""
    xyz = np.asarray(coordinates, float).reshape(-1, 3)
    return {"rlnTomoName": [name] * len(xyz),
            "rlnMicrographName": [file_name] * len(xyz),
            "rlnCoordinateX": xyz[:, 0], "rlnCoordinateY": xyz[:, 1],
            "rlnCoordinateZ": xyz[:, 2],
            "rlnAutopickFigureOfMerit": np.asarray(scores, float)}


def _write_text(path, coordinates):
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{x:.2f} {y:.2f} {z:.2f}\n" for x, y, z in coordinates))
    return path


def check_inputs(args):
    """Every check that needs no computation, before any work: parameters,
    tomogram headers (voxel size, size against the box), distinct names,
    output folder.

    Returns
    -------
    params, stems, sampling
        :class:`~faml_tomo.fiducials.PeakHighContrastParams`, the file stem
        of each tomogram and ``{path: Å/voxel}``.
    """
    from ..io.mrc import header_problems
    from ..io.publish import check_output_folder, safe_name
    params = params_from_args(args)
    params.check()
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.sampling_rate is not None:
        problems = params.problems(sampling_rate=args.sampling_rate)
        if problems:
            raise InputError(problems[0])
    stems = [safe_name(t.name.split(".")[0]) for t in args.tomograms]
    if len(set(stems)) != len(stems):
        raise InputError("tomograms must have distinct names (their coordinates files are "
                         "named after them)")
    problems, infos = header_problems(args.tomograms, args.sampling_rate,
                                      "give --sampling-rate")
    for path, info in infos.items():
        problems += [f"{path}: {m}" for m in params.problems(info.shape, info.voxel_size)]
    if problems:
        raise InputError(problems[0])
    check_output_folder(args.out, args.tomograms)
    return params, stems, {p: infos[p].voxel_size for p in args.tomograms}


def run(args):
    from ..fiducials import peak_high_contrast_file
    from ..io.publish import Publication
    from ..io.star import write_star
    params, stems, sampling = check_inputs(args)
    t0 = time.perf_counter()
    tables, per_tomo = [], {}
    with Publication(args.out, "peak-high-contrast") as stage:
        for path, stem in zip(args.tomograms, stems):
            res = peak_high_contrast_file(path, sampling[path], params,
                                          workers=args.threads)
            table = coordinate_table(stem, path.name, res.coordinates, res.scores)
            write_star(stage / f"{stem}.star", table, "particles")
            _write_text(stage / f"{stem}.txt", res.coordinates)
            tables.append(table)
            per_tomo[stem] = _tomogram_record(path, res)
            print(f"{stem}: {len(res)} fiducials" +
                  (" (relaxed mode)" if res.relaxed_mode_used else ""), flush=True)
        merged = {k: [v for t in tables for v in list(t[k])] for k in tables[0]}
        write_star(stage / "coordinates.star", merged, "particles")
        write_job_json(stage / "job.json", "peak-high-contrast",
                       {"tomograms": [str(t) for t in args.tomograms],
                        "sampling_rate": args.sampling_rate, "threads": args.threads,
                        **params.to_dict()},
                       extra={"tomograms": per_tomo,
                              "star": str(Path(args.out) / "coordinates.star"),
                              "seconds": round(time.perf_counter() - t0, 3)})
    print(f"wrote {sum(v['count'] for v in per_tomo.values())} coordinates to "
          f"{Path(args.out) / 'coordinates.star'}")
    return 0


def _tomogram_record(path, res):
    return {"path": str(path), "count": len(res), "relaxed_mode": res.relaxed_mode_used,
            "warnings": res.warnings, "sampling_rate": res.stats.get("sampling_rate"),
            "bead_scale": res.stats.get("bead_scale", 1.0),
            "seconds": round(res.stats.get("time_s", 0.0), 3)}
