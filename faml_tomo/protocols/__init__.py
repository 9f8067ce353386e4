"""Scipion protocols of faml_tomo: glue only (convert Scipion objects, call
the compute packages, register outputs).  Keep heavy imports (tensorflow)
inside step functions: Scipion imports this module whenever it loads any
protocol."""

from .protocol_peak_high_contrast import ProtPeakHighContrast  # noqa: F401
from .protocol_detect_misalignment import ProtDetectMisalignment  # noqa: F401
from .protocol_faml_classify import ProtFAMLClassify  # noqa: F401
