"""The package's structure rules (docs/architecture.md), checked on the source:
layers (an import never points up), file and function sizes (functions
without their docstrings).  The lists of
known exceptions only shrink: a new violation fails."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]
# top to bottom: workflow > viewers > protocols > cli > compute > io > core
LAYERS = {
    "workflow": 7,
    "viewers": 6,
    "protocols": 5,
    "cli": 4,
    "averaging": 3,
    "fiducials": 3,
    "misalignment": 3,
    "simulation": 3,
    "models": 3,
    "io": 2,
}
UPWARD_OK = {
    # the `faml-tomo demo` subcommand is the workflow layer's command-line entry
    ("cli/demo.py", "faml_tomo.workflow.demo"),
}
COMPUTE = {"averaging", "fiducials", "misalignment", "simulation"}
# Over the limits after `ruff format` (one argument per line); these may only shrink.
LONG_FILES: dict = {}
LONG_FUNCTIONS: set = set()  # without docstrings, over 80 lines


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] != "tests":
            yield rel, path.read_text()


def _layer(parts):
    return LAYERS.get(parts[1], 1) if len(parts) > 1 else 1


def _imports(rel, tree):
    """Absolute ``faml_tomo...`` names each import statement of a module refers to."""
    pkg = ["faml_tomo", *rel.parts[:-1]]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
            elif (node.module or "").startswith("faml_tomo"):
                target = node.module.split(".")
            else:
                continue
            if len(target) == 1:  # from .. import subpackage
                yield from (["faml_tomo", a.name] for a in node.names)
            else:
                yield target
        elif isinstance(node, ast.Import):
            yield from (a.name.split(".") for a in node.names if a.name.startswith("faml_tomo."))


def test_imports_never_point_up_and_compute_never_imports_pyworkflow():
    bad = []
    for rel, text in _sources():
        tree = ast.parse(text)
        mine = _layer(["faml_tomo", *rel.parts])
        for target in _imports(rel, tree):
            if _layer(target) > mine and (rel.as_posix(), ".".join(target)) not in UPWARD_OK:
                bad.append(f"{rel}: imports {'.'.join(target)}")
        if rel.parts[0] in COMPUTE | {"io"}:
            for node in ast.walk(tree):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                bad += [
                    f"{rel}: imports {n}"
                    for n in names
                    if n.split(".")[0] in ("pyworkflow", "pwem", "tomo")
                ]
    assert not bad, "\n".join(bad)


def test_file_and_function_sizes():
    long_files, long_functions, seen = [], [], set()
    for rel, text in _sources():
        key = rel.as_posix()
        n_lines = len(text.splitlines())
        limit = 400 if rel.parts[0] in COMPUTE else 500
        if n_lines > max(limit, LONG_FILES.get(key, 0)):
            long_files.append(f"{key}: {n_lines} lines (limit {limit})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if (
                    isinstance(first, ast.Expr)
                    and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)
                ):
                    size -= first.end_lineno - first.lineno + 1  # the docstring
                if size > 80:
                    seen.add(f"{key}:{node.name}")
                    if f"{key}:{node.name}" not in LONG_FUNCTIONS:
                        long_functions.append(f"{key}:{node.name}: {size} lines")
    assert not long_files, "\n".join(long_files)
    assert not long_functions, "\n".join(long_functions)
    # an exception that no longer applies leaves the list (it only shrinks)
    assert LONG_FUNCTIONS <= seen, sorted(LONG_FUNCTIONS - seen)


def _public_functions(tree):
    """(name, node) of the public functions and methods of a module: names
    without a leading underscore (``__init__`` of a public class included),
    in public classes, also under module-level ``if`` blocks."""

    def visit(node, cls):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                yield from visit(child, child.name)
            elif isinstance(child, ast.If):
                yield from visit(child, cls)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not child.name.startswith("_") or (cls and child.name == "__init__"):
                    yield (f"{cls}.{child.name}" if cls else child.name), child

    yield from visit(tree, None)


def test_public_functions_are_annotated():
    """Every public function and method has annotated parameters and a
    return annotation (issue 17); mypy checks them in the compute packages."""
    missing = []
    for rel, text in _sources():
        for name, node in _public_functions(ast.parse(text)):
            a = node.args
            params = [
                p for p in a.posonlyargs + a.args + a.kwonlyargs if p.arg not in ("self", "cls")
            ]
            params += [p for p in (a.vararg, a.kwarg) if p is not None]
            if any(p.annotation is None for p in params) or (
                node.returns is None and node.name != "__init__"
            ):
                missing.append(f"{rel.as_posix()}:{node.lineno}: {name}")
    assert not missing, "\n".join(missing)
