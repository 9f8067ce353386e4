"""The fiducial-finding job: every setting of ``peak-high-contrast`` once
(default from :class:`~.params.PeakHighContrastParams`, unit, help), its
checks, and :func:`run`, the entry point of the command line and of
``faml-tomo run job.json``; the protocol builds its settings through it.

Outputs in ``out`` (written through :mod:`.results`): ``coordinates.star``
(every tomogram's fiducials, ``rlnTomoName``, ``rlnMicrographName``,
``rlnCoordinateX/Y/Z`` in voxels, ``rlnAutopickFigureOfMerit`` = mirror
correlation), ``<tomogram>.star``, ``<tomogram>.txt`` and
``<tomogram>_fiducials.json`` per tomogram, ``job.json`` and the run marker
``faml_run.json`` (:mod:`faml_tomo.io.publish`).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


from ..errors import InputError
from ..jobs import coerce_fields, job_to_json, option
from ..typealiases import PathLike
from .params import Z_BORDER_RULES, PeakHighContrastParams
from .results import TomogramFiducials, coordinate_table  # noqa: F401  (importable here)

__all__ = ["FiducialJob", "run", "coordinate_table"]

_D = PeakHighContrastParams()


@dataclass(frozen=True)
class FiducialJob:
    """Settings of a fiducial search (fields: see ``faml-tomo
    peak-high-contrast --help``, generated from them)."""

    TASK = "peak-high-contrast"
    SCHEMA = 1

    tomograms: tuple[Path, ...] = option(
        (), "tomograms (dark beads), memory-mapped", positional=True, nargs="+", metavar="TOMO.mrc"
    )
    sampling_rate: float | None = option(
        None, "voxel size (default: from each MRC header)", unit="Å"
    )
    bead_size_nm: float = option(_D.bead_diameter_nm, "bead diameter", unit="nm")
    box_size: int = option(
        _D.box_size,
        "box around each fiducial; fiducials whose box crosses the X or Y border are dropped",
        unit="voxels",
    )
    z_border: str = option(
        _D.z_border,
        "Z border rule: 'bead' keeps fiducials whose "
        "two-diameter cube lies inside (beads on the ice "
        "surfaces of thin tomograms), 'box' drops those whose "
        "whole box crosses the top or bottom (the paper's "
        "rule)",
        choices=Z_BORDER_RULES,
    )
    sd_threshold: float = option(_D.sd_threshold, "dark-outlier threshold", unit="SD")
    sampling_slices: int = option(_D.sampling_slices, "central slices for the threshold")
    min_coordinates: int = option(_D.min_coordinates, "minimum outlier voxels per fiducial")
    mirror_correlation: float = option(
        _D.mirror_correlation_threshold, "minimum mirror correlation"
    )
    mahalanobis: float = option(
        _D.mahalanobis_threshold, "Mahalanobis distance threshold", unit="SD"
    )
    min_contrast: float = option(
        _D.min_contrast, "minimum bead contrast, 0 = off", unit="robust SD"
    )
    relaxed_mode: bool = option(
        _D.relaxed_mode, "never return unfiltered coordinates", flag="--no-relaxed-mode"
    )
    relaxed_mode_threshold: int = option(
        _D.relaxed_mode_threshold, "relaxed mode when fewer coordinates pass the filters"
    )
    smeared_scales: tuple[float, ...] = option(
        _D.smeared_scales,
        "with fewer beads than the relaxed-mode threshold, search again "
        "for beads S times larger (smeared by misalignment; none: off)",
        nargs="*",
        metavar="S",
    )
    smeared_search: bool = option(
        _D.smeared_search,
        "never search for beads smeared into lobes, arcs or "
        "streaks when too few round beads are found (on by "
        "default: keep it before detect-misalignment)",
        flag="--no-smeared-search",
    )
    erase_beads: bool = option(
        False,
        "also write each tomogram with its beads replaced by local background and "
        "matched noise (<tomogram>_erased.mrc) and the mask of the erased voxels "
        "(<tomogram>_beads.mrc)",
    )
    erase_margin: float = option(2.0, "radius erased around each bead", unit="bead radii")
    threads: int = option(1, "FFT threads")
    seed: int = option(
        0,
        "seed of the radial-profile filter's background positions and of the fill noise",
    )

    def __post_init__(self):
        coerce_fields(self)

    def params(self) -> PeakHighContrastParams:
        """The finder's settings."""
        return PeakHighContrastParams(
            bead_diameter_nm=self.bead_size_nm,
            box_size=self.box_size,
            z_border=self.z_border,
            relaxed_mode=self.relaxed_mode,
            relaxed_mode_threshold=self.relaxed_mode_threshold,
            sampling_slices=self.sampling_slices,
            sd_threshold=self.sd_threshold,
            min_coordinates=self.min_coordinates,
            mirror_correlation_threshold=self.mirror_correlation,
            mahalanobis_threshold=self.mahalanobis,
            min_contrast=self.min_contrast,
            smeared_scales=tuple(self.smeared_scales),
            smeared_search=self.smeared_search,
        )

    def problems(self) -> list[str]:
        """Readable messages for settings that cannot run (empty: fine)."""
        out = [] if self.tomograms else ["give at least one tomogram"]
        if self.threads < 1:
            out.append(f"--threads must be >= 1, got {self.threads}")
        if not self.erase_margin >= 1:
            out.append(f"--erase-margin must be at least 1 bead radius, got {self.erase_margin}")
        out += self.params().problems(sampling_rate=self.sampling_rate)
        return out


