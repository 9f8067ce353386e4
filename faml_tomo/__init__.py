"""faml_tomo: a Scipion 3 plugin for cryo-electron tomography.

FAML reference-free subtomogram averaging and classification, gold fiducial
detection (peak high contrast) and tilt-series misalignment detection with
3D CNNs.  Compute lives in pyworkflow-free subpackages (``averaging``,
``fiducials``, ``misalignment``, ``simulation``); ``protocols`` and
``viewers`` are the Scipion glue.
"""

__version__ = "0.1.0"

try:
    import pwem
except ImportError:  # compute packages and the CLI also work without Scipion
    pwem = None

from .constants import (
    CITE_FAML,
    CITE_FAST_ALIGN,
    CITE_MISALIGNMENT,
    CITE_ML,
    CITE_ROT_MATCH,
    DEFAULT_MODELS_DIR,
    MODELS_DIR_VAR,
)

_references = [CITE_FAML, CITE_MISALIGNMENT, CITE_FAST_ALIGN, CITE_ML, CITE_ROT_MATCH]
_logo = "faml_tomo_logo.png"

if pwem is not None:

    class Plugin(pwem.Plugin):
        """Scipion plugin class: pure Python, nothing to download."""

        _url = "https://github.com/faml-tomo/scipion-em-faml-tomo"
        _processingField = ["TOMO"]

        @classmethod
        def _defineVariables(cls):
            cls._defineVar(
                MODELS_DIR_VAR,
                DEFAULT_MODELS_DIR,
                description="Folder with the trained misalignment "
                "networks (strong.keras, weak.keras)",
            )

        @classmethod
        def getEnviron(cls) -> None:
            return None

        @classmethod
        def defineBinaries(cls, env: object) -> None:
            # Everything is installed by pip with the package.
            pass

        @classmethod
        def getModelsDir(cls) -> str:
            """Folder holding the trained networks."""
            return cls.getVar(MODELS_DIR_VAR, DEFAULT_MODELS_DIR)

        @classmethod
        def validateInstallation(cls) -> list[str]:
            return []
