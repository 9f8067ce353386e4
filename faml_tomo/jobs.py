"""Typed jobs: a task's settings as a frozen dataclass whose fields carry
default, unit and help once, for the command line, the protocols and the
Python API alike.

A job class declares its fields with :func:`option`; from them come the
command-line arguments (:func:`add_arguments`, :func:`from_args`), the JSON
record (:func:`job_to_json`, :func:`job_from_json`, with a schema version)
and the defaults every caller shares.  Each job class has ``TASK`` (its
name in ``job.json``), ``SCHEMA`` (bumped when a field changes meaning) and
``problems()`` (readable messages for settings that cannot run; empty when
fine).
"""

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

__all__ = [
    "option",
    "add_arguments",
    "from_args",
    "job_to_json",
    "job_from_json",
    "job_fields",
    "check_job",
    "coerce_fields",
]


def option(
    default: Any,
    help: str,
    *,
    unit: str | None = None,
    flag: str | None = None,
    choices: tuple | None = None,
    metavar: Any = None,
    cli: bool = True,
    nargs: Any = None,
    positional: bool = False,
    required: bool = False,
) -> Any:
    """A job field with its command-line help.

    Parameters
    ----------
    default
        The one default of the field (``None``: optional, not set).
    help : str
        What the field does, for ``--help``, the protocol form and the docs.
    unit : str, optional
        Physical unit (``"Å"``, ``"deg"``, ``"voxels"``), shown in the help.
    flag : str, optional
        Command-line option (default ``--`` + the name with dashes); for a
        boolean that defaults to true, the option that turns it off.
    choices : tuple, optional
    metavar : str or tuple, optional
    cli : bool
        Whether the command line offers it.
    nargs : int or str, optional
        Values of a tuple field on the command line (default: as many as the
        default or the metavar has, else ``"+"``).
    positional : bool
        A positional argument instead of an option.
    required : bool
        The command line requires the option (the job's ``problems()`` says
        so too).
    """
    return dataclasses.field(
        default=default,
        metadata={
            "help": help,
            "unit": unit,
            "flag": flag,
            "choices": choices,
            "metavar": metavar,
            "cli": cli,
            "nargs": nargs,
            "positional": positional,
            "required": required,
        },
    )


def _optional(t) -> bool:
    return (isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union) and type(
        None
    ) in typing.get_args(t)


def job_fields(job_cls: type) -> list:
    """``(field, base type, is_tuple)`` of each field of a job class."""
    hints = typing.get_type_hints(job_cls)
    out = []
    for f in dataclasses.fields(job_cls):
        t = hints[f.name]
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if _optional(t):
            t = args[0]  # X | None -> X
        is_tuple = typing.get_origin(t) is tuple
        base = typing.get_args(t)[0] if is_tuple else t
        out.append((f, base, is_tuple))
    return out


def coerce_fields(job: Any) -> None:
    """Give each field of a (frozen) job its declared type in place: paths
    from strings, tuples from lists, floats from ints; call it from
    ``__post_init__``.  Values that do not convert are left for
    ``problems()`` to name."""
    for f, base, is_tuple in job_fields(type(job)):
        v = getattr(job, f.name)
        if v is None or base is bool:
            continue
        try:
            if is_tuple:
                v = tuple(base(x) for x in v)
            elif base in (Path, float) and not isinstance(v, base):
                v = base(v)
        except (TypeError, ValueError):
            continue
        object.__setattr__(job, f.name, v)


def _flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _help(f) -> str:
    text = f.metadata["help"].replace("%", "%%")
    unit = f.metadata.get("unit")
    if unit:
        text += f" [{unit}]"
    d = f.default
    if d is not None and not isinstance(d, bool) and d != ():
        text += f" (default {' '.join(map(str, d)) if isinstance(d, tuple) else d})"
    return text


