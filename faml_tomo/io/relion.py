"""Particle STAR files of pre-extracted subtomograms from RELION 4/5 and Warp
read as input, and the tilt ranges of RELION 5 ``tomograms.star`` files.

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

The results are written as a RELION 5 particle file by
:mod:`faml_tomo.io.relion_write` (:func:`write_relion5_particles` and
:class:`Acquisition`, importable from here too); relative file names are
resolved by :mod:`faml_tomo.io.relion_paths`.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ..typealiases import PathLike
from .relion_paths import name_roots, resolve_names
from .relion_write import Acquisition, write_relion5_particles
from .star import StarError, read_star_blocks

logger = logging.getLogger(__name__)

READ_MESSAGE = "%s: %d %s subtomograms%s"  # the file, count, flavour, voxel size

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


def _image_names(table: dict, path: Path) -> list[str]:
    """The subtomogram file names of the particle table, as written."""
    col = next((c for c in _IMAGE_COLUMNS if c in table), None)
    if col is None:
        raise InputError(f"{path}: no rlnImageName or rlnSubtomogramName column")
    names = [str(v) for v in table[col]]
    if not names:
        raise InputError(f"{path}: no particles")
    return names


def _optics_table(blocks: dict) -> Optional[dict]:
    """The optics table as columns (one group written as pairs becomes a
    one-row table), or None when there is none or it is empty."""
    optics = blocks.get("optics")
    if optics is not None and optics and all(np.ndim(v) == 0 for v in optics.values()):
        optics = {k: np.asarray([v]) for k, v in optics.items()}  # pairs: one group
    if optics is not None and (not optics or len(next(iter(optics.values()))) == 0):
        optics = None  # an empty table
    return optics


def _check_3d_files(path: Path, general: dict, optics: Optional[dict], names: list[str]) -> None:
    """Refuse RELION 5 2D stacks and images inside stacks: FAML reads one 3D
    subtomogram file per particle."""
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


def _check_unturned_frames(path: Path, table: dict) -> None:
    """Refuse subtomograms cut in turned frames (``rlnTomoSubtomogram*`` not
    zero): their missing wedges are not about the box's Y axis."""
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


def _flavour(blocks: dict, table: dict, optics: Optional[dict]) -> str:
    """Which program wrote the file (see :class:`ParticleStar`)."""
    if "general" in blocks or "rlnCenteredCoordinateXAngst" in table:
        return "relion5"
    if any(c.startswith("famlTilt") for c in table) or (
        optics is None and "rlnMicrographName" not in table
    ):
        return "faml"
    if optics is not None and "rlnTomoName" in table:
        return "relion4"
    if optics is not None:
        return "relion3.1"
    return "warp"


def _tilt_columns(table: dict, path: Path) -> Optional[list]:
    """Per-particle tilt ranges of ``famlTiltMin`` / ``famlTiltMax``, or None."""
    if all(c in table for c in TILT_COLUMNS):
        return [(float(a), float(b)) for a, b in zip(*(table[c] for c in TILT_COLUMNS))]
    if any(c in table for c in TILT_COLUMNS):
        raise InputError(
            f"{path}: give both {TILT_COLUMNS[0]} and {TILT_COLUMNS[1]} columns, or neither"
        )
    return None


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
    table = blocks[_particle_block(blocks, path)]
    names = _image_names(table, path)
    optics = _optics_table(blocks)
    _check_3d_files(path, blocks.get("general") or {}, optics, names)
    _check_unturned_frames(path, table)
    flavour = _flavour(blocks, table, optics)
    voxel = _optics_voxel(optics, table, path) if optics else None
    if voxel is None:
        voxel = _column_voxel(table)
    tilt = _tilt_columns(table, path)
    paths = resolve_names(names, path)
    logger.info(
        READ_MESSAGE,
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
        candidates = [Path(ts)] if Path(ts).is_absolute() else [r / ts for r in name_roots(path)]
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
