"""Conversions between Scipion objects and faml_tomo's conventions: the
transform of an aligned subtomogram, volume paths, and the RELION 5 optics
and particle columns written for a set of subtomograms."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from pwem.objects import Image
    from tomo.objects import SetOfSubTomograms

__all__ = ["scipion_matrix", "faml_transform", "relion_optics", "relion_columns"]


def scipion_matrix(rotation: ArrayLike, shift: ArrayLike) -> np.ndarray:
    """4x4 Scipion transform of a FAML result (see the module docstring).

    Parameters
    ----------
    rotation : numpy.ndarray, shape (3, 3)
        ``R``, maps the average onto the subtomogram.
    shift : numpy.ndarray, shape (3,)
        ``t`` in voxels ``(x, y, z)``.
    """
    # Scipion: particle(r) = reference(M r), the inverse of [R | t]
    rot = np.asarray(rotation, dtype=float)
    m = np.eye(4)
    m[:3, :3] = rot.T
    m[:3, 3] = -rot.T @ np.asarray(shift, dtype=float)
    return m


def faml_transform(matrix: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`scipion_matrix`: ``(R, t)`` of a Scipion matrix."""
    m = np.linalg.inv(np.asarray(matrix, dtype=float))
    return m[:3, :3], m[:3, 3]


def _volume_path(obj: Image) -> str:
    """MRC path of a Scipion volume (``path:mrc`` suffixes removed)."""
    fn = obj.getFileName()
    for suffix in (":mrc", ":mrcs"):
        if fn and fn.endswith(suffix):
            fn = fn[: -len(suffix)]
    return fn


def relion_optics(inset: SetOfSubTomograms) -> dict[str, list]:
    """RELION optics table of the subtomograms (acquisition values where
    Scipion has them, else :class:`~faml_tomo.io.relion.Acquisition`)."""
    from ..io.relion import Acquisition

    acq = inset.getAcquisition() if hasattr(inset, "getAcquisition") else None
    dflt = Acquisition()

    def value(getter: str, default: float) -> float:
        v = getattr(acq, getter)() if acq is not None and hasattr(acq, getter) else None
        return float(v) if v is not None and float(v) > 0 else default

    return {
        "rlnOpticsGroup": [1],
        "rlnOpticsGroupName": ["opticsGroup1"],
        "rlnVoltage": [value("getVoltage", dflt.voltage)],
        "rlnSphericalAberration": [value("getSphericalAberration", dflt.spherical_aberration)],
        "rlnAmplitudeContrast": [value("getAmplitudeContrast", dflt.amplitude_contrast)],
        "rlnImagePixelSize": [inset.getSamplingRate()],
        "rlnTomoTiltSeriesPixelSize": [inset.getSamplingRate()],
        "rlnImageSize": [int(inset.getDimensions()[0])],
        "rlnImageDimensionality": [3],
        "rlnCtfDataAreCtfPremultiplied": [0],
    }


def relion_columns(inset: SetOfSubTomograms) -> dict[str, list | np.ndarray]:
    """``rlnTomoName`` and, where every subtomogram has its coordinate,
    ``rlnCenteredCoordinateX/Y/ZAngst`` (Scipion keeps coordinates from
    the tomogram centre, in pixels of the coordinates)."""
    from tomo.constants import SCIPION

    coords = inset.getCoordinates3D() if hasattr(inset, "getCoordinates3D") else None
    csr = (coords.getSamplingRate() if coords is not None else None) or inset.getSamplingRate()
    names, xyz = [], []
    for item in inset.iterItems(orderBy="id"):
        c = item.getCoordinate3D() if hasattr(item, "getCoordinate3D") else None
        # the tilt-series id (what a tomograms.star names); not getVolName(),
        # which needs the tomogram linked and gives its file name
        tomo = c.getTomoId() if c is not None else None
        vol = getattr(item, "_volName", None)
        tomo = tomo or (vol.get() if vol is not None and hasattr(vol, "get") else None)
        names.append(str(tomo) if tomo else "tomogram")
        pos = None
        if c is not None and c.getX(SCIPION) is not None:
            pos = [c.getX(SCIPION) * csr, c.getY(SCIPION) * csr, c.getZ(SCIPION) * csr]
        xyz.append(pos)
    out: dict[str, list | np.ndarray] = {"rlnTomoName": names, "rlnOpticsGroup": [1] * len(names)}
    if xyz and all(p is not None for p in xyz):
        arr = np.asarray(xyz, dtype=float)
        out.update({f"rlnCenteredCoordinate{a}Angst": arr[:, j] for j, a in enumerate("XYZ")})
    return out
