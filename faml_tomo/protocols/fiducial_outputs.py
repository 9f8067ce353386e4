"""Scipion outputs of a peak-high-contrast run, filled one tomogram at a time
(the protocol publishes tomograms as they are searched: see
:mod:`faml_tomo.protocols.streaming`).

The protocol creates each set (Scipion names its database), opens it for
appending and stores it; the functions here append one tomogram's items,
read from the run's ``extra/`` folder (:mod:`faml_tomo.fiducials.results`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tomo.objects import SetOfCoordinates3D, SetOfTomograms, SetOfTomoMasks, Tomogram

    from ..fiducials.results import TomogramFiducials

__all__ = ["append_coordinates", "append_erased", "tomogram_key", "tomogram_path"]


def tomogram_key(tomo: Tomogram) -> str:
    """A file-name-safe key of a tomogram: its tsId, else its object id."""
    key = tomo.getTsId() if hasattr(tomo, "getTsId") and tomo.getTsId() else None
    from ..io.naming import safe_name

    return safe_name(key or f"tomo_{tomo.getObjId()}")


def tomogram_path(tomo: Tomogram) -> str:
    """The data file of a tomogram, without Scipion's ``:mrc`` suffix."""
    path = tomo.getFileName()
    return path.split(":")[0] if ":" in path and not os.path.exists(path) else path


def append_coordinates(
    coords: SetOfCoordinates3D, tomo: Tomogram, record: TomogramFiducials
) -> int:
    """Append the fiducials of ``record`` (found in ``tomo``) to ``coords``,
    their mirror correlation as score; returns how many."""
    import tomo.constants as const
    from tomo.objects import Coordinate3D

    for (x, y, z), score in zip(record.coordinates, record.scores):
        coord = Coordinate3D()
        coord.setVolume(tomo.clone())
        coord.setPosition(x, y, z, const.BOTTOM_LEFT_CORNER)
        coord.setScore(float(score))
        coords.append(coord)
    return len(record)


def append_erased(
    erased: SetOfTomograms, masks: SetOfTomoMasks, tomo: Tomogram, folder: str
) -> None:
    """Append ``tomo`` with its beads erased and its bead mask, written by
    the search to ``folder`` (``<key>_erased.mrc``, ``<key>_beads.mrc``)."""
    from tomo.objects import TomoMask

    key = tomogram_key(tomo)
    t = tomo.clone()
    t.setLocation(os.path.join(folder, f"{key}_erased.mrc"))
    erased.append(t)
    mask = TomoMask()
    mask.copyInfo(tomo)
    mask.setLocation(os.path.join(folder, f"{key}_beads.mrc"))
    mask.setVolName(tomogram_path(tomo))
    masks.append(mask)
