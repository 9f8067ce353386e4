"""Scipion streaming for protocols that process an input set one item per step.

Scipion offers two ways to process an input set that is still growing (its
stream state ``Set.STREAM_OPEN``; the producer closes it when it is done):

* :class:`pyworkflow.protocol.ProtStreamingBase`: a generator step that loops,
  inserting steps while the input grows.  It needs the parallel step executor
  (``STEPS_PARALLEL``) and at least two Scipion threads: one is held by the
  generator for the whole run.  The peak-high-contrast protocol runs its steps
  serially and uses its threads inside each step (``workers`` of the search),
  so the base class would change the meaning of its thread count, hold a
  thread that does no work, add the parallel executor's 3 s polling to every
  run with a closed input, and rerun the generator on every Continue.
* the classic ``_stepsCheck`` pattern (pwem's CTF and movie protocols,
  scipion-em-tomo's ``ProtTsProcess``): the step executor, serial included,
  calls ``_stepsCheck`` between steps (every ``SCIPION_STEPS_CHECK_SEC``) and
  once at the end; it inserts steps for new input items (``_checkNewInput``),
  appends what is finished to the output sets with ``_updateOutputSet``
  (``_checkNewOutput``), and a final step, inserted with ``wait=True`` while
  the input is open, closes the outputs once the input is closed and every
  item is done.  With a closed input nothing waits: the same steps as before
  run in the same order.

:class:`ItemStreaming` is the classic pattern, which fits: serial steps, no
change for a closed input, one step per item.  What was done is kept on disk
(:class:`StreamLedger`), so an item is processed once, published once, also
across checks and across Stop / Continue (a Continue inserts steps only for
items not yet processed; pyworkflow's own resume compares steps by position,
which a streamed run's step list, grown in arrival order, does not match).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pyworkflow.object import Set
from pyworkflow.protocol.constants import STATUS_NEW

__all__ = ["ItemStreaming", "StreamLedger", "load_items"]


def load_items(input_set: Set, known: Iterable[int] = ()) -> tuple[list, bool]:
    """Read an input set afresh from its file: clones of the items whose ids
    are not in ``known``, in the set's order, and whether the set is closed.

    The producer appends to the file while this protocol runs, so the set
    object of the run database (read when the run started) is not used."""
    known = set(known)
    fresh = type(input_set)(filename=input_set.getFileName())
    try:
        fresh.loadAllProperties()
        new = [item.clone() for item in fresh.iterItems() if item.getObjId() not in known]
        closed = fresh.isStreamClosed()
    finally:
        fresh.close()
    return new, closed


def _mtime_of(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return -1.0


class StreamLedger:
    """What a per-item streaming run has done, on disk, in ``folder``.

    ``done/<id>``: one marker per item processed, written when its step ends
    (a step stopped half way leaves none, and is redone); ``published.txt``:
    the ids of the items in the output sets, one per line, in output order.
    """

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _marker(self, obj_id: int) -> str:
        return os.path.join(self.folder, "done", str(int(obj_id)))

    def is_done(self, obj_id: int) -> bool:
        """Whether item ``obj_id`` has been processed."""
        return os.path.exists(self._marker(obj_id))

    def mark_done(self, obj_id: int) -> None:
        """Record that item ``obj_id`` has been processed."""
        path = self._marker(obj_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("done\n")

    def published(self) -> list[int]:
        """The ids of the items in the outputs, in output order."""
        path = os.path.join(self.folder, "published.txt")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [int(line) for line in f.read().split() if line.strip().isdigit()]

    def add_published(self, ids: Iterable[int]) -> None:
        """Record that the items ``ids`` were appended to the outputs."""
        os.makedirs(self.folder, exist_ok=True)
        with open(os.path.join(self.folder, "published.txt"), "a") as f:
            f.writelines(f"{int(i)}\n" for i in ids)


class ItemStreaming:
    """Mixin of a protocol (serial steps) that processes its input set one
    item per step, as the items arrive; put it before ``EMProtocol``.

    The protocol calls :meth:`_insertStreamingSteps` from ``_insertAllSteps``,
    calls ``self._streamLedger().mark_done(objId)`` at the end of its item
    step, calls :meth:`_publishRemaining` in its final step, and defines:

    * ``_streamInput()``: the input set (as the form's pointer gives it);
    * ``_insertItemStep(objId)``: insert the step of one item with no
      prerequisite (the default, the last step inserted, may be the waiting
      final step), return its id;
    * ``_publishItems(items, state)``: append the processed ``items`` (clones
      of input items) to the output sets, creating them the first time, and
      store them with stream state ``state`` (``Set.STREAM_OPEN`` or
      ``Set.STREAM_CLOSED``; with no items it still creates or closes them).

    A protocol whose items are ready only once another set holds their data
    (the misalignment protocol: a tomogram once its coordinates are in the
    coordinate set) also overrides :meth:`_loadStreamItems` (which items are
    ready, and whether no more will come) and :meth:`_streamFiles` (the files
    whose change means new items may be ready).
    """

    _streamItems: dict
    _streamClosed: bool
    _streamFinished: bool
    _streamMtime: tuple
    _finalStep: int

    def _streamLedger(self) -> StreamLedger:
        return StreamLedger(self._getExtraPath("streaming"))

    def _streamFiles(self) -> list[str]:
        """The files whose change may bring new items (default: the input set's)."""
        return [self._streamInput().getFileName()]

    def _loadStreamItems(self, known: Iterable[int] = ()) -> tuple[list, bool]:
        """The items ready to be processed whose ids are not in ``known`` (clones,
        in input order), and whether no more will come (default: every item of
        the input set, read afresh by :func:`load_items`, and whether it is closed)."""
        return load_items(self._streamInput(), known)

    def _streamMtimes(self) -> tuple:
        return tuple(_mtime_of(path) for path in self._streamFiles())

    def _insertStreamingSteps(self, finalStep: str) -> None:
        """One step per item of the input not processed yet, then ``finalStep``,
        which waits while the input is open."""
        self._streamItems = {}
        self._streamFinished = False
        self._streamMtime = self._streamMtimes()
        new, self._streamClosed = self._loadStreamItems()
        self._adoptEarlierRun(new)
        deps = self._addItems(new)
        self._finalStep = self._insertFunctionStep(
            finalStep, prerequisites=deps, wait=not self._streamClosed
        )

    def _itemHasResult(self, item: object) -> bool:
        """Whether a run made before streaming left a result for ``item``
        (protocols override it; default: no)."""
        return False

    def _hasOutputs(self) -> bool:
        """Whether the protocol's outputs exist (protocols override it)."""
        return False

    def _adoptEarlierRun(self, items: list) -> None:
        """A run made before streaming kept no ledger: on its Continue, items
        with a result count as processed and, when its outputs exist (it had
        published everything at once), as published, so nothing is lost,
        redone or appended twice."""
        ledger = self._streamLedger()
        if os.path.isdir(ledger.folder):
            return
        done = [item.getObjId() for item in items if self._itemHasResult(item)]
        for obj_id in done:
            ledger.mark_done(obj_id)
        if done and self._hasOutputs():
            ledger.add_published(done)

    def _addItems(self, items: list) -> list:
        """Note the new items; insert the steps of those not yet processed."""
        ledger = self._streamLedger()
        deps = []
        for item in items:
            obj_id = item.getObjId()
            self._streamItems[obj_id] = item
            if not ledger.is_done(obj_id):
                deps.append(self._insertItemStep(obj_id))
        return deps

    def _stepsCheck(self):
        self._checkNewInput()
        self._checkNewOutput()

    def _checkNewInput(self):
        """Insert the steps of the items that arrived since the last check."""
        mtime = self._streamMtimes()
        if self._streamClosed or mtime == self._streamMtime or -1.0 in mtime:
            return  # closed, or its files unchanged since the last look (or away)
        self._streamMtime = mtime
        new, closed = self._loadStreamItems(self._streamItems)
        deps = self._addItems(new)
        if deps:
            self._steps[self._finalStep - 1].addPrerequisites(*deps)
            self.updateSteps()
        self._streamClosed = closed

    def _checkNewOutput(self):
        """Publish the items processed since the last check; release the final
        step once the input is closed and every item is processed."""
        if self._streamFinished:
            return
        ledger = self._streamLedger()
        published = set(ledger.published())
        ready = [
            item
            for obj_id, item in self._streamItems.items()
            if obj_id not in published and ledger.is_done(obj_id)
        ]
        if ready:
            self._publish(ready, Set.STREAM_OPEN)
        if self._streamClosed and all(ledger.is_done(i) for i in self._streamItems):
            final = self._steps[self._finalStep - 1]
            if final.isWaiting():
                final.setStatus(STATUS_NEW)

    def _publish(self, items: list, state: int) -> None:
        self._publishItems(items, state)
        self._streamLedger().add_published(item.getObjId() for item in items)

    def _publishRemaining(self) -> None:
        """Publish every processed item not yet in the outputs and close them
        (the final step: the input is closed and every item processed)."""
        ledger = self._streamLedger()
        published = set(ledger.published())
        items = [
            item
            for obj_id, item in self._streamItems.items()
            if obj_id not in published and ledger.is_done(obj_id)
        ]
        self._publish(items, Set.STREAM_CLOSED)
        self._streamFinished = True
