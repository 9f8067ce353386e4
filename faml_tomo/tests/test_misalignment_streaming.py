"""ProtDetectMisalignment in streaming (issue 18), headless and asynchronous.

The inputs are a SetOfTomograms and the SetOfCoordinates3D on it, both left
open (``Set.STREAM_OPEN``) and fed in three batches from this process while
the protocol runs in the background, as a streaming fiducial picker does:
each batch appends a tomogram to the tomograms and all its coordinates to the
coordinates at once; the last tomogram has no coordinates, so it is ready
only when the producer closes its sets.  Between the first and the second
batch the run is stopped and continued (Stop and Continue buttons).  A run on
the same tomograms and coordinates with closed inputs gives the expected
result files and outputs.
"""

import os
import re
import time

import numpy as np
from pyworkflow.object import Set
from pyworkflow.protocol.constants import MODE_RESUME

from faml_tomo.fiducials.phantom import bead_phantom
from faml_tomo.io import write_mrc
from faml_tomo.protocols.misalignment_outputs import OUT_SETS, OUT_SUBTOMOS, OUT_UNCLASSIFIED
from faml_tomo.tests.streaming_base import TIMEOUT, StreamingProtocolTest

PIXEL = 10.0
SHAPE = (48, 96, 96)
NAMES = ["TS_01", "TS_02", "TS_03"]  # TS_03 has no coordinates
TOMO_OUTPUTS = [*OUT_SETS.values(), OUT_UNCLASSIFIED]


