"""Scipion outputs of a FAML classification run: the aligned subtomograms, the
class averages and the classes, filled from the last iteration of the run
folder (:mod:`faml_tomo.averaging.outputs`).

The protocol creates each empty set (Scipion names its database) and
registers it; the functions here fill it.  Extra per-item values are
attributes named ``_faml...`` (see
:class:`~faml_tomo.protocols.protocol_faml_classify.ProtFAMLClassify`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from pyworkflow.object import Float, Integer

from ..typealiases import PathLike
from .convert import scipion_matrix

if TYPE_CHECKING:
    from tomo.objects import ClassSubTomogram, SetOfAverageSubTomograms, SetOfSubTomograms

__all__ = ["fill_aligned_subtomograms", "fill_class_averages", "class_representative_setter"]


def fill_aligned_subtomograms(
    subtomos: SetOfSubTomograms,
    inset: SetOfSubTomograms,
    res: Mapping[str, np.ndarray],
    ids: Sequence[int],
) -> None:
    """Append to ``subtomos`` (an empty ``SetOfSubTomograms``) a copy of each
    subtomogram of ``inset`` with its best transform, its class and the
    ``_famlClass``, ``_famlMaxPosterior``, ``_famlLogLikelihood``,
    ``_famlCandidates`` and ``_famlScore`` of the iteration result ``res``,
    whose rows are the object ids ``ids``."""
    from pwem.objects import Transform

    subtomos.copyInfo(inset)
    subtomos.setAlignment3D()
    row = {obj_id: i for i, obj_id in enumerate(ids)}
    for item in inset.iterItems(orderBy="id"):
        i = row[item.getObjId()]
        k = int(res["classes"][i])
        sub = item.clone()
        sub.setTransform(Transform(scipion_matrix(res["rotations"][i], res["shifts"][i])))
        sub.setClassId(k + 1)
        sub._famlClass = Integer(k + 1)
        sub._famlMaxPosterior = Float(float(res["max_posterior"][i]))
        sub._famlLogLikelihood = Float(float(res["logliks"][i]))
        sub._famlCandidates = Integer(int(res["n_candidates"][i]))
        sub._famlScore = Float(float(res["scores"][i]))
        subtomos.append(sub)


def fill_class_averages(
    averages: SetOfAverageSubTomograms,
    inset: SetOfSubTomograms,
    run: PathLike,
    sizes: np.ndarray,
    alpha: np.ndarray,
    sampling: float,
) -> None:
    """Append to ``averages`` (an empty ``SetOfAverageSubTomograms``) the
    final average of each class of the run folder ``run``, with its
    ``_famlClassSize`` (``sizes``) and ``_famlClassWeight`` (``alpha``)."""
    from tomo.objects import AverageSubTomogram

    from ..averaging.outputs import class_average_path

    averages.copyInfo(inset)
    averages.setSamplingRate(sampling)
    for k in range(len(alpha)):
        avg = AverageSubTomogram()
        avg.setFileName(str(class_average_path(run, k)))
        avg.setSamplingRate(sampling)
        avg.setClassId(k + 1)
        avg._famlClassSize = Integer(int(sizes[k]))
        avg._famlClassWeight = Float(float(alpha[k]))
        averages.append(avg)


def class_representative_setter(
    run: PathLike, sampling: float
) -> Callable[[ClassSubTomogram], None]:
    """The ``updateClassCallback`` of ``classifyItems``: gives each class
    (id ``k + 1``) the final average ``k`` of the run folder ``run`` as its
    representative."""
    from tomo.objects import AverageSubTomogram

    from ..averaging.outputs import class_average_path

    def update_class(cls: ClassSubTomogram) -> None:
        k = cls.getObjId() - 1
        rep = AverageSubTomogram()
        rep.setFileName(str(class_average_path(run, k)))
        rep.setSamplingRate(sampling)
        cls.setRepresentative(rep)
        cls.setSamplingRate(sampling)

    return update_class
