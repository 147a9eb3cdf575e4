"""The benchmarks are a package run as modules (`python -m benchmarks.x` from the repository root, as `make bench`
does): none edits `sys.path` to find `sipat`, `backend`, `tests` or a sibling, and each module stays a read of
one sitting (the load benchmark was one file of 631 lines before it became `benchmarks/load/`)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted((REPO / "benchmarks").rglob("*.py"))
MAX_LINES = 400


def edits_sys_path(source: str) -> bool:
    """Whether `source` touches `sys.path` (``sys.path.insert(...)``, ``sys.path[:0] = ...``, ``sys.path += ...``)."""
    return any(
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
        for node in ast.walk(ast.parse(source))
    )


def test_the_check_sees_a_path_edit() -> None:
    assert edits_sys_path("import sys\nsys.path.insert(0, 'x')\n")
    assert edits_sys_path("import sys\nsys.path[:0] = ['x']\n")
    assert not edits_sys_path("import sys\nsys.exit(main())\n")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_benchmark_modules_leave_sys_path_alone_and_stay_short(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not edits_sys_path(text), f"{path.relative_to(REPO)} edits sys.path; import `benchmarks.`/`tests.` modules"
    assert len(text.splitlines()) <= MAX_LINES, f"{path.relative_to(REPO)} is over {MAX_LINES} lines; split it"


def test_the_load_benchmark_runs_as_a_module() -> None:
    """Its imports (the shared participant, seed and server launcher of `tests.`, the floods) resolve from the
    repository root alone."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.load", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--participants" in proc.stdout and "python -m benchmarks.load" in proc.stdout
