"""Input checks of a classification run (subtomogram headers, box, voxel
size, references, mask), run before any work and shared by the command line,
the Scipion protocol's ``_validate`` and the Python API."""

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from ..errors import InputError
from ..typealiases import PathLike

logger = logging.getLogger(__name__)

__all__ = ["ParticleSetInfo", "particle_problems", "check_particles"]

# Relative difference of voxel sizes still taken as equal (header rounding).
VOXEL_TOLERANCE = 1e-3
# Problems listed before the rest are only counted.
MAX_LISTED = 5


@dataclass(frozen=True)
class ParticleSetInfo:
    """What the headers of a particle set say.

    Attributes
    ----------
    box : int
        Edge of the cubic subtomograms in voxels.
    voxel_size : float
        Å per voxel (the headers' or the one given).
    """

    box: int
    voxel_size: float


def _fmt(shape):
    return "x".join(str(s) for s in shape[::-1])


def _read_headers(paths: Sequence, problems: List[str]) -> Tuple[dict, dict, list]:
    """The box shapes and voxel sizes the headers give (each with its first
    file) and the files whose header gives no voxel size; unreadable headers
    are added to ``problems``."""
    from ..io.mrc import read_mrc_header

    shapes: dict = {}
    sizes: dict = {}
    no_size: list = []
    unreadable = 0
    for p in paths:
        try:
            info = read_mrc_header(p)
        except InputError as exc:
            unreadable += 1
            if unreadable <= MAX_LISTED:
                problems.append(str(exc))
            continue
        shapes.setdefault(info.shape, p)
        if info.voxel_size is None:
            no_size.append(p)
        else:
            sizes.setdefault(round(info.voxel_size, 4), p)
    if unreadable > MAX_LISTED:
        problems.append(f"... and {unreadable - MAX_LISTED} more unreadable subtomograms")
    return shapes, sizes, no_size


def _common_box(shapes: dict, problems: List[str]) -> Optional[tuple]:
    """The one cubic shape of the subtomograms (None, with a problem, when
    they differ or are not cubic)."""
    if len(shapes) > 1:
        problems.append(
            "the subtomograms have different box sizes: "
            + "; ".join(f"{_fmt(s)} (e.g. {p})" for s, p in list(shapes.items())[:MAX_LISTED])
        )
    shape = next(iter(shapes)) if len(shapes) == 1 else None
    if shape is not None and len(set(shape)) != 1:
        problems.append(f"{shapes[shape]}: subtomograms must be cubic, got {_fmt(shape)}")
        shape = None
    return shape


def _common_voxel_size(
    voxel_size: Optional[float], sizes: dict, no_size: list, problems: List[str]
) -> Optional[float]:
    """The voxel size of the run: the one given (headers that disagree are
    logged), else the headers' common one (None, with a problem, when a
    header gives none or they differ)."""
    if voxel_size is None:
        if no_size:
            problems.append(
                f"{no_size[0]}: the header gives no voxel size"
                + (f" (nor do {len(no_size) - 1} more)" if len(no_size) > 1 else "")
                + "; give the voxel size"
            )
        vals = sorted(sizes)
        if vals and vals[-1] > vals[0] * (1 + VOXEL_TOLERANCE):
            problems.append(
                "the subtomograms have different voxel sizes: "
                + ", ".join(f"{v:g} Å (e.g. {sizes[v]})" for v in vals[:MAX_LISTED])
            )
        elif vals and not no_size:
            voxel_size = float(vals[0])
    elif sizes:
        off = [v for v in sizes if abs(v - voxel_size) > VOXEL_TOLERANCE * voxel_size]
        if off:
            logger.warning(
                "using %g Å/voxel; headers say %s",
                voxel_size,
                ", ".join(f"{v:g}" for v in sorted(off)),
            )
    return voxel_size


def _box_problems(
    references: Sequence, mask: Optional[PathLike], shape: Optional[tuple], problems: List[str]
) -> None:
    """Add a problem for each reference or mask that cannot be read or whose
    box differs from the subtomograms'."""
    from ..io.mrc import read_mrc_header

    for what, files in (
        ("reference", list(references or [])),
        ("mask", [mask] if mask is not None else []),
    ):
        for p in files:
            try:
                s = read_mrc_header(p).shape
            except InputError as exc:
                problems.append(f"{what}: {exc}")
                continue
            if shape is not None and s != shape:
                problems.append(
                    f"{p}: {what} box {_fmt(s)} differs from the subtomograms' {_fmt(shape)}"
                )


def particle_problems(
    paths: Sequence,
    voxel_size: Optional[float] = None,
    references: Sequence = (),
    mask: Optional[PathLike] = None,
) -> Tuple[List[str], Optional[ParticleSetInfo]]:
    """Check the subtomogram files of a run from their headers.

    Parameters
    ----------
    paths : sequence of path-like
        The subtomograms (MRC).
    voxel_size : float, optional
        Å per voxel to use instead of the headers' (required when a header
        gives none; headers that disagree with it are logged).
    references, mask : sequence of path-like, path-like, optional
        Initial averages and reference mask: same box as the subtomograms.

    Returns
    -------
    problems : list of str
        One readable message per problem (empty when all is well).
    info : ParticleSetInfo or None
        Box and voxel size, when they could be established.
    """
    problems: List[str] = []
    if voxel_size is not None and not (voxel_size > 0):
        problems.append(f"voxel size must be > 0 Å, got {voxel_size:g}")
        voxel_size = None
    shapes, sizes, no_size = _read_headers(paths, problems)
    if not paths:
        problems.append("no subtomograms")
    shape = _common_box(shapes, problems)
    voxel_size = _common_voxel_size(voxel_size, sizes, no_size, problems)
    _box_problems(references, mask, shape, problems)
    result = (
        ParticleSetInfo(int(shape[0]), float(voxel_size))
        if not problems and shape is not None and voxel_size
        else None
    )
    return problems, result


def check_particles(
    paths: Sequence,
    voxel_size: Optional[float] = None,
    references: Sequence = (),
    mask: Optional[PathLike] = None,
) -> ParticleSetInfo:
    """:func:`particle_problems`, raising :class:`InputError` with the first
    problem (and how many more there are)."""
    problems, info = particle_problems(paths, voxel_size, references, mask)
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise InputError(problems[0] + more)
    assert info is not None  # no problems: the headers were read
    return info
