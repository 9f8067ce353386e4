"""Streaming of the misalignment protocol: which tomograms are ready, and
the outputs that grow as they are scored (see :mod:`.streaming`).

One step per tomogram, inserted once the
tomogram is ready.  A tomogram is ready when the coordinate set holds
coordinates of it (its tsId, or its id as their volume), or when the
coordinate set is closed (then every tomogram is: those without coordinates
are reported unclassified).  A producer appends all the coordinates of a
tomogram in one update of its output (the peak-high-contrast protocol does,
:func:`.fiducial_outputs.append_coordinates` then one ``_updateOutputSet``),
so the first coordinates of a tomogram that appear are all of them.  The
input is closed once the coordinate set is (and the other tomograms, when
they are scored).
"""

from __future__ import annotations

import numpy as np
from pyworkflow.object import Set

from .misalignment_outputs import (
    OUT_SETS,
    OUT_SUBTOMOS,
    OUT_UNCLASSIFIED,
    append_beads,
    labelled_tomogram,
)
from .streaming import ItemStreaming, load_items

__all__ = ["MisalignmentStreaming"]


class MisalignmentStreaming(ItemStreaming):
    """The streaming part of :class:`.ProtDetectMisalignment` (one
    ``scoreStep`` per ready tomogram; the outputs it publishes)."""

    def _insertItemStep(self, objId):
        # no prerequisite: the last step inserted may be the waiting final one
        return self._insertFunctionStep(self.scoreStep, objId, prerequisites=[])

    def _streamInput(self):
        return self._getTomograms()

    def _itemHasResult(self, item):
        from ..misalignment.results import read_results

        return self._tsId(item) in (read_results(self._getExtraPath()) or {})

    def _hasOutputs(self):
        return any(
            getattr(self, name, None) is not None for name in (OUT_SUBTOMOS, *OUT_SETS.values())
        )

    def _streamFiles(self):
        return [self._getTomograms().getFileName(), self.inputCoordinates.get().getFileName()]

    def _loadStreamItems(self, known=()):
        """The tomograms not in ``known`` that are ready (see the module's
        docstring), and whether no more will come."""
        cset = self.inputCoordinates.get()
        fresh = type(cset)(filename=cset.getFileName())
        try:
            fresh.loadAllProperties()
            closed = fresh.isStreamClosed()  # read first: its coordinates are all there
            tsIds = set(fresh.getUniqueValues("_tomoId")) if fresh.getSize() else set()
            volIds = set(fresh.getUniqueValues("_volId")) if fresh.getSize() else set()
        finally:
            fresh.close()
        other = self._otherTomograms()
        tomos, tomosClosed = load_items(self._getTomograms(), known)
        ready = [
            t
            for t in tomos
            if closed or self._tsId(t) in tsIds or (not other and t.getObjId() in volIds)
        ]
        return ready, closed and (tomosClosed or not other)

    def _coordinatesOf(self, tomo):
        """The voxel coordinates ``(n, 3)`` of the beads of ``tomo`` (one of the
        scored tomograms) in it, and the coordinate objects in the same order."""
        from tomo.constants import BOTTOM_LEFT_CORNER
        from tomo.objects import Tomogram

        cset = self.inputCoordinates.get()
        ts = self._tsId(tomo)
        if isinstance(tomo, Tomogram) and tomo.getTsId():
            coords = cset.iterCoordinates(tomo)  # by tsId, in the database
        else:
            coords = cset.iterCoordinates()
        xyz, objs = [], []
        for coord in coords:
            if (coord.getTomoId() or self._tsId(coord.getVolume())) != ts:
                continue
            xyz.append(np.array(coord.getPosition(BOTTOM_LEFT_CORNER), float))
            objs.append(coord.clone())
        xyz = np.array(xyz).reshape(-1, 3)
        if self._otherTomograms() and len(xyz):
            xyz = self._rescaled(xyz, ts, tomo, cset)
        return xyz, objs

    def _rescaled(self, xyz, ts, tgt, cset):
        """Coordinates of the precedent tomogram ``ts`` in tomogram ``tgt``
        (scaled by the sampling ratio about the centres)."""
        prec = {self._tsId(t): t.clone() for t in cset.getPrecedents().iterItems()}
        src = prec.get(ts)
        if src is None:
            return xyz
        c_sr = cset.getSamplingRate() or next(iter(prec.values())).getSamplingRate()
        f = c_sr / tgt.getSamplingRate()
        dim_s = np.array(src.getDimensions(), float)
        dim_t = np.array(tgt.getDimensions(), float)
        return (xyz - dim_s / 2) * f + dim_t / 2

    def _publishItems(self, tomos, state):
        """Append the beads and the tomograms of the scored ``tomos`` to the
        outputs (a set per label, created when first needed), stored with
        stream state ``state``; closing also closes the outputs not touched."""
        results = self._results() or {}
        bead_sampling = 10.0 * self.beadSizeNm.get() / 16.0
        sets = {}
        for tomo in tomos:
            ts = self._tsId(tomo)
            r = results[ts]
            _, objs = self._coordinatesOf(tomo)
            if objs:
                if OUT_SUBTOMOS not in sets:
                    sets[OUT_SUBTOMOS] = self._outputSet(OUT_SUBTOMOS, bead_sampling)
                box_dir = self._getExtraPath("boxes")
                append_beads(sets[OUT_SUBTOMOS], tomo, ts, r, objs, box_dir, bead_sampling)
            name = OUT_SETS.get(r["label"], OUT_UNCLASSIFIED)
            if name not in sets:
                sets[name] = self._outputSet(name, r["label"])
            sets[name].append(labelled_tomogram(tomo, r))
        if state == Set.STREAM_CLOSED:
            for name in self._possibleOutputs:
                if name not in sets and getattr(self, name, None) is not None:
                    sets[name] = self._outputSet(name, None)
        for name, out in sets.items():
            first = not hasattr(self, name)
            self._updateOutputSet(name, out, state)
            if first:
                src = self.inputCoordinates if name == OUT_SUBTOMOS else self._tomogramsPointer()
                self._defineSourceRelation(src, out)

    def _tomogramsPointer(self):
        return self.inputTomograms if self._otherTomograms() else self.inputCoordinates

    def _outputSet(self, name, detail):
        """Output ``name``, opened for appending, or created (``detail``: the
        beads' sampling rate, or the label of a set of tomograms)."""
        from tomo.objects import SetOfSubTomograms, SetOfTomograms

        out = getattr(self, name, None)
        if out is not None:
            out.enableAppend()
            return out
        tomos = self._getTomograms()
        if name == OUT_SUBTOMOS:
            out = SetOfSubTomograms.create(self._getPath(), suffix="beads")
            out.copyInfo(tomos)
            out.setSamplingRate(detail)
            return out
        out = SetOfTomograms.create(self._getPath(), suffix=detail)
        out.copyInfo(tomos)
        return out
