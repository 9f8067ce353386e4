"""A protocol form as a typed job: each protocol's table of form parameter ->
job field (``FORM_FIELDS``, enumerations in ``FORM_CHOICES``) gives the job
of a form and the form's defaults (the job's)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyworkflow.protocol import Protocol

__all__ = ["form_default", "form_values"]


def form_default(
    defaults: Mapping[str, object],
    fields: Mapping[str, str],
    choices: Mapping[str, Sequence[object]],
    name: str,
) -> object:
    """The default of form parameter ``name``: the job field's default
    (``defaults``), as an index for an enumeration."""
    value = defaults[fields[name]]
    return choices[name].index(value) if name in choices else value


def form_values(
    protocol: Protocol, fields: Mapping[str, str], choices: Mapping[str, Sequence[object]]
) -> dict[str, object]:
    """Job field -> value of each form parameter of ``protocol`` in
    ``fields`` (enumerations turned from indices into the job's values)."""
    values = {}
    for name, field in fields.items():
        value = getattr(protocol, name).get()
        if name in choices:
            value = choices[name][value or 0]
        values[field] = value
    return values
