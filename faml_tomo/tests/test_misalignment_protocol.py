"""ProtDetectMisalignment in a headless Scipion project, on simulated
tomograms with the shipped networks: an aligned tomogram, a grossly
misaligned one, and one without coordinates."""

import numpy as np

from faml_tomo.io import write_mrc
from faml_tomo.protocols import ProtDetectMisalignment
from faml_tomo.simulation import (
    AcquisitionParams,
    SlabParams,
    misalignment_preset,
    reconstruct_wbp,
    simulate_tilt_series,
)
from faml_tomo.tests.protocol_base import FamlTomoProtocolTest


class TestDetectMisalignment(FamlTomoProtocolTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tomo_dir = cls.dataDir / "tomos"
        coord_dir = cls.dataDir / "coords"
        coord_dir.mkdir(parents=True, exist_ok=True)
        # TS_01 aligned, TS_02 birds of +-400 Å (strong), TS_03 without coordinates
        for i, (kind, mag) in enumerate((("none", 0), ("birds", 400), ("none", 0))):
            sp = SlabParams(
                nx=160,
                ny=160,
                nz=56,
                pixel_size=15.0,
                slab_thickness=700,
                bead_diameter=100,
                n_beads=6,
                n_vesicles=1,
            )
            ts = simulate_tilt_series(
                sp, AcquisitionParams(tilt_step=3), misalignment_preset(kind, mag, 41), rng=10 + i
            )
            tomo = reconstruct_wbp(ts.images, ts.angles, sp.nz)
            write_mrc(tomo_dir / f"TS_{i + 1:02d}.mrc", tomo, 15.0)
            if i < 2:
                np.savetxt(coord_dir / f"TS_{i + 1:02d}.txt", ts.beads, fmt="%.2f")
        cls.protTomos = cls.importTomograms(tomo_dir, "TS_*.mrc", samplingRate=15.0)
        from tomo.protocols import ProtImportCoordinates3D

        prot = cls.newProtocol(
            ProtImportCoordinates3D,
            importFrom=0,
            filesPath=str(coord_dir),
            filesPattern="*.txt",
            boxSize=16,
            importTomograms=cls.protTomos.Tomograms,
        )
        cls.launchProtocol(prot)
        cls.coords = prot.outputCoordinates

    def _run(self, **kw):
        prot = self.newProtocol(
            ProtDetectMisalignment, inputCoordinates=self.coords, beadSizeNm=10.0, **kw
        )
        self.launchProtocol(prot)
        return prot

    def test_strong_aligned_and_unclassified(self):
        self.assertEqual(self.coords.getSize(), 12)
        prot = self._run(weakThreshold=None)
        subs = prot.outputSubtomograms
        self.assertEqual(subs.getSize(), 12)
        self.assertAlmostEqual(subs.getSamplingRate(), 100 / 16)
        for sub in subs.iterItems():
            self.assertTrue(0 <= sub._strongScore.get() <= 1)
            self.assertTrue(0 <= sub._weakScore.get() <= 1)
            self.assertIn(sub._tomoMisalignment.get(), ("aligned", "strong"))
        self.assertEqual(subs.getFirstItem().getDimensions(), (32, 32, 32))
        strong = prot.outputStrongMisalignedTomograms
        self.assertEqual([t.getTsId() for t in strong.iterItems()], ["TS_02"])
        self.assertLessEqual(strong.getFirstItem()._strongScore.get(), 0.5)
        aligned = prot.outputAlignedTomograms
        self.assertEqual([t.getTsId() for t in aligned.iterItems()], ["TS_01"])
        self.assertGreater(aligned.getFirstItem()._strongScore.get(), 0.5)
        self.assertEqual(aligned.getFirstItem()._numberOfBeads.get(), 6)
        self.assertFalse(hasattr(prot, "outputWeakMisalignedTomograms"))
        summary = "\n".join(prot.summary())
        self.assertIn("not strongly misaligned: 1", summary)
        self.assertIn("strongly misaligned: 1", summary)
        self.assertIn("unclassified: TS_03", summary)
        self.assertIn("no fiducial coordinates", summary)
        # the unclassified tomogram is an output too, with its reason
        uncl = prot.outputUnclassifiedTomograms
        self.assertEqual([t.getTsId() for t in uncl.iterItems()], ["TS_03"])
        self.assertIn("no fiducial coordinates", uncl.getFirstItem()._misalignmentMessage.get())
        first = strong.getFirstItem()
        self.assertGreaterEqual(first._strongSpread.get(), 0)
        self.assertEqual(first._beadsExcluded.get(), 0)
        for sub in subs.iterItems():
            self.assertTrue(sub._used.get())
            self.assertIn(sub._beadVerdict.get(), ("aligned", "strong"))
        self.assertTrue(prot.methods())
        self.assertEqual(prot.validate(), [])
        self.assertEqual(prot._warnings(), [])

    def test_weak_threshold_splits_the_rest_and_viewer_plots(self):
        prot = self._run(weakThreshold=0.5, criterion=1)
        out = {}
        for label in ("Aligned", "WeakMisaligned", "StrongMisaligned"):
            s = getattr(prot, f"output{label}Tomograms", None)
            out[label] = [t.getTsId() for t in s.iterItems()] if s is not None else []
        self.assertEqual(out["StrongMisaligned"], ["TS_02"])
        self.assertEqual(sorted(out["Aligned"] + out["WeakMisaligned"]), ["TS_01"])
        from faml_tomo.viewers.viewer_misalignment import MisalignmentViewer

        viewer = MisalignmentViewer(project=prot.getProject(), protocol=prot)
        for show in (viewer._histograms, viewer._tomograms, viewer._gallery):
            plotter = show()[0]
            path = self.proj.getPath(f"{show.__name__}.png")
            plotter.getFigure().savefig(path)
            self.assertGreater(len(plotter.getFigure().axes), 0)

    def test_other_tomograms(self):
        """Scores computed in another set of tomograms (matched by tsId)."""
        prot = self._run(
            weakThreshold=None, useOtherTomograms=True, inputTomograms=self.protTomos.Tomograms
        )
        self.assertEqual(prot.outputSubtomograms.getSize(), 12)
        strong = prot.outputStrongMisalignedTomograms
        self.assertEqual([t.getTsId() for t in strong.iterItems()], ["TS_02"])

    def test_validation(self):
        prot = self.newProtocol(
            ProtDetectMisalignment,
            inputCoordinates=self.coords,
            beadSizeNm=10.0,
            strongThreshold=1.5,
            useOtherTomograms=True,
        )
        errors = "\n".join(prot.validate())
        self.assertIn("strong threshold must lie in [0, 1]", errors)
        self.assertIn("select the tomograms", errors)
        prot = self.newProtocol(
            ProtDetectMisalignment, inputCoordinates=self.coords, beadSizeNm=60.0
        )
        self.assertTrue(any("bead size 60 nm" in w for w in prot._warnings()))
