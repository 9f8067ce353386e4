"""faml_tomo's Scipion workflow templates (``faml_tomo/templates``).

A template is a Scipion workflow JSON with fields written
``~Title|default|type|alias~`` (type: 0 string, 1 boolean, 2 path,
3 integer, 4 decimal, 6 folder), preceded by a one-line description.
Scipion lists them in its template dialog (``TemplateList().addPluginTemplates()``,
ids ``faml_tomo-<name>``); :func:`fill_template` fills the fields by alias
and writes a plain workflow JSON that ``python -m
pyworkflow.project.scripts.create NAME file.json`` or
:func:`faml_tomo.workflow.project.create_project` loads.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..io.mrc import atomic_path
from ..typealiases import PathLike

if TYPE_CHECKING:
    from pyworkflow.template import LocalTemplate

logger = logging.getLogger(__name__)

__all__ = ["TEMPLATE_DIR", "TEMPLATES", "template_path", "template_fields", "fill_template"]

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
SUFFIX = ".json.template"

#: Short names of the shipped templates and their file stems.
TEMPLATES = {
    "misalignment": "faml_tomo_misalignment",
    "classify": "faml_tomo_classify",
}


def template_path(name: str) -> Path:
    """Path of a shipped template.

    Parameters
    ----------
    name : str
        A key of :data:`TEMPLATES` (``"misalignment"``, ``"classify"``) or
        a file stem in ``faml_tomo/templates``.

    Returns
    -------
    pathlib.Path
    """
    path = TEMPLATE_DIR / (TEMPLATES.get(name, name) + SUFFIX)
    if not path.is_file():
        known = ", ".join(sorted(TEMPLATES))
        raise InputError(f"unknown workflow template {name!r} (known: {known}; looked for {path})")
    return path


def _load(name: str) -> LocalTemplate:
    from pyworkflow.template import LocalTemplate

    template = LocalTemplate("faml_tomo", str(template_path(name)))
    try:
        template.replaceEnvVariables()
    except KeyError as exc:
        raise InputError(f"template {name}: environment variable {exc} is not set") from exc
    template.parseContent()
    return template


def template_fields(name: str) -> list[dict]:
    """The fields of a template.

    Parameters
    ----------
    name : str
        Template name (see :func:`template_path`).

    Returns
    -------
    list of dict
        ``{"title", "default", "type", "alias"}`` per field, in order.
    """
    return [
        {"title": p.getTitle(), "default": p.getValue(), "type": p.getType(), "alias": p.getAlias()}
        for p in _load(name).getParams().values()
    ]


def fill_template(name: str, values: Mapping[str, object], out: PathLike) -> Path:
    """Fill a template's fields and write the workflow JSON.

    Parameters
    ----------
    name : str
        Template name (see :func:`template_path`).
    values : dict
        ``{alias: value}``; fields not given keep their defaults.
    out : str or Path
        Workflow JSON to write (atomically).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    InputError
        Unknown alias, or a value that does not fit the field's type (a
        path that does not exist, a non-integer for an integer field...).
    """
    template = _load(name)
    aliases = {p.getAlias() for p in template.getParams().values()}
    unknown = sorted(set(values) - aliases)
    if unknown:
        raise InputError(
            f"template {name}: unknown field(s) {', '.join(unknown)} "
            f"(fields: {', '.join(sorted(aliases))})"
        )
    for alias, value in values.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # pyworkflow prints
                template.setParamValue(alias, str(value))
        except Exception as exc:  # pyworkflow raises a bare Exception
            raise InputError(f"template {name}, field {alias}: {exc}") from exc
    template._replaceFields()
    text = "".join(str(part) for part in template.getContent())
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:  # a string value that breaks the JSON
        raise InputError(
            f"template {name}: the filled workflow is not valid JSON "
            f"({exc}); check the values {values}"
        ) from exc
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(text)
    logger.info("workflow %s written to %s", name, out)
    return out
