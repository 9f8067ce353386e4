"""Particle STAR files of pre-extracted subtomograms from RELION 4/5 and Warp
read as input, and results written as a RELION 5 particle file.

What is read (``../shared`` research notes of 2026-12-06 on RELION 5.0
``jaz/tomography/particle_set.cpp`` / ``subtomo.cpp``, RELION 4.0 and
WarpTools 2 ``ts_export_particles``):

* **faml**: this plugin's own table (``rlnImageName``, optional
  ``famlTiltMin`` / ``famlTiltMax``, ``rlnTomoName``, coordinates);
* **relion5** / **relion4**: ``data_optics`` + ``data_particles`` of 3D
  pseudo-subtomograms (``rlnImageName`` ``*_data.mrc``, ``rlnCtfImage``
  ``*_weights.mrc``; voxel size ``rlnImagePixelSize``); RELION 5's 2D-stack
  particles (``rlnTomoSubTomosAre2DStacks 1``) are refused with the reason;
* **warp**: one ``data_`` loop (RELION 3.0 style: ``rlnMicrographName``,
  ``rlnImageName`` / ``rlnCtfImage`` of 3D subvolumes, voxel size
  ``rlnPixelSize`` or ``10000 rlnDetectorPixelSize / rlnMagnification``).

RELION writes a particle's orientation as ``A_subtomo A_particle``
(``rlnTomoSubtomogram*`` then ``rlnAngle*``); a 3D pseudo-subtomogram is cut
in the frame of ``A_subtomo``, so its missing wedge is turned with it.  FAML
models the wedge about the box's Y axis, so subtomograms cut in turned frames
are refused (re-extract without subtomogram orientations).

What is written: ``data_general`` (``rlnTomoSubTomosAre2DStacks 0``),
``data_optics`` and ``data_particles`` with every input column kept and the
FAML results in RELION 5 columns (``rlnAngle*`` relative to the subtomogram's
box, ``rlnOrigin*Angst``, ``rlnClassNumber``, ``rlnRandomSubset``...), so that
``relion_refine`` takes it for 3D subtomograms (it needs the optics' pixel
size, voltage and Cs: taken from the input where it has them, otherwise from
the caller's acquisition).
"""

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..typealiases import PathLike
from .star import StarError, read_star_blocks, write_star_blocks

logger = logging.getLogger(__name__)

__all__ = [
    "ParticleStar",
    "Acquisition",
    "read_particle_star",
    "tomogram_tilt_ranges",
    "write_relion5_particles",
    "TILT_COLUMNS",
]

TILT_COLUMNS = ("famlTiltMin", "famlTiltMax")
_IMAGE_COLUMNS = ("rlnImageName", "rlnSubtomogramName")
_STRINGS = {
    c: str
    for c in (
        "rlnImageName",
        "rlnSubtomogramName",
        "rlnCtfImage",
        "rlnTomoName",
        "rlnMicrographName",
        "rlnTomoParticleName",
        "rlnOpticsGroupName",
        "rlnTomoTiltSeriesStarFile",
        "rlnTomoVisibleFrames",
    )
}
_SUBTOMO_ANGLES = ("rlnTomoSubtomogramRot", "rlnTomoSubtomogramTilt", "rlnTomoSubtomogramPsi")
_STALE_PRIORS = (
    "rlnAngleRotPrior",
    "rlnAngleTiltPrior",
    "rlnAnglePsiPrior",
    "rlnOriginXPriorAngst",
    "rlnOriginYPriorAngst",
    "rlnOriginZPriorAngst",
)


@dataclass(frozen=True)
class Acquisition:
    """Microscope values a RELION optics table needs (kV, mm, fraction)."""

    voltage: float = 300.0
    spherical_aberration: float = 2.7
    amplitude_contrast: float = 0.07


