"""Network definition and trained weights of the misalignment detector.

``strong.keras`` and ``weak.keras`` in this folder are trained here on
simulated data (see MODEL_CARD.md for the command, data seed and metrics).
"""

from .network import (
    BOX_SIZE,
    N_PARAMS,
    N_TRAINABLE,
    STRONG_FILE,
    WEAK_FILE,
    build_network,
    load_network,
    scale_feature,
)

__all__ = [
    "BOX_SIZE",
    "N_PARAMS",
    "N_TRAINABLE",
    "STRONG_FILE",
    "WEAK_FILE",
    "build_network",
    "load_network",
    "scale_feature",
]
