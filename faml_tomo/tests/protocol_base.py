"""Base class of faml_tomo's Scipion protocol tests.

Tests derived from :class:`FamlTomoProtocolTest` run under plain ``pytest``
(the root conftest sets the Scipion environment) and under
``python -m pyworkflow.apps.pw_run_tests faml_tomo.tests.<module>``.
"""

from pathlib import Path

from pyworkflow.tests import BaseTest, setupTestProject


class FamlTomoProtocolTest(BaseTest):
    """Base class of faml_tomo's Scipion protocol tests.

    Each test class gets its own project (``setupTestProject``).  Helpers
    import simulated data with scipion-em-tomo's import protocols.
    """

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.dataDir = Path(cls.proj.getPath("test_data"))
        cls.dataDir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def importTomograms(
        cls, folder, pattern="*.mrc", samplingRate=10.0, tiltMin=-60.0, tiltMax=60.0, step=3.0
    ):
        """Import MRC tomograms with their tilt range; returns the protocol."""
        from tomo.protocols import ProtImportTomograms

        prot = cls.newProtocol(
            ProtImportTomograms,
            filesPath=str(folder),
            filesPattern=pattern,
            samplingRate=samplingRate,
            acquisitionAngleMin=tiltMin,
            acquisitionAngleMax=tiltMax,
            step=step,
        )
        cls.launchProtocol(prot)
        return prot

    @classmethod
    def importSubTomograms(
        cls, folder, pattern="*.mrc", samplingRate=20.0, tiltMin=-60.0, tiltMax=60.0
    ):
        """Import MRC subtomograms with their tilt range; returns the protocol."""
        from tomo.protocols import ProtImportSubTomograms

        prot = cls.newProtocol(
            ProtImportSubTomograms,
            filesPath=str(folder),
            filesPattern=pattern,
            samplingRate=samplingRate,
            acquisitionAngleMin=tiltMin,
            acquisitionAngleMax=tiltMax,
        )
        cls.launchProtocol(prot)
        return prot
