"""No module of `sipat`, `backend` or `worker` imports another in a cycle.

A cycle means neither module can be read (or imported) without the other, and it is how a package grows one
"everything" module: `sipat.cli` <-> `sipat.experiment` was one. The graph is read from the source with `ast`
(nothing is imported), with every import: at module level and inside functions (a deferred import still ties
the two modules together), except those under ``if TYPE_CHECKING:``, which never run. ``from a.b import c``
points at module ``a.b.c`` when that is a module, else at ``a.b``.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sipat", "backend", "worker")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(imported module, names taken from it) for every import that can run, relative ones resolved."""
    found: list[tuple[str, list[str]]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((base, [alias.name for alias in node.names]))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """module -> the modules of ``packages`` it imports."""
    files = {
        _module_name(path, root): path
        for package in packages
        if (root / package).is_dir()
        for path in sorted((root / package).rglob("*.py"))
    }
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for base, names in _imports(tree, module, path.name == "__init__.py"):
            if not names and base in files:  # import a.b
                targets.add(base)
            for name in names:  # from a import b: module a.b if there is one, else a name of module a
                if f"{base}.{name}" in files:
                    targets.add(f"{base}.{name}")
                elif base in files:
                    targets.add(base)
        graph[module] = targets - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_module_of_sipat_backend_or_worker_imports_in_a_cycle():
    graph = import_graph(ROOT)
    assert len(graph) > 50 and "sipat.experiment" in graph  # the walk found the packages
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(reversed(cycle or []))


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("files", "cycle"),
    [
        ({"pkg/a.py": "import pkg.b\n", "pkg/b.py": "def f():\n    from pkg import a\n"}, True),
        ({"pkg/a.py": "from . import b\n", "pkg/b.py": "from .a import x\n"}, True),
        ({"pkg/__init__.py": "from pkg.a import x\n", "pkg/a.py": "from pkg.b import y\n", "pkg/b.py": ""}, False),
        (
            {
                "pkg/a.py": "from pkg.b import y\n",
                "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n",
            },
            False,
        ),
        ({"pkg/a.py": "import pkg.b\n", "pkg/b.py": "if TYPE_CHECKING:\n    pass\nelse:\n    import pkg.a\n"}, True),
    ],
    ids=["deferred-import", "relative", "package-reexport", "type-checking-only", "type-checking-else"],
)
def test_the_checker_finds_cycles_and_only_cycles(tmp_path, files, cycle):
    _write(tmp_path, files)
    graph = import_graph(tmp_path, ("pkg",))
    assert (find_cycle(graph) is not None) is cycle
