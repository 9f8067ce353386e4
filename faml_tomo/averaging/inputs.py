"""The subtomograms a classification job names: paths, tilt ranges, the
input particle table, and every check that needs no computation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..typealiases import PathLike

if TYPE_CHECKING:
    from ..io.relion import ParticleStar
    from .checks import ParticleSetInfo
    from .job import ClassifyJob

logger = logging.getLogger(__name__)

__all__ = ["check_inputs"]


def _sources(job):
    """Paths of the subtomograms, their tilt ranges and the input particle
    table (None for a folder)."""
    source = None
    if job.star is not None:
        from ..io.relion import read_particle_star

        source = read_particle_star(job.star)
        paths = source.paths
    else:
        if not job.folder.is_dir():
            raise InputError(f"{job.folder}: not a folder")
        paths = sorted(job.folder.glob("*.mrc"))
        if not paths:
            raise InputError(f"{job.folder}: no .mrc files")
    return [Path(p) for p in paths], _tilt_ranges(job, source), source


def _tilt_ranges(job, source):
    """One tilt range, or one per subtomogram: the job's, else the STAR
    file's columns, else the tomograms file, else -60..60 (with a warning
    for files from other programs, which do not record it)."""
    if job.tilt_range is not None:
        return tuple(job.tilt_range)
    if source is not None and source.tilt_ranges is not None:
        return source.tilt_ranges
    if job.tomograms is not None:
        from ..io.relion import tomogram_tilt_ranges

        if source is None or source.tomo_names is None:
            raise InputError("--tomograms needs a --star file with rlnTomoName")
        ranges = tomogram_tilt_ranges(job.tomograms, set(source.tomo_names))
        missing = sorted(set(source.tomo_names) - set(ranges))
        if missing:
            raise InputError(
                f"{job.tomograms}: no tomogram {missing[0]!r} (of "
                f"{len(missing)} missing) that {job.star} refers to"
            )
        return [ranges[t] for t in source.tomo_names]
    if source is not None and source.flavour != "faml":
        logger.warning(
            "%s (%s) does not record tilt ranges: assuming -60..60 degrees; "
            "give --tilt-range or --tomograms",
            source.path,
            source.flavour,
        )
    return (-60.0, 60.0)


def check_inputs(
    job: ClassifyJob, out: PathLike
) -> tuple[
    list[Path],
    tuple[float, ...] | list[tuple[float, float]],
    ParticleSetInfo,
    ParticleStar | None,
]:
    """Every check that needs no computation, before any work: settings,
    particle headers (box, voxel size), references, mask, output folder.

    Returns
    -------
    paths, tilt, info, source
        Subtomogram paths, tilt range(s), their
        :class:`~faml_tomo.averaging.checks.ParticleSetInfo` and the input
        particle table (None for a folder).
    """
    from ..io.publish import check_output_folder
    from .checks import check_particles
    from .outputs import ITERATIONS_DIR

    for name in ("workers", "classes", "iterations"):
        if getattr(job, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(job, name)}")
    paths, tilt, source = _sources(job)
    voxel = job.voxel_size
    if voxel is None and source is not None and source.voxel_size:
        voxel = source.voxel_size  # stated by the file; headers may round
    info = check_particles(paths, voxel, job.references or (), job.mask)
    check_output_folder(out, [*job.inputs(), *paths], managed=[ITERATIONS_DIR])
    return paths, tilt, info, source
