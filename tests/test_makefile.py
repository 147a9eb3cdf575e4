"""`make run` on a fresh clone says what it is doing while it installs (torch alone is ~1 GB) and what it starts.

The Makefile runs for real, with a stand-in `python` in a temporary venv that only reports its arguments: the
order of what a newcomer sees is checked without downloading anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\necho "RAN python $*"\n')
    python.chmod(0o755)
    return venv


def make(venv: Path, target: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    done = subprocess.run(
        ["make", "--no-print-directory", target, f"VENV={venv}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Without the commands make echoes (they start with the venv's path): what `echo` and the tools print.
    return [line for line in done.stdout.splitlines() if line.strip() and not line.startswith(str(venv))]


def test_each_install_step_is_announced_before_it_runs(tmp_path: Path) -> None:
    lines = make(fake_venv(tmp_path), "install")
    shown = [line for line in lines if not line.startswith(("RAN ", "#"))]
    ran = [i for i, line in enumerate(lines) if line.startswith("RAN ") and "pip install" in line]
    assert len(ran) == 5, lines
    for i in ran:  # the line before each pip run is what the newcomer reads about it
        assert lines[i - 1].endswith("..."), (lines[i - 1], lines[i])
    torch = next(i for i in ran if "torch==" in lines[i])
    assert "torch" in lines[torch - 1] and "1 GB" in lines[torch - 1]
    assert shown[0].startswith("make: installing into") and shown[-1] == "make: installed"
    assert make(fake_venv(tmp_path / "again"), "install")[-1] == "make: installed"


def test_run_says_what_it_starts_and_what_to_wait_for(tmp_path: Path) -> None:
    venv = fake_venv(tmp_path)
    make(venv, "install")
    lines = make(venv, "run")  # installed: only the server starts
    assert "installing" not in " ".join(lines)
    assert "starting the development server" in lines[-2] and "demo ready" in lines[-2]
    assert lines[-1] == "RAN python -m backend.devserver"
