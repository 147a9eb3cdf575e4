"""`worker.healthcheck` without a worker: the alive file's thread and the age the check allows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from worker.healthcheck import AliveFile, alive_age_s, main


def test_alive_file_is_touched_while_running_and_removed_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "w.alive"
    alive = AliveFile(path, interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.utime(path, (time.time() - 100, time.time() - 100))
        time.sleep(0.3)  # several intervals: touched again
        age = alive_age_s(path)
        assert age is not None and age < 5
        assert main(["--file", str(path), "--max-age", "5"]) == 0
    finally:
        alive.stop()
    assert not path.exists() and alive_age_s(path) is None


def test_check_fails_on_a_missing_or_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "w.alive"
    assert main(["--file", str(path)]) == 1
    assert "does not exist" in capsys.readouterr().err
    path.touch()
    os.utime(path, (time.time() - 120, time.time() - 120))
    assert main(["--file", str(path), "--max-age", "30"]) == 1
    assert "last touched 120 s ago (limit 30 s)" in capsys.readouterr().err
    assert main(["--file", str(path), "--max-age", "300"]) == 0
