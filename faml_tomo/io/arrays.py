"""Deterministic ``.npz`` files: the same arrays give the same bytes (numpy's
``savez`` stamps each member with the current time), written atomically."""

import zipfile

import numpy as np
from numpy.typing import ArrayLike

from ..typealiases import PathLike
from .mrc import atomic_path

__all__ = ["save_npz"]

# The earliest time a zip header can hold; any fixed value would do.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def save_npz(path: PathLike, compress: bool = False, **arrays: ArrayLike) -> None:
    """Write ``arrays`` as an ``.npz`` readable by :func:`numpy.load`.

    Parameters
    ----------
    path : path-like
        Destination; replaced only once the new file is complete.
    compress : bool
        Deflate the members (as :func:`numpy.savez_compressed`).
    **arrays
        Name -> array (``allow_pickle`` is off: plain dtypes only).
    """
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, mode="w", compression=method, allowZip64=True) as zf:
            for name, value in arrays.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
                info.compress_type = method
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
