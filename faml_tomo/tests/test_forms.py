"""The protocol forms read without the code at hand: every label is plain
words and units (no internal names such as ``lmax`` or ``alpha_trd``, no
``(A)`` for Å), every parameter has help, the FAML form is grouped into
sections as scipion-em-reliontomo's, expert settings are marked expert."""

import re

import pytest

# identifiers of the code, ASCII stand-ins for units
INTERNAL = re.compile(
    r"\(A\)|\bA/px\b|\bdeg\b|\blmax\b|\bthr\b|[a-z]+_[a-z]+|[a-z]+[A-Z][a-z]+|\bVoronoi\b"
)


def _protocols():
    from faml_tomo.protocols import (
        ProtDetectMisalignment,
        ProtFAMLClassify,
        ProtPeakHighContrast,
    )

    return [ProtFAMLClassify, ProtPeakHighContrast, ProtDetectMisalignment]


def _params(form):
    """(section label, name, param) of a form, lines unfolded."""
    for section in form.iterSections():
        for name, param in section.iterParams():
            yield section.getLabel(), name, param
            if hasattr(param, "iterParams"):  # a Line: its own parameters
                for sub_name, sub in param.iterParams():
                    yield section.getLabel(), sub_name, sub


@pytest.mark.parametrize("cls", _protocols(), ids=lambda c: c.__name__)
def test_labels_are_words_a_biologist_reads(cls):
    form = cls()._definition
    bad = []
    for section, name, param in _params(form):
        label = param.label.get() or ""
        help_text = param.help.get() or ""
        if INTERNAL.search(label):
            bad.append(f"{section} / {name}: label {label!r}")
        if "(A)" in help_text or " A/px" in help_text:
            bad.append(f"{section} / {name}: help writes Å as A: {help_text!r}")
        if not help_text and type(param).__name__ not in ("LabelParam", "Line", "Group"):
            if name not in ("tiltMin", "tiltMax", "hostName", "numberOfThreads", "numberOfMpi"):
                bad.append(f"{section} / {name}: no help")
    assert not bad, "\n".join(bad)


def test_the_faml_form_is_grouped_and_its_expert_settings_marked():
    from pyworkflow.protocol.params import LEVEL_ADVANCED

    from faml_tomo.protocols import ProtFAMLClassify

    form = ProtFAMLClassify()._definition
    sections = [s.getLabel() for s in form.iterSections()]
    # Scipion's own General section (run name, comment) comes first
    assert sections == ["General", "Input", "Optimisation", "Sampling", "Parallelization"]
    where = {name: (section, param) for section, name, param in _params(form)}
    for name in ("maxCandidates", "angularBandwidth", "voronoiSamples", "alphaTrd"):
        section, param = where[name]
        assert section == "Sampling" and param.expertLevel.get() == LEVEL_ADVANCED, name
    for name in ("numberOfClasses", "numberOfIterations", "mode", "symmetry", "goldStandard"):
        section, param = where[name]
        assert section == "Optimisation" and param.expertLevel.get() != LEVEL_ADVANCED, name
