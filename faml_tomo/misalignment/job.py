"""The misalignment-detection job: every setting of ``detect-misalignment``
once (default, unit, help), its checks, and :func:`run`, the entry point of
the command line and of ``faml-tomo run job.json``; the protocol takes its
decision settings from it.

Coordinates are STAR tables with ``rlnCoordinateX/Y/Z`` in tomogram voxels:
one file per tomogram (paired in order), or any number of files whose
``rlnTomoName`` (or ``rlnMicrographName``) names the tomogram (its file name
without extension).  Outputs in ``out`` (written through :mod:`.results`): ``scores.star`` (one
row per coordinate, input order, with whether it was scored and why not, the
bead's own verdict and whether it disagrees with its tomogram),
``tomograms.star`` (one row per tomogram: label, scores, spread of the bead
scores, beads that disagree, coordinates excluded, message),
``misalignment_results.json`` (the same per tomogram, as the protocol and the
viewer read it), ``job.json`` and the run marker.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.naming import tomogram_name
from ..jobs import coerce_fields, job_to_json, option
from ..typealiases import PathLike
from .decision import CRITERIA

logger = logging.getLogger(__name__)

__all__ = ["MisalignmentJob", "run", "read_coordinates", "summary"]

NAME_LABELS = ("rlnTomoName", "rlnMicrographName", "tomoName")


@dataclass(frozen=True)
class MisalignmentJob:
    """Settings of a misalignment detection (fields: see ``faml-tomo
    detect-misalignment --help``, generated from them)."""

    TASK = "detect-misalignment"
    SCHEMA = 1

    tomograms: tuple[Path, ...] = option(
        (), "tomogram MRC file(s)", positional=True, nargs="+", metavar="TOMO.mrc"
    )
    coords: tuple[Path, ...] = option(
        (),
        "coordinate STAR file(s): one per tomogram, or tables naming the tomogram in rlnTomoName",
        required=True,
        nargs="+",
        metavar="STAR",
    )
    sampling_rate: float | None = option(
        None, "tomogram pixel size (default: from the MRC header)", unit="Å"
    )
    bead_size_nm: float = option(
        10.0, "gold bead diameter; boxes are resampled so it spans 16 voxels", unit="nm"
    )
    strong_threshold: float = option(
        0.5, "tomograms whose aggregated strong score is at or below this are strongly misaligned"
    )
    weak_threshold: float | None = option(
        0.5,
        "tomograms kept by the strong network whose weak score is at or below this are "
        "weakly misaligned (the protocol's optional field; empty there: only strongly "
        "misaligned tomograms are separated)",
    )
    min_beads: int = option(
        1,
        "fewest usable beads to judge a tomogram; with fewer it is "
        "reported unclassified with the reason",
    )
    max_outside: float = option(
        0.5,
        "boxes with a larger part outside the tomogram "
        "(coordinates beyond the volume) are not scored",
    )
    criterion: str = option(
        "mean", "mean of the bead scores, or fraction of bead votes", choices=CRITERIA
    )
    gpu: str | None = option(None, "GPU index for TensorFlow (default: CPU)")
    models: Path | None = option(
        None,
        "folder with strong.keras and weak.keras (default: "
        "$FAML_TOMO_MODELS or the shipped networks)",
    )
    batch_size: int = option(64, "boxes scored together by the networks")

    def __post_init__(self):
        coerce_fields(self)

    def problems(self) -> list[str]:
        """Readable messages for settings that cannot run (empty: fine)."""
        from .detect import check_parameters

        out = []
        if not self.tomograms:
            out.append("give at least one tomogram")
        if not self.coords:
            out.append("give the coordinates (--coords)")
        try:
            check_parameters(
                10.0 * self.bead_size_nm,
                self.criterion,
                self.strong_threshold,
                self.weak_threshold,
                self.min_beads,
                self.max_outside,
            )
        except InputError as exc:
            out.append(str(exc))
        if self.sampling_rate is not None and not self.sampling_rate > 0:
            out.append(f"--sampling-rate must be > 0 Å/px, got {self.sampling_rate}")
        if self.batch_size < 1:
            out.append(f"--batch-size must be >= 1, got {self.batch_size}")
        return out


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
            raise InputError(f"{path}: {label} of row {row} is {col[row - 1]}, not a finite number")
        cols.append(col)
    return np.column_stack(cols).reshape(-1, 3)


def _is_number(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def read_coordinates(star_files: Sequence[PathLike], tomo_names: Sequence[str]) -> dict:
    """Coordinates per tomogram name from STAR files.

    One file per tomogram: paired in order.  Otherwise each row's
    ``rlnTomoName`` (or ``rlnMicrographName``) must name a tomogram.

    Returns
    -------
    dict
        ``{name: numpy.ndarray (n, 3)}`` for every tomogram (possibly empty).
    """
    from ..io.star import read_star

    out: dict[str, list] = {n: [] for n in tomo_names}
    paired = len(star_files) == len(tomo_names)
    for k, path in enumerate(star_files):
        table = read_star(path, dtypes={lab: str for lab in NAME_LABELS})
        if not isinstance(table, dict) or not all(f"rlnCoordinate{a}" in table for a in "XYZ"):
            raise InputError(
                f"{path}: needs columns rlnCoordinateX, rlnCoordinateY and "
                f"rlnCoordinateZ (tomogram voxels)"
            )
        xyz = _numeric_coordinates(path, table)
        if paired:
            out[tomo_names[k]].append(xyz)
            continue
        label = next((lab for lab in NAME_LABELS if lab in table), None)
        if label is None:
            raise InputError(
                f"{path}: {len(star_files)} coordinate files for "
                f"{len(tomo_names)} tomograms; then each table needs "
                f"rlnTomoName to say which tomogram a row belongs to"
            )
        names = np.asarray(table[label]).astype(str)
        for name in np.unique(names):
            key = tomogram_name(name)
            if key not in out:
                logger.warning(
                    "%s: %d coordinates of %r match no tomogram given",
                    path,
                    int(np.sum(names == name)),
                    name,
                )
                continue
            out[key].append(xyz[names == name])
    return {n: (np.concatenate(v) if v else np.zeros((0, 3))) for n, v in out.items()}


def check_inputs(job: MisalignmentJob, out: PathLike) -> tuple[list[str], dict, dict]:
    """Every check that needs no computation, before any work: settings,
    tomogram headers (voxel size), coordinate files, output folder.

    Returns
    -------
    names, sampling, coords
        Tomogram names, ``{name: Å/px}`` and ``{name: (n, 3) coordinates}``.
    """
    from ..io.mrc import header_problems
    from ..io.publish import check_output_folder

    problems = job.problems()
    if problems:
        raise InputError(problems[0])
    names = [tomogram_name(p) for p in job.tomograms]
    if len(set(names)) != len(names):
        raise InputError("two tomograms have the same name; rename one")
    for p in list(job.tomograms) + list(job.coords):
        if not Path(p).is_file():
            raise InputError(f"{p}: no such file")
    problems, infos = header_problems(job.tomograms, job.sampling_rate, "give --sampling-rate")
    if problems:
        raise InputError(problems[0])
    coords = read_coordinates(job.coords, names)
    check_output_folder(out, [*job.tomograms, *job.coords])
    sampling = {n: infos[p].voxel_size for n, p in zip(names, job.tomograms)}
    return names, sampling, coords


def run(job: MisalignmentJob, out: PathLike, progress: Callable[[str], None] | None = None) -> list:
    """Score the beads of every tomogram of ``job`` and classify the tomograms.

    Returns
    -------
    list of TomogramResult
        One per tomogram, in order (:func:`.detect.score_tomogram`).

    Raises
    ------
    InputError
        Unusable settings, tomograms, coordinates or network weights.
    """
    from ..io.mrc import open_mrc
    from ..io.publish import Publication
    from .detect import score_tomogram
    from .predict import MisalignmentScorer

    say = progress or (lambda line: None)
    t0 = time.perf_counter()
    out = Path(out)
    bead_A = 10.0 * job.bead_size_nm
    names, sampling, coords = check_inputs(job, out)
    scorer = MisalignmentScorer(job.models, gpu=job.gpu, batch_size=job.batch_size)
    results = []
    for path, name in zip(job.tomograms, names):
        with open_mrc(path) as (data, _header_voxel):
            res = score_tomogram(
                name,
                data,
                coords[name],
                sampling[name],
                bead_A,
                scorer,
                job.criterion,
                job.strong_threshold,
                job.weak_threshold,
                min_beads=job.min_beads,
                max_outside=job.max_outside,
            )
        for w in res.warnings:
            logger.warning("%s: %s", name, w)
        if res.decision.message:
            logger.info("%s: %s", name, res.decision.message)
        results.append(res)
    with Publication(out, "detect-misalignment") as stage:
        _write_results(stage, results, job, scorer, t0)
    for line in summary(results, out, time.perf_counter() - t0):
        say(line)
    return results


def _write_results(out, results, job, scorer, t0):
    from .results import write_results

    write_results(out, results)
    elapsed = time.perf_counter() - t0
    from ..io.jobjson import write_job_json

    fields = job_to_json(job)
    write_job_json(
        out / "job.json",
        "detect-misalignment",
        fields["fields"],
        job=fields,
        extra={
            "tomograms": {
                r.name: {
                    "label": r.decision.label,
                    "strong_score": r.decision.strong_score,
                    "weak_score": r.decision.weak_score,
                    "n_beads": r.decision.n_beads,
                    "strong_spread": r.decision.strong_spread,
                    "n_disagree": r.decision.n_disagree,
                    "n_excluded": r.decision.n_excluded,
                    "message": r.decision.message,
                    "warnings": r.warnings,
                }
                for r in results
            },
            "models": str(scorer.folder) if hasattr(scorer, "folder") else str(job.models),
            "seconds": round(elapsed, 3),
        },
    )


def summary(results: Sequence, out: PathLike, elapsed: float) -> list[str]:
    """Closing lines: counts per label, then one line per tomogram."""
    counts: dict = {}
    for r in results:
        counts[r.decision.label] = counts.get(r.decision.label, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    lines = [
        f"{len(results)} tomogram(s): {summary}; wrote {out}/scores.star and "
        f"tomograms.star in {elapsed:.1f} s"
    ]
    for r in results:
        d = r.decision
        why = (
            f", spread {d.strong_spread:.2f}, {d.n_disagree} disagree"
            if d.label != "unclassified"
            else ""
        )
        lines.append(
            f"  {r.name}: {d.label} (strong {d.strong_score:.3f}, "
            f"weak {d.weak_score:.3f}, {d.n_beads} beads{why})"
            f"{' - ' + d.message if d.message else ''}"
        )
    return lines


def job_defaults() -> dict:
    """Field name -> default of :class:`MisalignmentJob`."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(MisalignmentJob)}