@dataclass
class ParticleStar:
    """A particle table read by :func:`read_particle_star`.

    Attributes
    ----------
    path : Path
    paths : list of Path
        Subtomogram files (relative names resolved from the STAR's folder).
    particles : dict
        The particle table's columns as read (kept in the output).
    optics : dict or None
        The optics table (RELION >= 3.1); None for RELION 3.0 / Warp files.
    flavour : {"faml", "relion5", "relion4", "relion3.1", "warp"}
    voxel_size : float or None
        Å per voxel of the subtomograms stated by the file.
    tilt_ranges : list of (float, float) or None
        Per subtomogram, from ``famlTiltMin`` / ``famlTiltMax``.
    """

    path: Path
    paths: list
    particles: dict
    optics: Optional[dict] = None
    flavour: str = "faml"
    voxel_size: Optional[float] = None
    tilt_ranges: Optional[list] = None
    notes: list = field(default_factory=list)

    @property
    def tomo_names(self) -> Optional[np.ndarray]:
        """Tomogram of each subtomogram (``rlnTomoName``, else Warp's
        ``rlnMicrographName``), or None."""
        for col in ("rlnTomoName", "rlnMicrographName"):
            if col in self.particles:
                return np.asarray(self.particles[col], dtype=str)
        return None


def _particle_block(blocks, path):
    if "particles" in blocks:
        return "particles"
    loops = [
        n
        for n, b in blocks.items()
        if any(c in b for c in _IMAGE_COLUMNS) and not np.isscalar(next(iter(b.values())))
    ]
    if not loops:
        raise InputError(
            f"{path}: no particle table with an rlnImageName column (blocks: "
            f"{', '.join('data_' + n for n in blocks)})"
        )
    return loops[0]


def _optics_voxel(optics, table, path):
    """Voxel size of each particle from its optics group."""
    groups = np.asarray(
        table.get("rlnOpticsGroup", np.ones(len(next(iter(table.values()))), int)), int
    )
    ids = np.asarray(
        optics.get("rlnOpticsGroup", np.arange(1, len(next(iter(optics.values()))) + 1)), int
    )
    for col in ("rlnImagePixelSize", "rlnPixelSize", "rlnTomoTiltSeriesPixelSize"):
        if col in optics:
            size = dict(zip(ids.tolist(), np.asarray(optics[col], float).tolist()))
            missing = sorted(set(groups.tolist()) - set(size))
            if missing:
                raise InputError(
                    f"{path}: particles refer to optics group(s) {missing} "
                    f"that data_optics does not define"
                )
            values = sorted({size[g] for g in groups.tolist()})
            if len(values) > 1:
                raise InputError(
                    f"{path}: the optics groups give different voxel sizes "
                    f"{values} Å; classify one voxel size at a time"
                )
            return values[0]
    return None


def _column_voxel(table):
    if "rlnPixelSize" in table:
        return float(np.median(np.asarray(table["rlnPixelSize"], float)))
    if "rlnDetectorPixelSize" in table and "rlnMagnification" in table:
        return float(
            np.median(
                1e4
                * np.asarray(table["rlnDetectorPixelSize"], float)
                / np.asarray(table["rlnMagnification"], float)
            )
        )
    return None


def _roots(path):
    """Folders a relative name in ``path`` may be relative to, in order: the
    file's own folder, the RELION project (two levels above
    ``<Job>/jobNNN/``), the working directory."""
    here = Path(path).resolve().parent
    return [here, here.parent.parent, Path.cwd()]


def _resolve(names, path):
    """Absolute paths of the names, relative ones resolved against the first
    of :func:`_roots` where the first relative name exists (RELION writes
    names relative to its project folder, FAML relative to the file)."""
    rel = [n for n in names if not Path(n).is_absolute()]
    roots = _roots(path)
    base = next((r for r in roots if rel and (r / rel[0]).is_file()), roots[0])
    return [Path(n) if Path(n).is_absolute() else Path(os.path.normpath(base / n)) for n in names]


