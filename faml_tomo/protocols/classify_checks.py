"""Checks of the volumes a FAML classification reads besides the
subtomograms: initial references and masks (box, sampling, mask values).
Each returns readable problems for the protocol's ``_validate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from .convert import _volume_path

if TYPE_CHECKING:
    from pwem.objects import Volume

__all__ = ["volume_problems", "mask_value_problems"]


def volume_problems(
    objs: Sequence[Volume], what: str, shape: Sequence[int], sampling: float | None
) -> list[str]:
    """Problems of volumes ``objs`` (``what``: how messages name them) whose
    box must be ``shape`` (z, y, x) and sampling rate ``sampling`` (Å/px)."""
    from ..io.mrc import read_mrc_header

    errors = []
    for obj in objs:
        path = _volume_path(obj)
        try:
            info = read_mrc_header(path)
        except InputError as exc:
            errors.append(f"{what}: {exc}")
            continue
        if tuple(info.shape) != tuple(shape):
            errors.append(
                f"{what} {path} has {'x'.join(map(str, info.shape[::-1]))} "
                f"voxels, the subtomograms {'x'.join(map(str, shape[::-1]))}"
            )
        sr = obj.getSamplingRate() if hasattr(obj, "getSamplingRate") else None
        if sr and sampling and abs(sr - sampling) > 1e-3 * sampling:
            errors.append(f"{what} {path} has {sr:g} Å/px, the subtomograms {sampling:g} Å/px")
    return errors


def mask_value_problems(obj: Volume, what: str) -> list[str]:
    """Problems of mask ``obj``: values outside 0..1, or all zero."""
    from ..io.mrc import read_mrc

    try:
        vol = read_mrc(_volume_path(obj))[0]
    except InputError as exc:
        return [f"{what}: {exc}"]
    lo, hi = float(np.min(vol)), float(np.max(vol))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
        return [
            f"{what} {_volume_path(obj)}: values from {lo:.3g} to {hi:.3g}; a mask "
            f"takes values from 0 to 1"
        ]
    if hi <= 0:
        return [f"{what} {_volume_path(obj)} is empty (all zero)"]
    return []
