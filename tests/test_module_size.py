"""No source module of `sipat`, `backend` or `worker` is over 400 lines (issue 15).

Why a limit: a module past a few screens is how the house grew its "everything about X" modules
(`sipat/experiment.py` at 1,116 lines, `sipat/data.py` at 881, `backend/services/participants.py` at 575), and
new work lands in the biggest file at hand. A module that reaches the limit is split by what it is about, not
trimmed to pass.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sipat", "backend", "worker")
MAX_LINES = 400


def long_modules(root: Path = ROOT, limit: int = MAX_LINES) -> dict[str, int]:
    """path -> line count of every module of `PACKAGES` under `root` over `limit` lines."""
    counts = {
        str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in sorted((root / package).rglob("*.py"))
    }
    return {path: n for path, n in counts.items() if n > limit}


def test_the_check_sees_a_long_module(tmp_path: Path) -> None:
    (tmp_path / "sipat").mkdir()
    (tmp_path / "sipat" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "sipat" / "small.py").write_text("x = 1\n" * MAX_LINES)
    assert long_modules(tmp_path) == {"sipat/big.py": MAX_LINES + 1}


def test_no_source_module_is_over_the_limit() -> None:
    assert len(list((ROOT / "sipat").rglob("*.py"))) > 20  # the walk found the sources
    assert long_modules() == {}, f"modules over {MAX_LINES} lines: split them by what they are about"
