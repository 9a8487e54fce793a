"""The command modules sit on top of the core: nothing imports ``polypvision.cli`` (lazy imports
count), and ``cli`` and ``batch`` import each other only one way (issue 23: a 5-module cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import polypvision

PACKAGE = Path(polypvision.__file__).parent


def _module_name(path: Path) -> str:
    parts = ("polypvision", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every module's imports of polypvision modules, wherever the import statement stands."""
    mods = {_module_name(p): p for p in PACKAGE.rglob("*.py")}

    def known(name: str) -> str:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps |= {known(a.name) for a in node.names if a.name.startswith("polypvision")}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                if base.startswith("polypvision"):
                    for a in node.names:
                        full = f"{base}.{a.name}"
                        deps.add(full if full in mods else known(base))
        graph[mod] = deps - {mod, "polypvision", ""}
    return graph


def reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m not in seen:
            seen.add(m)
            todo.extend(graph.get(m, ()))
    return False


def test_nothing_imports_the_command_module():
    graph = import_graph()
    importers = sorted(m for m, deps in graph.items() if "polypvision.cli" in deps)
    assert importers == ["polypvision.__main__"]


def test_no_import_cycle_through_the_commands_or_batch():
    graph = import_graph()
    looped = [
        m
        for m in graph
        if (
            m == "polypvision.cli"
            or m.startswith("polypvision.batch")
            or m.startswith("polypvision.cli_")
        )
        and any(reaches(graph, d, m) for d in graph[m])
    ]
    assert looped == []
