"""ProtPeakHighContrast in streaming (issue 18), headless and asynchronous.

The input is a SetOfTomograms left open (``Set.STREAM_OPEN``) and fed in three
batches from this process while the protocol runs in the background, as a
streaming producer (an import in streaming mode) would: the test appends
tomograms to the set's database and closes it at the end; the protocol, in
its own process, sees them at its periodic checks (``_stepsCheck``).  Between
the first and the second batch the run is stopped and continued, as a user
would with the Stop and Continue buttons.  A run on the same tomograms with a
closed input gives the expected coordinates.
"""

import os
import time

import numpy as np
from pyworkflow.object import Set
from pyworkflow.protocol.constants import MODE_RESUME

from faml_tomo.fiducials.phantom import bead_phantom
from faml_tomo.io import write_mrc
from faml_tomo.tests.streaming_base import TIMEOUT, StreamingProtocolTest

PIXEL = 10.0
SHAPE = (64, 128, 128)
NAMES = ["TS_01", "TS_02", "TS_03"]


class TestPeakHighContrastStreaming(StreamingProtocolTest):
    OUTPUTS = ("Coordinates3D", "TomogramsBeadsErased", "BeadMasks")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        folder = cls.dataDir / "stream_tomos"
        for i, name in enumerate(NAMES):
            ph = bead_phantom(shape=SHAPE, sampling_rate=PIXEL, n_beads=8, n_proteins=150, seed=i)
            write_mrc(folder / f"{name}.mrc", ph.volume, PIXEL)
        # all three tomograms, closed: the reference run, and the items fed
        cls.importAll = cls.importTomograms(folder, "TS_*.mrc", samplingRate=PIXEL)
        cls.reference = cls.launchProtocol(cls._picker(cls.importAll.Tomograms))
        cls.tomos = {t.getTsId(): t.clone() for t in cls.importAll.Tomograms.iterItems()}
        # the streamed input: the output of an import of the first tomogram,
        # reopened; the other two are appended to its database later
        cls.importFirst = cls.importTomograms(folder, "TS_01.mrc", samplingRate=PIXEL)
        cls._feed([], Set.STREAM_OPEN)

    @classmethod
    def _picker(cls, tomograms):
        from faml_tomo.protocols import ProtPeakHighContrast

        return cls.newProtocol(
            ProtPeakHighContrast,
            inputTomograms=tomograms,
            fiducialSize=10.0,
            boxSize=24,
            eraseBeads=True,
        )

    @classmethod
    def _feed(cls, names, state):
        """Append the tomograms ``names`` to the streamed input set and store
        it with stream state ``state``, as a producer protocol does."""
        from tomo.objects import SetOfTomograms

        tomos = SetOfTomograms(filename=cls.importFirst.Tomograms.getFileName())
        tomos.loadAllProperties()
        tomos.enableAppend()
        for name in names:
            tomo = cls.tomos[name].clone()
            tomo.cleanObjId()
            tomos.append(tomo)
        tomos.setStreamState(state)
        tomos.write()
        tomos.close()

    def _coordinates(self, prot):
        """{tsId: (xyz, scores)} of a run's output coordinates."""
        import tomo.constants as const

        per = {}
        for tomo in prot.inputTomograms.get().iterItems():
            xyz, sc = [], []
            for c in prot.Coordinates3D.iterCoordinates(tomo.clone()):
                xyz.append(c.getPosition(const.BOTTOM_LEFT_CORNER))
                sc.append(c.getScore())
            per[tomo.getTsId()] = (np.array(xyz).reshape(-1, 3), np.array(sc))
        return per

    def test_streamed_input_grows_and_closes_the_outputs(self):
        prot = self._picker(self.importFirst.Tomograms)
        self.proj.launchProtocol(prot, wait=False)
        self.addCleanup(self._stopIfActive, prot)  # a failed check leaves no run behind
        expected = {k: len(v[0]) for k, v in self._coordinates(self.reference).items()}
        self.assertTrue(all(n > 0 for n in expected.values()), expected)

        def has(n_tomos):
            size = sum(expected[k] for k in NAMES[:n_tomos])
            return lambda out: (
                len(out) == 3
                and all(out[k][0] == (size if k == "Coordinates3D" else n_tomos) for k in out)
            )

        seen = [self._waitFor(prot, has(1), "the first tomogram")]
        self.assertTrue(all(s == Set.STREAM_OPEN for _, s in seen[-1].values()), seen)
        record = os.path.join(prot._getExtraPath(), "TS_01_fiducials.json")
        first_time = os.path.getmtime(record)

        # Stop, a new tomogram arrives, Continue: only the new one is searched
        self.proj.stopProtocol(prot)
        self._feed(["TS_02"], Set.STREAM_OPEN)
        prot.runMode.set(MODE_RESUME)
        self.proj.launchProtocol(prot, wait=False)
        seen.append(self._waitFor(prot, has(2), "the second tomogram"))
        self.assertTrue(all(s == Set.STREAM_OPEN for _, s in seen[-1].values()), seen)

        # the last one, and the producer closes its set
        self._feed(["TS_03"], Set.STREAM_CLOSED)
        seen.append(
            self._waitFor(
                prot,
                lambda out: has(3)(out) and all(s == Set.STREAM_CLOSED for _, s in out.values()),
                "the closed outputs",
            )
        )
        sizes = [out["Coordinates3D"][0] for out in seen]
        self.assertEqual(sizes, sorted(set(sizes)), seen)  # strictly growing
        start = time.time()
        while prot.isActive() and time.time() - start < TIMEOUT:
            time.sleep(0.5)
            self.proj._updateProtocol(prot)
        self.assertTrue(prot.isFinished(), prot.getStatus())

        # each tomogram searched once (across the Stop / Continue), published once
        self.assertEqual(os.path.getmtime(record), first_time)
        with open(prot._getLogsPath("run.stdout")) as f:
            log = f.read()
        for name in NAMES:
            self.assertEqual(log.count(f"{name}: {expected[name]} fiducials"), 1, name)
        published = prot._streamLedger().published()
        self.assertEqual(sorted(published), sorted(set(published)))
        self.assertEqual(len(published), len(NAMES))
        erased = [t.getTsId() for t in prot.TomogramsBeadsErased.iterItems()]
        self.assertEqual(sorted(erased), NAMES)
        self.assertEqual(sorted(t.getTsId() for t in prot.BeadMasks.iterItems()), NAMES)

        # the same coordinates as a run with a closed input
        got, want = self._coordinates(prot), self._coordinates(self.reference)
        self.assertEqual(set(got), set(NAMES))
        for name in NAMES:
            np.testing.assert_allclose(got[name][0], want[name][0], atol=1e-6)
            np.testing.assert_allclose(got[name][1], want[name][1], atol=1e-9)
        summary = "\n".join(prot.summary())
        self.assertIn(f"in {len(NAMES)} tomograms", summary)
        self.assertNotIn("Streaming", summary)
