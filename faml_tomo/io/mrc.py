"""Reading and writing volumes as MRC files.

All volumes in faml_tomo are numpy arrays indexed ``[z, y, x]`` (the MRC
section order) with an isotropic voxel size in Å.  Writes are atomic: the
data go to a temporary file in the destination folder, which is renamed over
the target only once it is complete, so an interrupted run never leaves a
half-written MRC behind.
"""

import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Optional

import mrcfile
from mrcfile.mrcfile import MrcFile
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import __version__
from ..errors import InputError
from ..typealiases import PathLike
from .publish import file_mode, is_atomic_temp

logger = logging.getLogger(__name__)

__all__ = [
    "MRCError",
    "VolumeInfo",
    "read_mrc",
    "open_mrc",
    "read_mrc_header",
    "write_mrc",
    "atomic_path",
    "check_volume",
    "require_voxel_size",
    "header_problems",
]


class MRCError(InputError):
    """A volume file or array that cannot be used; the message names the
    path (where there is one) and the reason."""


@dataclass(frozen=True)
class VolumeInfo:
    """Header facts of an MRC volume.

    Attributes
    ----------
    shape : tuple of int
        ``(nz, ny, nx)`` in voxels.
    voxel_size : float or None
        Voxel size in Å (the x voxel size of the header); None when the
        header gives none.
    dtype : numpy.dtype
        Data type of the stored values.
    """

    shape: tuple
    voxel_size: Optional[float]
    dtype: np.dtype


def check_volume(
    data: ArrayLike, name: str = "volume", allow_non_finite: bool = False
) -> np.ndarray:
    """Check that ``data`` is a finite 3D numeric array.

    Parameters
    ----------
    data : array_like
        The candidate volume, shape ``(nz, ny, nx)``.
    name : str
        How the error message refers to the volume (for example its path).
    allow_non_finite : bool
        Skip the NaN/Inf check (it reads every value).

    Returns
    -------
    numpy.ndarray
        ``data`` as an array (not copied when it already is one).

    Raises
    ------
    MRCError
        If the array is not 3D, not numeric, empty, or holds NaN or Inf.
    """
    arr = np.asarray(data)
    if arr.ndim != 3:
        raise MRCError(
            f"{name}: expected a 3D volume, got an array of shape {arr.shape} ({arr.ndim}D)"
        )
    if arr.size == 0:
        raise MRCError(f"{name}: volume is empty (shape {arr.shape})")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise MRCError(f"{name}: volume has non-numeric type {arr.dtype}")
    if np.iscomplexobj(arr):
        raise MRCError(f"{name}: volume is complex; MRC volumes must be real")
    if not allow_non_finite and np.issubdtype(arr.dtype, np.floating):
        # Summing is a cheap single pass that propagates NaN and Inf.
        if not np.isfinite(np.sum(arr, dtype=np.float64)):
            n_bad = int(np.count_nonzero(~np.isfinite(arr)))
            if n_bad:
                raise MRCError(f"{name}: volume contains {n_bad} NaN or Inf value(s)")
    return arr


def _open(path: PathLike, mmap: bool) -> MrcFile:
    path = Path(path)
    if not path.exists():
        raise MRCError(f"{path}: no such file")
    if path.is_dir():
        raise MRCError(f"{path}: is a folder, not an MRC file")
    opener = mrcfile.mmap if mmap else mrcfile.open
    try:
        with warnings.catch_warnings():
            # permissive=False raises on a corrupt header; turn the remaining
            # RuntimeWarnings (e.g. odd map id) into log lines, not noise.
            warnings.simplefilter("ignore", RuntimeWarning)
            return opener(str(path), mode="r", permissive=False)
    except (ValueError, OSError, EOFError) as exc:
        reason = _truncation(path) or str(exc) or exc.__class__.__name__
        raise MRCError(f"{path}: not a valid MRC file: {reason}") from exc