def read_particle_star(path: PathLike) -> ParticleStar:
    """Read a particle STAR file of pre-extracted 3D subtomograms.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ParticleStar

    Raises
    ------
    InputError
        Not a STAR file, no particle table or image column, RELION 5 2D
        stacks, subtomograms cut in turned frames, mixed voxel sizes, tilt
        columns given by half.
    """
    path = Path(path)
    try:
        blocks = read_star_blocks(path, dtypes=_STRINGS)
    except StarError as exc:
        raise InputError(str(exc)) from exc
    name = _particle_block(blocks, path)
    table = blocks[name]
    col = next((c for c in _IMAGE_COLUMNS if c in table), None)
    if col is None:
        raise InputError(f"{path}: no rlnImageName or rlnSubtomogramName column")
    names = [str(v) for v in table[col]]
    if not names:
        raise InputError(f"{path}: no particles")
    general = blocks.get("general") or {}
    optics = blocks.get("optics")
    if optics is not None and optics and all(np.ndim(v) == 0 for v in optics.values()):
        optics = {k: np.asarray([v]) for k, v in optics.items()}  # pairs: one group
    if optics is not None and (not optics or len(next(iter(optics.values()))) == 0):
        optics = None  # an empty table
    dims = (
        set(np.asarray(optics.get("rlnImageDimensionality", [3]), int).tolist()) if optics else {3}
    )
    if (
        int(general.get("rlnTomoSubTomosAre2DStacks", 0)) == 1
        or 2 in dims
        or any(n.endswith(".mrcs") for n in names)
    ):
        raise InputError(
            f"{path}: the particles are RELION 5 2D stacks (one tilt series "
            f"per particle), not 3D subtomograms; extract 3D subtomograms "
            f"(RELION 5 'Extract subtomos' with 'Write output as 2D stacks?' "
            f"No, or WarpTools ts_export_particles --3d)"
        )
    if any("@" in n for n in names):
        raise InputError(
            f"{path}: image names with '@' index 2D images in a stack; "
            f"FAML needs one 3D subtomogram file per particle"
        )
    if all(c in table for c in _SUBTOMO_ANGLES):
        ang = np.stack([np.asarray(table[c], float) for c in _SUBTOMO_ANGLES], axis=1)
        # ZYZ with rot + psi = 0 (mod 360) and tilt = 0 is the identity
        turned = (np.abs(ang[:, 1]) > 0.01) | (
            np.abs((ang[:, 0] + ang[:, 2] + 180.0) % 360.0 - 180.0) > 0.01
        )
        if np.any(turned):
            raise InputError(
                f"{path}: {int(turned.sum())} of {len(turned)} subtomograms were cut in "
                f"turned frames (rlnTomoSubtomogramRot/Tilt/Psi not zero): their missing "
                f"wedges are not about the box's Y axis, which FAML assumes; extract them "
                f"without subtomogram orientations (RELION 5 'Extract subtomos' keeps the "
                f"frame of the tomogram when rlnTomoSubtomogram* are zero)"
            )
    if "general" in blocks or "rlnCenteredCoordinateXAngst" in table:
        flavour = "relion5"
    elif any(c.startswith("famlTilt") for c in table) or (
        optics is None and "rlnMicrographName" not in table
    ):
        flavour = "faml"
    elif optics is not None and "rlnTomoName" in table:
        flavour = "relion4"
    elif optics is not None:
        flavour = "relion3.1"
    else:
        flavour = "warp"
    voxel = _optics_voxel(optics, table, path) if optics else None
    if voxel is None:
        voxel = _column_voxel(table)
    tilt = None
    if all(c in table for c in TILT_COLUMNS):
        tilt = [(float(a), float(b)) for a, b in zip(*(table[c] for c in TILT_COLUMNS))]
    elif any(c in table for c in TILT_COLUMNS):
        raise InputError(
            f"{path}: give both {TILT_COLUMNS[0]} and {TILT_COLUMNS[1]} columns, or neither"
        )
    paths = _resolve(names, path)
    logger.info(
        "%s: %d %s subtomograms%s",
        path,
        len(paths),
        flavour,
        f" at {voxel:g} Å/px" if voxel else "",
    )
    return ParticleStar(
        path=path,
        paths=paths,
        particles=table,
        optics=optics,
        flavour=flavour,
        voxel_size=voxel,
        tilt_ranges=tilt,
    )