class TestDetectMisalignmentStreaming(StreamingProtocolTest):
    OUTPUTS = (OUT_SUBTOMOS, *TOMO_OUTPUTS)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        folder, coord_dir = cls.dataDir / "tomos", cls.dataDir / "coords"
        coord_dir.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(NAMES):
            ph = bead_phantom(shape=SHAPE, sampling_rate=PIXEL, n_beads=5, n_proteins=80, seed=i)
            write_mrc(folder / f"{name}.mrc", ph.volume, PIXEL)
            if name != "TS_03":
                np.savetxt(coord_dir / f"{name}.txt", ph.beads, fmt="%.2f")
        # all of them, closed: the reference run, and the items fed
        tomosAll = cls.importTomograms(folder, "TS_*.mrc", samplingRate=PIXEL).Tomograms
        cls.coordsAll = cls._importCoordinates(coord_dir, "TS_*.txt", tomosAll)
        cls.reference = cls.launchProtocol(cls._detector(cls.coordsAll))
        cls.tomos = {t.getTsId(): t.clone() for t in tomosAll.iterItems()}
        # the streamed inputs: TS_01 and its coordinates, reopened; the other
        # tomograms and coordinates are appended to their databases later
        cls.tomosFirst = cls.importTomograms(folder, "TS_01.mrc", samplingRate=PIXEL).Tomograms
        cls.coordsFirst = cls._importCoordinates(coord_dir, "TS_01.txt", cls.tomosFirst)
        cls._feed(None, Set.STREAM_OPEN)

    @classmethod
    def _importCoordinates(cls, folder, pattern, tomograms):
        from tomo.protocols import ProtImportCoordinates3D

        prot = cls.newProtocol(
            ProtImportCoordinates3D,
            importFrom=0,
            filesPath=str(folder),
            filesPattern=pattern,
            boxSize=16,
            importTomograms=tomograms,
        )
        cls.launchProtocol(prot)
        return prot.outputCoordinates

    @classmethod
    def _detector(cls, coords):
        from faml_tomo.protocols import ProtDetectMisalignment

        return cls.newProtocol(
            ProtDetectMisalignment, inputCoordinates=coords, beadSizeNm=10.0, weakThreshold=0.5
        )

    @classmethod
    def _feed(cls, name, state):
        """Append tomogram ``name`` (if any) to the streamed tomograms, then all
        its coordinates to the streamed coordinates at once, and store both
        with stream state ``state``, as a producer protocol does."""
        from tomo.objects import SetOfCoordinates3D, SetOfTomograms

        tomos = SetOfTomograms(filename=cls.tomosFirst.getFileName())
        tomos.loadAllProperties()
        tomos.enableAppend()
        tomo = None
        if name is not None:
            tomo = cls.tomos[name].clone()
            tomo.cleanObjId()
            tomos.append(tomo)
        tomos.setStreamState(state)
        tomos.write()
        tomos.close()
        coords = SetOfCoordinates3D(filename=cls.coordsFirst.getFileName())
        coords.loadAllProperties()
        coords.enableAppend()
        if tomo is not None:
            for c in cls.coordsAll.iterCoordinates(cls.tomos[name]):
                coord = c.clone()
                coord.cleanObjId()
                coord.setVolume(tomo.clone())
                coords.append(coord)
        coords.setStreamState(state)
        coords.write()
        coords.close()

    @staticmethod
    def _tomograms(prot):
        """{output: sorted tsIds} of a run's sets of tomograms."""
        return {
            name: sorted(t.getTsId() for t in getattr(prot, name).iterItems())
            for name in TOMO_OUTPUTS
            if getattr(prot, name, None) is not None
        }

    @staticmethod
    def _beads(prot):
        """(tomogram, strong score, weak score, box file name) of each bead output."""
        return [
            (
                s.getVolName(),
                s._strongScore.get(),
                s._weakScore.get(),
                os.path.basename(s.getFileName()),
            )
            for s in getattr(prot, OUT_SUBTOMOS).iterItems(orderBy="id")
        ]

    def test_streamed_coordinates_grow_and_close_the_outputs(self):
        prot = self._detector(self.coordsFirst)
        self.proj.launchProtocol(prot, wait=False)
        self.addCleanup(self._stopIfActive, prot)  # a failed check leaves no run behind
        nBeads = {n: len(list(self.coordsAll.iterCoordinates(self.tomos[n]))) for n in NAMES}
        self.assertEqual(nBeads, {"TS_01": 5, "TS_02": 5, "TS_03": 0})

        def has(n, state=Set.STREAM_OPEN):
            beads = sum(nBeads[k] for k in NAMES[:n])
            return lambda out: (
                out.get(OUT_SUBTOMOS, (0, None))[0] == beads
                and sum(out[k][0] for k in TOMO_OUTPUTS if k in out) == n
                and all(s == state for _, s in out.values())
            )

        seen = [self._waitFor(prot, has(1), "the first tomogram")]
        boxes = os.path.join(prot._getExtraPath("boxes"), "TS_01_0001.mrc")
        first_time = os.path.getmtime(boxes)

        # Stop, a new tomogram and its coordinates arrive, Continue
        self.proj.stopProtocol(prot)
        self._feed("TS_02", Set.STREAM_OPEN)
        prot.runMode.set(MODE_RESUME)
        self.proj.launchProtocol(prot, wait=False)
        seen.append(self._waitFor(prot, has(2), "the second tomogram"))
        self.assertIn("Streaming", "\n".join(prot.summary()))

        # the last one (no coordinates), and the producer closes its sets
        self._feed("TS_03", Set.STREAM_CLOSED)
        seen.append(self._waitFor(prot, has(3, Set.STREAM_CLOSED), "the closed outputs"))
        sizes = [sum(size for _, (size, _) in out.items()) for out in seen]
        self.assertEqual(sizes, sorted(set(sizes)), seen)  # strictly growing
        start = time.time()
        while prot.isActive() and time.time() - start < TIMEOUT:
            time.sleep(0.5)
            self.proj._updateProtocol(prot)
        self.assertTrue(prot.isFinished(), prot.getStatus())

        # each tomogram scored once (across the Stop / Continue), published once
        self.assertEqual(os.path.getmtime(boxes), first_time)
        with open(prot._getLogsPath("run.stdout")) as f:
            log = f.read()
        for name in NAMES:
            self.assertEqual(len(re.findall(rf"{name}: \w+ \(strong", log)), 1, name)
        published = prot._streamLedger().published()
        self.assertEqual(len(published), len(set(published)))
        self.assertEqual(len(published), len(NAMES))

        # the same results and outputs as a run with closed inputs
        ref, got = self.reference._getExtraPath(), prot._getExtraPath()
        for name in ("misalignment_results.json", "scores.star", "tomograms.star"):
            with open(os.path.join(ref, name)) as a, open(os.path.join(got, name)) as b:
                self.assertEqual(b.read(), a.read(), name)
        for name in os.listdir(os.path.join(ref, "boxes")):
            with open(os.path.join(ref, "boxes", name), "rb") as a:
                with open(os.path.join(got, "boxes", name), "rb") as b:
                    self.assertEqual(b.read(), a.read(), name)
        self.assertEqual(self._tomograms(prot), self._tomograms(self.reference))
        self.assertEqual(sum(self._tomograms(prot).values(), []), sorted(NAMES))
        self.assertEqual(self._beads(prot), self._beads(self.reference))
        summary = "\n".join(prot.summary())
        self.assertIn("3 tomograms, 10 beads scored", summary)
        self.assertIn("unclassified: TS_03", summary)
        self.assertNotIn("Streaming", summary)