def _truncation(path):
    """A message if the header is readable but the file is shorter than the
    header announces (an interrupted copy or download), else None."""
    try:
        with mrcfile.open(str(path), header_only=True, permissive=True) as mrc:
            h = mrc.header
            mode = int(h.mode)
            n = int(h.nx) * int(h.ny) * int(h.nz)
            itemsize = mrcfile.utils.dtype_from_mode(mode).itemsize
            expected = 1024 + int(h.nsymbt) + n * itemsize
    except Exception:
        return None
    actual = Path(path).stat().st_size
    if actual < expected:
        return f"truncated: the header announces {expected} bytes, the file has {actual}"
    return None


def _voxel_size(mrc):
    """The header's x voxel size in Å, or None when it gives none (0)."""
    vs = float(mrc.voxel_size.x)
    return vs if np.isfinite(vs) and vs > 0 else None


def require_voxel_size(
    voxel_size: float | None, path: PathLike, hint: str = "set it in the header"
) -> float:
    """``voxel_size`` if it is a positive number, else an :class:`MRCError`
    naming ``path`` (an MRC without voxel size is never read as 1 Å/px).

    >>> require_voxel_size(7.5, "a.mrc")
    7.5
    """
    if voxel_size is None or not np.isfinite(voxel_size) or voxel_size <= 0:
        raise MRCError(f"{path}: the header gives no voxel size; {hint}")
    return float(voxel_size)


def header_problems(
    paths: Sequence[PathLike], voxel_size: float | None = None, hint: str = "give the voxel size"
) -> tuple[list, dict]:
    """Read the headers of volumes before any work.

    Parameters
    ----------
    paths : sequence of path-like
    voxel_size : float, optional
        Å per voxel given by the user (used instead of the headers').
    hint : str
        What the message tells the user to do about a missing voxel size.

    Returns
    -------
    problems : list of str
        One message per unreadable file, missing voxel size or bad
        ``voxel_size``.
    infos : dict
        ``{path: VolumeInfo}`` of the readable files, with ``voxel_size``
        replaced by the one given.
    """
    problems: list[str] = []
    infos: dict = {}
    if voxel_size is not None and not (np.isfinite(voxel_size) and voxel_size > 0):
        return [f"voxel size must be > 0 Å, got {voxel_size}"], infos
    for p in paths:
        try:
            info = read_mrc_header(p)
        except MRCError as exc:
            problems.append(str(exc))
            continue
        if voxel_size is not None:
            info = VolumeInfo(info.shape, float(voxel_size), info.dtype)
        elif info.voxel_size is None:
            problems.append(f"{p}: the header gives no voxel size; {hint}")
            continue
        infos[p] = info
    return problems, infos


def read_mrc_header(path: PathLike) -> VolumeInfo:
    """Read only the header of an MRC file.

    Parameters
    ----------
    path : str or Path
        The MRC file.

    Returns
    -------
    VolumeInfo
        Shape ``(nz, ny, nx)``, voxel size in Å, data type.
    """
    with _open(path, mmap=True) as mrc:
        if mrc.data is None or mrc.data.ndim != 3:
            shape = None if mrc.data is None else mrc.data.shape
            raise MRCError(f"{path}: expected a 3D volume, header gives shape {shape}")
        return VolumeInfo(tuple(int(s) for s in mrc.data.shape), _voxel_size(mrc), mrc.data.dtype)


def read_mrc(
    path: PathLike, dtype: DTypeLike = np.float32, check_finite: bool = True
) -> tuple[np.ndarray, float | None]:
    """Read a 3D MRC volume into memory.

    Parameters
    ----------
    path : str or Path
        The MRC file.
    dtype : numpy dtype, optional
        Type of the returned array (default float32).
    check_finite : bool, optional
        Raise if the data hold NaN or Inf (default True).

    Returns
    -------
    data : numpy.ndarray
        The volume, shape ``(nz, ny, nx)``.
    voxel_size : float or None
        Voxel size in Å; None when the header gives none (never guessed).

    Raises
    ------
    MRCError
        Missing file, corrupt or truncated MRC, data not 3D, or NaN/Inf data.
    """
    with _open(path, mmap=False) as mrc:
        if mrc.data is None:
            raise MRCError(f"{path}: MRC file holds no data")
        data = np.array(mrc.data, dtype=dtype)
        voxel_size = _voxel_size(mrc)
    check_volume(data, name=str(path), allow_non_finite=not check_finite)
    return data, voxel_size


