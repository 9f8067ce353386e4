"""The headless Scipion test machinery that faml_tomo's protocol tests use:
a project, scipion-em-tomo's import protocols, the acquisition info."""

from faml_tomo.tests.helpers import random_volume, write_volumes
from faml_tomo.tests.protocol_base import FamlTomoProtocolTest


class TestHeadlessImport(FamlTomoProtocolTest):
    def test_import_tomograms_and_subtomograms(self):
        tomo_dir = self.dataDir / "tomos"
        write_volumes(
            tomo_dir, [random_volume((16, 24, 24), seed=s) for s in range(2)], 12.0, prefix="tomo"
        )
        prot = self.importTomograms(tomo_dir, samplingRate=12.0, tiltMin=-50, tiltMax=70)
        tomos = prot.Tomograms
        self.assertEqual(tomos.getSize(), 2)
        self.assertAlmostEqual(tomos.getSamplingRate(), 12.0)
        acq = tomos.getFirstItem().getAcquisition()
        self.assertEqual((acq.getAngleMin(), acq.getAngleMax()), (-50, 70))
        self.assertEqual(tomos.getFirstItem().getDimensions(), (24, 24, 16))

        sub_dir = self.dataDir / "subtomos"
        write_volumes(
            sub_dir, [random_volume((12, 12, 12), seed=s) for s in range(3)], 20.0, prefix="sub"
        )
        prot = self.importSubTomograms(sub_dir, samplingRate=20.0)
        subs = prot.outputSubTomograms
        self.assertEqual(subs.getSize(), 3)
        self.assertEqual(subs.getDimensions(), (12, 12, 12))
        # tomo's import puts the tilt range on each subtomogram, not on the set
        acq = subs.getFirstItem().getAcquisition()
        self.assertEqual((acq.getAngleMin(), acq.getAngleMax()), (-60, 60))