def check_inputs(job: FiducialJob, out: PathLike) -> tuple[list[str], dict]:
    """Every check that needs no computation, before any work: settings,
    tomogram headers (voxel size, size against the box), distinct names,
    output folder.  Returns the file stem of each tomogram and
    ``{path: Å/voxel}``."""
    from ..io.mrc import header_problems
    from ..io.naming import tomogram_name
    from ..io.publish import check_output_folder

    problems = job.problems()
    if problems:
        raise InputError(problems[0])
    params = job.params()
    stems = [tomogram_name(t) for t in job.tomograms]
    if len(set(stems)) != len(stems):
        raise InputError(
            "tomograms must have distinct names (their coordinates files are named after them)"
        )
    problems, infos = header_problems(job.tomograms, job.sampling_rate, "give --sampling-rate")
    for path, info in infos.items():
        problems += [f"{path}: {m}" for m in params.problems(info.shape, info.voxel_size)]
    if problems:
        raise InputError(problems[0])
    check_output_folder(out, job.tomograms)
    return stems, {p: infos[p].voxel_size for p in job.tomograms}


def run(job: FiducialJob, out: PathLike, progress: Callable[[str], None] | None = None) -> dict:
    """Find the fiducials of every tomogram of ``job`` and write them to ``out``.

    Returns
    -------
    dict
        Per tomogram stem: path, count, relaxed mode, warnings, sampling
        rate, bead scale and seconds (as in ``job.json``).

    Raises
    ------
    InputError
        Unusable settings or tomograms (the message names the problem).
    """
    from ..io.jobjson import write_job_json
    from ..io.publish import Publication
    from . import peak_high_contrast_file  # the package's (tests replace it)
    from .results import write_coordinates_star, write_tomogram

    say = progress or (lambda line: None)
    out = Path(out)
    stems, sampling = check_inputs(job, out)
    params = job.params()
    t0 = time.perf_counter()
    records, per_tomo = [], {}
    with Publication(out, "peak-high-contrast") as stage:
        for path, stem in zip(job.tomograms, stems):
            res = peak_high_contrast_file(
                path, sampling[path], params, workers=job.threads, seed=job.seed
            )
            record = TomogramFiducials.from_result(stem, res, file_name=path.name)
            write_tomogram(stage, record)
            records.append(record)
            per_tomo[stem] = _tomogram_record(path, res)
            if job.erase_beads:
                erase_tomogram(path, stage, record, sampling[path], job)
            say(
                f"{stem}: {len(res)} fiducials"
                + (" (relaxed mode)" if res.relaxed_mode_used else "")
            )
        write_coordinates_star(stage / "coordinates.star", records)
        write_job_json(
            stage / "job.json",
            "peak-high-contrast",
            {
                "tomograms": [str(t) for t in job.tomograms],
                "sampling_rate": job.sampling_rate,
                "threads": job.threads,
                **params.to_dict(),
            },
            extra={
                "tomograms": per_tomo,
                "star": str(out / "coordinates.star"),
                "seconds": round(time.perf_counter() - t0, 3),
            },
            job=job_to_json(job),
        )
    say(
        f"wrote {sum(v['count'] for v in per_tomo.values())} coordinates to "
        f"{out / 'coordinates.star'}"
    )
    return per_tomo


def erase_tomogram(
    path: PathLike,
    folder: PathLike,
    record: TomogramFiducials,
    sampling_rate: float,
    job: FiducialJob,
) -> list[Path]:
    """Write ``<name>_erased.mrc`` and ``<name>_beads.mrc`` of one tomogram
    (:func:`.erase.erase_beads` at the beads of ``record``; a bead found by the
    larger-bead search is erased at its larger size)."""
    from ..io.mrc import open_mrc
    from .erase import erase_beads
    from .results import write_erased

    radius = 10.0 * job.bead_size_nm / 2.0 / sampling_rate * record.bead_scale
    with open_mrc(path) as (data, _voxel):
        erased = erase_beads(data, record.coordinates, radius, job.erase_margin, seed=job.seed)
    return write_erased(folder, record.name, erased, sampling_rate)


def _tomogram_record(path, res):
    return {
        "path": str(path),
        "count": len(res),
        "relaxed_mode": res.relaxed_mode_used,
        "warnings": res.warnings,
        "sampling_rate": res.stats.get("sampling_rate"),
        "bead_scale": res.stats.get("bead_scale", 1.0),
        "seconds": round(res.stats.get("time_s", 0.0), 3),
    }


def job_defaults() -> dict:
    """Field name -> default of :class:`FiducialJob`."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(FiducialJob)}