def add_arguments(
    parser: argparse.ArgumentParser, job_cls: type, exclusive: Sequence[Sequence[str]] = ()
) -> None:
    """Add one command-line option per job field to ``parser``.

    ``exclusive``: groups of field names of which exactly one must be given
    (e.g. the input as a STAR file or a folder)."""
    groups = {}
    for names in exclusive:
        g = parser.add_mutually_exclusive_group(required=True)
        groups.update({n: g for n in names})
    for f, base, is_tuple in job_fields(job_cls):
        if not f.metadata.get("cli", True):
            continue
        target = groups.get(f.name, parser)
        kw = {"dest": f.name, "help": _help(f)}
        positional = f.metadata.get("positional")
        if positional:
            kw.pop("dest")
        if base is bool:
            action = "store_false" if f.default else "store_true"
            target.add_argument(_flag(f), action=action, **kw)
            continue
        if is_tuple:
            n = f.metadata.get("nargs") or (
                len(f.default) if isinstance(f.default, tuple) else None
            )
            kw["nargs"] = n or (
                "+" if f.metadata.get("metavar") is None else len(f.metadata["metavar"])
            )
        if f.metadata.get("choices"):
            kw["choices"] = f.metadata["choices"]
        if f.metadata.get("metavar") is not None:
            kw["metavar"] = f.metadata["metavar"]
        if f.metadata.get("required"):
            kw["required"] = True
        kind = base
        if f.default is not None and _optional(typing.get_type_hints(job_cls)[f.name]):
            kind = _or_none(base)  # "none" unsets an optional default
            kw["help"] += "; none: not set"
        if positional:
            target.add_argument(f.name, type=kind, **kw)
        else:
            target.add_argument(_flag(f), type=kind, default=f.default, **kw)


def _or_none(base):
    def convert(text: str) -> Any:
        return None if text.strip().lower() in ("none", "") else base(text)

    convert.__name__ = base.__name__  # argparse names the type in errors
    return convert


def from_args(job_cls: type, args: argparse.Namespace) -> Any:
    """The job of parsed command-line arguments (lists become tuples)."""
    values = {}
    for f, _, is_tuple in job_fields(job_cls):
        if not f.metadata.get("cli", True) or not hasattr(args, f.name):
            continue
        v = getattr(args, f.name)
        values[f.name] = tuple(v) if is_tuple and v is not None else v
    return job_cls(**values)


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    return v


def job_to_json(job: Any) -> dict:
    """``{"task", "schema", "fields"}``: every field, paths as strings."""
    return {
        "task": job.TASK,
        "schema": job.SCHEMA,
        "fields": {f.name: _jsonable(getattr(job, f.name)) for f in dataclasses.fields(job)},
    }


def job_from_json(job_cls: Any, record: dict) -> Any:
    """The job of a :func:`job_to_json` record.

    Raises
    ------
    InputError
        Another task, a newer schema, or unknown fields."""
    if record.get("task") != job_cls.TASK:
        raise InputError(f"the job is a {record.get('task')!r} job, not {job_cls.TASK!r}")
    if int(record.get("schema", 0)) > job_cls.SCHEMA:
        raise InputError(
            f"job schema {record.get('schema')} is newer than this "
            f"faml_tomo's ({job_cls.SCHEMA}): update faml_tomo"
        )
    values = dict(record.get("fields", {}))
    known = {f.name: (base, is_tuple) for f, base, is_tuple in job_fields(job_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InputError(f"unknown {job_cls.TASK} job fields: {', '.join(unknown)}")
    for name, v in values.items():
        base, is_tuple = known[name]
        if v is None:
            continue
        if is_tuple:
            values[name] = tuple(base(x) for x in v)
        elif base in (Path, int, float):
            values[name] = base(v)
    return job_cls(**values)


def check_job(job: Any) -> None:
    """Raise :class:`InputError` with every problem of ``job`` (one per line)."""
    problems = job.problems()
    if problems:
        raise InputError("; ".join(problems))
