"""The one rule for the web side (DESIGN.md, docs/ARCHITECTURE.md): it imports no torch, torchvision or `sipat`
(the names both sides share come from `backend.vocabulary`). Checked in a fresh interpreter, since the test
process itself has long imported torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def forbidden_imports(modules: list[str], forbidden: tuple[str, ...] = ("torch", "torchvision", "sipat")) -> list[str]:
    """The modules under the `forbidden` top-level names that importing `modules` loads."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(json.dumps(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))
