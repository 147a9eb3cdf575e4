"""The service benchmarks still run end to end, in miniature (they are not part of the suite otherwise, and
one of them once broke unnoticed when the server launcher moved to tests/netkit.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]


def _run(module: str, postgres_url: str, *args: str) -> str:
    """`python -m benchmarks.<module>` from the repository root, as `make bench` and docs/performance.md run it."""
    env = {**os.environ, "SIPAT_BENCH_POSTGRES_URL": postgres_url}
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_load_benchmark_checks_every_answer(postgres_url: str) -> None:
    out = _run("load", postgres_url, "--participants", "6", "--think-ms", "50", "--workers", "1")
    assert "sessions completed: 6 of 6; errors: 0" in out
    assert "answers acknowledged: 120; lost: 0; duplicated: 0; altered: 0" in out
    assert "goal p99 GET next < 100 ms" in out and "p99 during arrivals / after" in out


def test_load_benchmark_with_abuse_refuses_the_floods_past_the_limits(postgres_url: str) -> None:
    """The floods of `--abuse` at 4x the limits from one address each: some of each flood is let through, the
    rest refused 429 with Retry-After, and the participants' answers are all kept."""
    out = _run(
        "load", postgres_url, "--participants", "4", "--think-ms", "1500", "--workers", "1",
        "--abuse", "--abuse-clients", "1", "--abuse-factor", "4",
    )  # fmt: skip
    assert "sessions completed: 4 of 4; errors: 0" in out
    assert "answers acknowledged: 80; lost: 0; duplicated: 0; altered: 0" in out
    assert "429 answers without Retry-After: 0" in out
    rows = {line[:34].strip(): line[34:] for line in out.splitlines() if line.startswith("flood: ")}
    assert set(rows) == {"flood: POST sessions", "flood: POST login (sprayed)", "flood: POST login (one account)"}
    assert "201:" in rows["flood: POST sessions"] and "429:" in rows["flood: POST sessions"], rows
    assert "401:" in rows["flood: POST login (sprayed)"] and "429:" in rows["flood: POST login (sprayed)"], rows


def test_export_benchmark_streams_both_studies(postgres_url: str) -> None:
    out = _run("export_memory", postgres_url, "--rows", "3000", "--small", "300")
    assert "large         3,000" in out and "small           300" in out
    assert "peak RSS at 3,000 rows / at 300 rows" in out
