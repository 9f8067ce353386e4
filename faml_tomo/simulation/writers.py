"""Writing simulated data: MRC volumes and stacks, STAR tables, tilt files.

Files are written atomically (see :func:`faml_tomo.io.mrc.atomic_path`).

Subtomograms (:func:`write_subtomograms`)::

    <out>/subtomograms/<prefix>_000001.mrc ...   one MRC per particle
    <out>/references/<class>.mrc                  noise-free structures
    <out>/particles.star                          data_optics + data_particles

Tilt series and tomograms (:func:`write_tilt_series`)::

    <out>/<name>.mrcs          tilt series (image stack, counts)
    <out>/<name>.tlt           tilt angles, one per line (IMOD)
    <out>/<name>_tilts.star    per-image angle, exposure and misalignment applied
    <out>/<name>.mrc           tomogram (if given), binned voxel size
    <out>/<name>_beads.star    true bead centres in the tomogram's voxel frame
    <out>/<name>_beads.txt     the same as "x y z" lines (Scipion text import)
"""

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np

from ..io.mrc import atomic_path, write_mrc
from ..io.star import write_star, write_star_blocks
from ..typealiases import PathLike
from .reconstruct import binned_coordinates

logger = logging.getLogger(__name__)

__all__ = ["write_subtomograms", "write_tilt_series", "write_stack", "subtomogram_star_tables"]


def write_stack(path: PathLike, images: np.ndarray, pixel_size: float) -> Path:
    """Write a 2D image stack ``(n, ny, nx)`` as an MRC image stack (.mrcs)."""
    arr = np.ascontiguousarray(images, dtype=np.float32)
    with atomic_path(path) as tmp:
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(arr)
            mrc.set_image_stack()
            mrc.voxel_size = float(pixel_size)
    return Path(path)


def subtomogram_star_tables(
    sset: Any, image_names: Sequence[str], tomo_name: str = "simulated"
) -> dict:
    """The ``optics`` and ``particles`` tables of a simulated set.

    Parameters
    ----------
    sset : SubtomogramSet
    image_names : sequence of str
        ``rlnImageName`` of each particle (paths relative to the STAR file).
    tomo_name : str
        ``rlnTomoName`` / ``rlnMicrographName`` of all particles.

    Returns
    -------
    dict
        ``{"optics": {...}, "particles": {...}}`` column dicts for
        :func:`faml_tomo.io.star.write_star_blocks`.  Besides RELION's labels
        the particles carry the ground truth as ``famlClassName``,
        ``famlShiftX/Y/ZPx`` (voxels), ``famlR11`` .. ``famlR33`` (active
        rotation matrix, reference -> particle) and ``famlSnr``.
    """
    p, t = sset.params, sset.truth
    n = len(sset)
    ctf = p.ctf
    optics = {
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnVoltage": [ctf.voltage if ctf else 300.0],
        "rlnSphericalAberration": [ctf.cs if ctf else 0.0],
        "rlnAmplitudeContrast": [ctf.amplitude_contrast if ctf else 0.0],
        "rlnImagePixelSize": [float(p.pixel_size)],
        "rlnImageSize": [int(p.box)],
        "rlnImageDimensionality": [3],
        "rlnCtfDataAreCtfPremultiplied": [0],
    }
    eul = t.eulers
    sh_a = t.shifts_angstrom
    c = int(p.box) // 2
    parts = {
        "rlnTomoName": [tomo_name] * n,
        "rlnMicrographName": [tomo_name] * n,
        "rlnImageName": list(image_names),
        "rlnCoordinateX": np.full(n, float(c)),
        "rlnCoordinateY": np.full(n, float(c)),
        "rlnCoordinateZ": np.full(n, float(c)),
        "rlnAngleRot": eul[:, 0],
        "rlnAngleTilt": eul[:, 1],
        "rlnAnglePsi": eul[:, 2],
        "rlnOriginXAngst": sh_a[:, 0],
        "rlnOriginYAngst": sh_a[:, 1],
        "rlnOriginZAngst": sh_a[:, 2],
        "rlnClassNumber": t.class_number,
        "rlnOpticsGroup": np.ones(n, int),
        "famlTiltMin": np.full(n, float(p.tilt_min)),
        "famlTiltMax": np.full(n, float(p.tilt_max)),
    }
    if ctf is not None:
        df = -t.defocus * 1e4  # RELION: Å, positive underfocus
        parts.update({"rlnDefocusU": df, "rlnDefocusV": df, "rlnDefocusAngle": np.zeros(n)})
    parts["famlClassName"] = [t.class_names[i] for i in t.class_index]
    for k, ax in enumerate("XYZ"):
        parts[f"famlShift{ax}Px"] = t.shifts[:, k]
    for i in range(3):
        for j in range(3):
            parts[f"famlR{i + 1}{j + 1}"] = t.rotations[:, i, j]
    parts["famlSnr"] = t.snr
    return {"optics": optics, "particles": parts}