def tomogram_tilt_ranges(tomograms_star: PathLike, names: set | None = None) -> dict:
    """Tilt range of each tomogram of a RELION 5 ``tomograms.star``.

    The per-tilt table of each tomogram (``rlnTomoTiltSeriesStarFile``,
    block ``data_<rlnTomoName>``) gives the tilt angles: the nominal stage
    tilt (``rlnTomoNominalStageTiltAngle``) or, without it, the refined
    ``rlnTomoYTilt``.

    Parameters
    ----------
    tomograms_star : str or Path
    names : iterable of str, optional
        Only these tomograms (default all).

    Returns
    -------
    dict
        ``{rlnTomoName: (min, max)}`` in degrees.
    """
    path = Path(tomograms_star)
    try:
        blocks = read_star_blocks(path, dtypes=_STRINGS)
    except StarError as exc:
        raise InputError(str(exc)) from exc
    glob = blocks.get("global")
    if glob is None or "rlnTomoName" not in glob:
        raise InputError(
            f"{path}: no data_global table with rlnTomoName (a RELION 5 tomograms.star)"
        )
    if "rlnTomoTiltSeriesStarFile" not in glob:
        raise InputError(
            f"{path}: no rlnTomoTiltSeriesStarFile column (RELION 4 "
            f"tomograms.star files keep projection matrices, not tilt angles); "
            f"give the tilt range instead"
        )
    out = {}
    wanted = None if names is None else {str(t) for t in names}
    for tomo, ts in zip(glob["rlnTomoName"], glob["rlnTomoTiltSeriesStarFile"]):
        if wanted is not None and str(tomo) not in wanted:
            continue
        candidates = [Path(ts)] if Path(ts).is_absolute() else [r / ts for r in _roots(path)]
        ts_path = next((c for c in candidates if c.is_file()), candidates[0])
        try:
            tilts = read_star_blocks(ts_path)
        except StarError as exc:
            raise InputError(f"{path}: tomogram {tomo}: {exc}") from exc
        table = tilts.get(str(tomo)) if len(tilts) > 1 else next(iter(tilts.values()))
        if table is None:
            raise InputError(
                f"{ts_path}: no block data_{tomo} (blocks: {', '.join('data_' + b for b in tilts)})"
            )
        col = next(
            (c for c in ("rlnTomoNominalStageTiltAngle", "rlnTomoYTilt") if c in table), None
        )
        if col is None:
            raise InputError(f"{ts_path}: no rlnTomoNominalStageTiltAngle or rlnTomoYTilt column")
        angles = np.atleast_1d(np.asarray(table[col], float))
        if angles.size == 0:
            raise InputError(f"{ts_path}: no tilt images listed")
        out[str(tomo)] = (float(angles.min()), float(angles.max()))
    return out