class open_mrc:
    """Memory-map a (large) MRC volume for reading, as a context manager.

    Only the slices actually indexed are read from disk, so tomograms larger
    than memory can be processed slab by slab.

    Examples
    --------
    >>> with open_mrc("tomo.mrc") as (data, voxel_size):   # doctest: +SKIP
    ...     central = np.asarray(data[data.shape[0] // 2])
    """

    def __init__(self, path: PathLike) -> None:
        self.path = path
        self._mrc: MrcFile | None = None

    def __enter__(self) -> tuple[np.ndarray, float | None]:
        mrc = self._mrc = _open(self.path, mmap=True)
        data = mrc.data
        if data is None or data.ndim != 3:
            shape = None if data is None else data.shape
            mrc.close()
            raise MRCError(f"{self.path}: expected a 3D volume, got data of shape {shape}")
        return data, _voxel_size(mrc)

    def __exit__(self, *exc: object) -> Literal[False]:
        assert self._mrc is not None  # opened by __enter__
        self._mrc.close()
        return False


class atomic_path:
    """Context manager giving a temporary path beside ``path``; on success the
    temporary file is renamed over ``path`` (atomic on POSIX), on error it is
    removed and ``path`` is left untouched.

    Examples
    --------
    >>> with atomic_path("out.star") as tmp:             # doctest: +SKIP
    ...     Path(tmp).write_text(text)
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        self.tmp: Path | None = None

    def remove_stale(self) -> None:
        """Delete temporary files of earlier writes of this path that a
        killed process left behind (only one writer per path at a time)."""
        for old in self.path.parent.glob(f".{self.path.name}.*.tmp{self.path.suffix}"):
            if is_atomic_temp(old.name):
                old.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp" + self.path.suffix, dir=self.path.parent
        )
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        assert self.tmp is not None  # made by __enter__
        if exc_type is None:
            os.chmod(self.tmp, file_mode())  # mkstemp makes 0600: follow the umask
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def write_mrc(
    path: PathLike,
    data: ArrayLike,
    voxel_size: float,
    origin: Sequence[float] | None = None,
    check_finite: bool = True,
    dtype: DTypeLike = np.float32,
) -> Path:
    """Write a 3D volume atomically as an MRC file (float32 unless ``dtype``
    says otherwise, e.g. int8 for a mask: MRC mode 0).

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.  An existing file is
        replaced only once the new one is completely written.
    data : array_like
        Volume of shape ``(nz, ny, nx)``.
    voxel_size : float
        Voxel size in Å, > 0.
    origin : tuple of float, optional
        Header origin ``(x, y, z)`` in Å.
    check_finite : bool, optional
        Refuse NaN/Inf data (default True).
    dtype : numpy dtype, optional
        Type stored (an MRC mode: float32 2, int8 0, int16 1, uint16 6).

    Raises
    ------
    MRCError
        For a non-3D or non-finite array or a non-positive voxel size.
    """
    arr = check_volume(data, name=str(path), allow_non_finite=not check_finite)
    if not np.isfinite(voxel_size) or voxel_size <= 0:
        raise MRCError(f"{path}: voxel size must be > 0 Å, got {voxel_size}")
    with atomic_path(path) as tmp:
        with mrcfile.new(str(tmp), overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(arr, dtype=dtype))
            mrc.voxel_size = float(voxel_size)
            if origin is not None:
                mrc.header.origin = tuple(float(o) for o in origin)
            # mrcfile's label carries the time: same data, same bytes instead
            mrc.header.label[0] = f"faml-tomo {__version__}".encode()
            mrc.header.nlabl = 1
    logger.debug("wrote %s %s at %.3f Å/px", path, arr.shape, voxel_size)
    return Path(path)
