"""The import rule of DESIGN.md, read from the source: `qms` → {`ticketing`,
`dispatcher`, `displays`, `notify`} → `queue_core`; `ticketing` may use `dispatcher`;
nothing imports `qms`; and no modules of a package import each other in a
circle (a module-level import, or one inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("qms", "queue_core", "dispatcher", "ticketing", "displays", "notify")
MAY_IMPORT = {
    "qms": {"qms", "queue_core", "dispatcher", "ticketing", "displays", "notify"},
    "notify": {"notify", "queue_core"},
    "ticketing": {"ticketing", "dispatcher", "queue_core"},
    "dispatcher": {"dispatcher", "queue_core"},
    "displays": {"displays", "queue_core"},
    "queue_core": {"queue_core"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (the longest known name of each)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n in known}


MODULES = modules()
GRAPH = {name: imports_of(path, MODULES) for name, path in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_flow_one_way(module: str) -> None:
    package = module.split(".")[0]
    wrong = {m for m in GRAPH[module] if m.split(".")[0] not in MAY_IMPORT[package]}
    assert not wrong, f"{module} may not import {sorted(wrong)}"


def test_no_modules_import_each_other_in_a_circle() -> None:
    circles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(GRAPH[node]):
            if nxt == node or nxt == node.rsplit(".", 1)[0]:
                continue  # a package's __init__ and its own modules
            if state.get(nxt) == 1:
                circles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert circles == []
