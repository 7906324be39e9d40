"""The layout's rules, checked on the source: no import cycle in the package, no torch in the wheel,
nothing outside the engine reaching into an engine object."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "realtime"
ENGINE = PACKAGE / "engine"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules `path` imports anywhere (functions included), except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    type_checking = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                     and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                     for node in ast.walk(block)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _package_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_the_package_has_no_import_cycle():
    graph = _package_graph()
    # a package's __init__ re-exporting names lazily is not a dependency of its modules on it
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt == "realtime" or nxt.endswith("__init__"):
                continue
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, path + [nxt]):
                return True
        state[node] = 2
        return False

    assert not any(visit(n, [n]) for n in sorted(graph) if state.get(n) is None), " -> ".join(cycle)


def test_nothing_in_the_wheel_imports_torch_or_the_training_code():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("torch", "training", "benchmarks", "tests")}
        if bad:
            offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert not offenders, offenders
    setuptools = (REPO / "pyproject.toml").read_text()
    packages = re.search(r'^packages = \[(.*)\]', setuptools, re.M).group(1)
    assert "training" not in packages and "evaluation" not in packages, packages


def _engine_names() -> tuple[set[str], set[str]]:
    """(private attribute and method names, method names) of the engine's classes."""
    private: set[str] = set()
    methods: set[str] = set()
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in ast.walk(node):
                    if isinstance(item, ast.FunctionDef) and not item.name.startswith("__"):
                        methods.add(item.name)
                        if item.name.startswith("_"):
                            private.add(item.name)
                    if (isinstance(item, ast.Attribute) and isinstance(item.value, ast.Name)
                            and item.value.id == "self" and item.attr.startswith("_")
                            and not item.attr.startswith("__")):
                        private.add(item.attr)
    return private, methods


def test_nothing_outside_the_engine_reads_or_replaces_an_engine_objects_internals():
    """Outside realtime/engine: no `x._name` for a private name of an engine class, and no method of an engine
    class replaced on an object (`restorer.stages["gate"].process = ...`, `setattr(stage, "process", ...)`)."""
    private, methods = _engine_names()
    outside = [p for folder in ("realtime", "benchmarks", "tests", "training", "evaluation")
               for p in (REPO / folder).rglob("*.py") if ENGINE not in p.parents]
    offenders = []
    for path in outside:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} reads .{node.attr}")
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if (isinstance(target, ast.Attribute) and target.attr in methods
                            and not (isinstance(target.value, ast.Name) and target.value.id == "self")):
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno} replaces {ast.unparse(target)}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr"
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in methods):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} setattr {node.args[1].value}")
    assert not offenders, offenders