def write_subtomograms(
    out_dir: PathLike, sset: Any, prefix: str = "subtomo", write_clean: bool = False
) -> dict:
    """Write a :class:`~.subtomograms.SubtomogramSet`.

    Returns
    -------
    dict
        Paths: ``star``, ``subtomograms`` (list), ``references`` (dict),
        ``clean`` (list, if written).
    """
    out = Path(out_dir)
    px = sset.params.pixel_size
    names, paths = [], []
    for i, vol in enumerate(sset.volumes):
        rel = f"subtomograms/{prefix}_{i + 1:06d}.mrc"
        paths.append(write_mrc(out / rel, vol, px))
        names.append(rel)
    clean = []
    if write_clean and sset.clean is not None:
        for i, vol in enumerate(sset.clean):
            clean.append(write_mrc(out / f"clean/{prefix}_{i + 1:06d}.mrc", vol, px))
    refs = {
        name: write_mrc(out / f"references/{name}.mrc", vol, px)
        for name, vol in sset.references.items()
    }
    star = write_star_blocks(out / "particles.star", subtomogram_star_tables(sset, names))
    logger.info("wrote %d subtomograms and %s", len(paths), star)
    return {"star": star, "subtomograms": paths, "references": refs, "clean": clean}


def write_tilt_series(
    out_dir: PathLike,
    ts: Any,
    name: str = "TS_01",
    tomogram: np.ndarray | None = None,
    binning: int = 1,
) -> dict:
    """Write a :class:`~.tiltseries.TiltSeries` (and its tomogram).

    Parameters
    ----------
    out_dir : str or Path
    ts : TiltSeries
    name : str
        Base name of the files.
    tomogram : numpy.ndarray, optional
        Reconstruction ``(nz // b, ny // b, nx // b)`` to write.
    binning : int
        Binning of ``tomogram``; bead coordinates are written in its frame.

    Returns
    -------
    dict
        Paths of the files written.
    """
    out = Path(out_dir)
    px = ts.pixel_size
    paths = {"tilt_series": write_stack(out / f"{name}.mrcs", ts.images, px)}
    tlt = out / f"{name}.tlt"
    with atomic_path(tlt) as tmp:
        tmp.write_text("".join(f"{a:.2f}\n" for a in ts.angles))
    paths["tlt"] = tlt
    paths["tilts_star"] = write_star(
        out / f"{name}_tilts.star",
        {
            "rlnMicrographName": [f"{i + 1}@{name}.mrcs" for i in range(len(ts.angles))],
            "rlnTomoNominalStageTiltAngle": ts.angles,
            "rlnMicrographPreExposure": ts.pre_exposure,
            "famlAcquisitionRank": ts.rank,
            "famlMisalignXAngst": ts.shift_x,
            "famlMisalignYAngst": ts.shift_y,
            "famlMisalignRotDeg": ts.rotation,
            "famlMisalignXPx": ts.shift_x / px,
            "famlMisalignYPx": ts.shift_y / px,
        },
        name,
    )
    b = int(binning)
    xyz = binned_coordinates(ts.beads, b)
    full = ts.beads
    paths["beads_star"] = write_star(
        out / f"{name}_beads.star",
        {
            "rlnTomoName": [name] * len(xyz),
            "rlnCoordinateX": xyz[:, 0],
            "rlnCoordinateY": xyz[:, 1],
            "rlnCoordinateZ": xyz[:, 2],
            "famlFullResX": full[:, 0],
            "famlFullResY": full[:, 1],
            "famlFullResZ": full[:, 2],
            "famlBinning": np.full(len(xyz), b),
            "famlBeadDiameterAngst": np.full(len(xyz), ts.slab.params.bead_diameter),
        },
        "beads",
    )
    txt = out / f"{name}_beads.txt"
    with atomic_path(txt) as tmp:
        tmp.write_text("".join(f"{x:.2f} {y:.2f} {z:.2f}\n" for x, y, z in xyz))
    paths["beads_txt"] = txt
    if tomogram is not None:
        paths["tomogram"] = write_mrc(out / f"{name}.mrc", tomogram, px * b)
    logger.info("wrote tilt series %s in %s", name, out)
    return paths
