"""The one rule for the torch-free side (docs/ARCHITECTURE.md): it imports no torch or torchvision, and of
`sipat` only the torch-free `sipat.vocabulary` (the names both sides share). Checked in a fresh interpreter,
since the test process itself has long imported torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ALLOWED = frozenset({"sipat", "sipat.vocabulary"})


def forbidden_imports(modules: list[str], forbidden: tuple[str, ...] = ("torch", "torchvision", "sipat")) -> list[str]:
    """The modules under the `forbidden` top-level names (less `ALLOWED`) that importing `modules` loads."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in set(sys.modules) - {set(ALLOWED)!r} if m.split('.')[0] in {forbidden!r})\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))
