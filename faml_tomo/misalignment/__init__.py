"""Misalignment detection: boxes around fiducials, network inference,
tomogram decisions and training on simulated data (no pyworkflow)."""

from .boxes import BoxSet, extract_boxes, normalise_boxes, target_sampling
from .decision import (
    ALIGNED,
    CRITERIA,
    STRONG,
    UNCLASSIFIED,
    WEAK,
    TomogramDecision,
    aggregate,
    decide,
)

__all__ = [
    "BoxSet",
    "extract_boxes",
    "normalise_boxes",
    "target_sampling",
    "ALIGNED",
    "CRITERIA",
    "STRONG",
    "UNCLASSIFIED",
    "WEAK",
    "TomogramDecision",
    "aggregate",
    "decide",
]
