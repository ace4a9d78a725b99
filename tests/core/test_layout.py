"""The floor plan of services/: packages by capability, no import cycles, no private names shared.

Imports are read from the source (every ``import`` statement, including ones inside functions), so a
cycle hidden behind a late import is found as well as a top-level one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SERVICES.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(SERVICES.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every services import in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("services"):
            names = [a.name for a in node.names]
            submodules = [f"{node.module}.{n}" for n in names if f"{node.module}.{n}" in modules]
            for sub in submodules:
                found.append((sub, [], node.lineno))
            rest = [n for n in names if f"{node.module}.{n}" not in modules]
            if rest:
                found.append((node.module, rest, node.lineno))
        elif isinstance(node, ast.Import):
            found += [
                (a.name, [], node.lineno) for a in node.names if a.name.startswith("services")
            ]
    return found


def test_no_import_cycle_in_services() -> None:
    modules = _modules()
    graph = {
        name: {m for m, _, _ in _imports(path, modules) if m in modules and m != name}
        for name, path in modules.items()
    }
    # a package's __init__ imports nothing; an edge to a package is an edge to its __init__
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_private_name_is_imported_across_modules() -> None:
    modules = _modules()
    shared = []
    for name, path in modules.items():
        for module, names, line in _imports(path, modules):
            shared += [f"{name}:{line} takes {module}.{n}" for n in names if n.startswith("_")]
    assert not shared, shared


def _may_import(package: Path) -> set[str]:
    """The packages a package's docstring says it may import (its "May import: ``a``, ``b``" line)."""
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    line = next((part for part in doc.split("\n\n") if part.startswith("May import:")), None)
    assert line, f"{package.name}/__init__.py does not say what it may import"
    return set(re.findall(r"``(\w+)``", line.split("(")[0]))


def test_every_package_imports_only_what_its_docstring_allows() -> None:
    packages = [p for p in SERVICES.iterdir() if (p / "__init__.py").exists()]
    assert len(packages) >= 12, packages
    modules = _modules()
    beyond = []
    for package in packages:
        allowed = _may_import(package) | {package.name}
        for path in package.rglob("*.py"):
            for module, _, line in _imports(path, modules):
                other = module.split(".")[1] if module.count(".") else module
                if other not in allowed:
                    beyond.append(f"{path.relative_to(SERVICES)}:{line} imports {module}")
    assert not beyond, beyond


def test_services_has_no_flat_modules_left_but_the_schema_registry() -> None:
    flat = sorted(p.name for p in SERVICES.glob("*.py") if p.name != "__init__.py")
    assert flat == ["schema.py"], flat