def _optics_for_output(source, voxel_size, box, acquisition):
    """The input's optics table completed for 3D subtomograms, or a new one."""
    acq = acquisition or Acquisition()
    if source is not None and source.optics is not None:
        optics = {k: np.asarray(v) for k, v in source.optics.items()}
        n = len(next(iter(optics.values())))
    else:
        n = 1
        optics = {"rlnOpticsGroup": np.array([1]), "rlnOpticsGroupName": np.array(["optics1"])}
        table = source.particles if source is not None else {}
        for col, default in (
            ("rlnVoltage", acq.voltage),
            ("rlnSphericalAberration", acq.spherical_aberration),
            ("rlnAmplitudeContrast", acq.amplitude_contrast),
        ):
            value = float(np.median(np.asarray(table[col], float))) if col in table else default
            optics[col] = np.array([value])
    defaults = {
        "rlnVoltage": acq.voltage,
        "rlnSphericalAberration": acq.spherical_aberration,
        "rlnAmplitudeContrast": acq.amplitude_contrast,
        "rlnTomoTiltSeriesPixelSize": voxel_size,
        "rlnImagePixelSize": voxel_size,
        "rlnImageSize": int(box),
        "rlnImageDimensionality": 3,
    }
    for col, value in defaults.items():
        if col not in optics:
            optics[col] = np.full(n, value)
    if "rlnCtfDataAreCtfPremultiplied" not in optics:
        # RELION pseudo-subtomograms are; Warp and FAML's simulated ones are not
        premult = int(source is not None and source.flavour in ("relion4", "relion5"))
        optics["rlnCtfDataAreCtfPremultiplied"] = np.full(n, premult)
    return optics


def write_relion5_particles(
    path: PathLike,
    results: dict,
    n_particles: int,
    voxel_size: float,
    box: int,
    source: Optional[ParticleStar] = None,
    image_names: Sequence[str] | None = None,
    extra: Optional[dict] = None,
    acquisition: Optional[Acquisition] = None,
) -> Path:
    """Write a RELION 5 particle file of 3D subtomograms.

    Parameters
    ----------
    path : str or Path
    results : dict
        Columns that replace or add to the input's (``rlnAngleRot``,
        ``rlnOriginXAngst``, ``rlnClassNumber``...), length ``n_particles``.
    n_particles : int
    voxel_size : float
        Å per voxel of the subtomograms.
    box : int
        Box edge in voxels.
    source : ParticleStar, optional
        The input table: its columns are kept (results win) and its optics
        table completed.
    image_names : sequence of str, optional
        ``rlnImageName`` when there is no source table.
    extra : dict, optional
        Further columns (e.g. ``rlnTomoName`` from Scipion) added where the
        input lacks them.
    acquisition : Acquisition, optional
        Voltage, Cs and amplitude contrast for an optics table the input
        does not give (RELION needs them to read the file).
    """
    particles = {}
    if source is not None:
        particles.update({k: np.asarray(v) for k, v in source.particles.items()})
        # names as resolved when read: the new file lives in another folder
        particles["rlnImageName"] = np.asarray([str(p) for p in source.paths])
        if "rlnCtfImage" in particles:
            particles["rlnCtfImage"] = np.asarray(
                [str(p) for p in _resolve([str(v) for v in particles["rlnCtfImage"]], source.path)]
            )
        for col in _STALE_PRIORS:
            # priors of the poses replaced below would pull RELION back to them
            particles.pop(col, None)
    elif image_names is not None:
        particles["rlnImageName"] = np.asarray([str(p) for p in image_names])
    for k, v in (extra or {}).items():
        particles.setdefault(k, np.asarray(v))
    for k, v in results.items():
        particles[k] = np.asarray(v)
    bad = {k: len(v) for k, v in particles.items() if len(v) != n_particles}
    if bad:
        raise InputError(f"particle columns of the wrong length (expected {n_particles}): {bad}")
    if "rlnOpticsGroup" not in particles:
        particles["rlnOpticsGroup"] = np.ones(n_particles, int)
    if "rlnTomoName" not in particles and "rlnMicrographName" in particles:
        # Warp names the tilt series rlnMicrographName; RELION 5 groups by rlnTomoName
        particles["rlnTomoName"] = particles["rlnMicrographName"]
    optics = _optics_for_output(source, voxel_size, box, acquisition)
    # RELION 5 drops the legacy pixel columns when it writes; so do we
    for col in ("rlnMagnification", "rlnDetectorPixelSize"):
        particles.pop(col, None)
    blocks = {
        "general": {"rlnTomoSubTomosAre2DStacks": 0},
        "optics": optics,
        "particles": particles,
    }
    return write_star_blocks(path, blocks, version=50001)
