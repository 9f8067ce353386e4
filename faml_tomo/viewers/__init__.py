"""Scipion viewers of faml_tomo."""

from .viewer_peak_high_contrast import ProtPeakHighContrastViewer  # noqa: F401
from .viewer_misalignment import MisalignmentViewer  # noqa: F401
from .viewer_faml import FAMLClassifyViewer  # noqa: F401
