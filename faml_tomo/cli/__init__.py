"""The ``faml-tomo`` command line.

Each subcommand lives in its own module of this package with two functions:
``add_parser(subparsers)`` that defines its arguments and ``run(args)`` that
does the work and returns an exit code.  The modules stay thin: they parse,
call the compute packages and write files.

Exit codes: 0 success, 1 unexpected failure (traceback), 2 bad usage or bad
input (a one-line message naming the problem).
"""

import argparse
import importlib
import logging
import sys
from collections.abc import Iterator, Sequence
from types import ModuleType

from .. import __version__
from ..errors import InputError

logger = logging.getLogger(__name__)

# Subcommand modules, in the order ``faml-tomo --help`` lists them.
SUBCOMMANDS = [
    "info",
    "simulate",
    "classify",
    "peak_high_contrast",
    "detect_misalignment",
    "train_misalignment",
    "demo",
    "run",
]


def _available_subcommands() -> Iterator[ModuleType]:
    for name in SUBCOMMANDS:
        try:
            yield importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # a real missing dependency, not an absent module


def build_parser() -> argparse.ArgumentParser:
    """The top-level argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="faml-tomo",
        description="faml_tomo: FAML subtomogram averaging and classification, "
        "gold fiducial detection and misalignment detection for "
        "cryo-electron tomography.",
    )
    parser.add_argument("--version", action="version", version=f"faml-tomo {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _available_subcommands():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    # Library warnings (numpy's "Mean of empty slice", ...) are log lines for
    # -v, not tracebacks-like noise: our own checks say what matters.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"faml-tomo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"faml-tomo {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        logging.captureWarnings(False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
