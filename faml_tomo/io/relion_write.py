"""FAML results written as a RELION 5 particle file of 3D subtomograms.

What is written: ``data_general`` (``rlnTomoSubTomosAre2DStacks 0``),
``data_optics`` and ``data_particles`` with every input column kept and the
FAML results in RELION 5 columns (``rlnAngle*`` relative to the subtomogram's
box, ``rlnOrigin*Angst``, ``rlnClassNumber``, ``rlnRandomSubset``...), so that
``relion_refine`` takes it for 3D subtomograms (it needs the optics' pixel
size, voltage and Cs: taken from the input where it has them, otherwise from
the caller's acquisition).  The input files are read by
:mod:`faml_tomo.io.relion`, which also exports these names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from ..errors import InputError
from ..typealiases import PathLike
from .relion_paths import resolve_names
from .star import write_star_blocks

if TYPE_CHECKING:
    from .relion import ParticleStar

__all__ = ["Acquisition", "write_relion5_particles"]

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


def _optics_for_output(
    source: ParticleStar | None, voxel_size: float, box: int, acquisition: Acquisition | None
) -> dict:
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
                [
                    str(p)
                    for p in resolve_names([str(v) for v in particles["rlnCtfImage"]], source.path)
                ]
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
