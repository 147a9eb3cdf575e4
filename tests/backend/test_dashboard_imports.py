"""The dashboard (`backend.admin`) borrows nothing of the research API's routers.

Why: the dashboard serves the same downloads, exports and dataset uploads as the research API; when it took them
from the API's router modules (`backend.api.datasets`, `exports`, `downloads`), a change to a route reached the
dashboard unseen. The shared HTTP helpers live in `backend.files`. Of `backend.api` the dashboard may use the
request dependencies (`deps`: database session, settings, blob store) and simulate mode's signed grant
(`simulation`), which both sides define once. Read from the source with `ast` (nothing is imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The modules of `backend.api` the dashboard may import.
SHARED = {"backend.api.deps", "backend.api.simulation"}


def api_imports(source: str) -> set[str]:
    """The `backend.api` modules a source imports (``from backend.api.x import y`` -> ``backend.api.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("backend.api"):
            found.add(node.module or "")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("backend.api")}
    return found


def test_the_check_sees_a_borrowed_helper() -> None:
    assert api_imports("from backend.api.datasets import dataset_upload\n") == {"backend.api.datasets"}
    assert api_imports("from backend.files.uploads import dataset_upload\n") == set()


def test_the_dashboard_uses_the_shared_helpers_not_the_research_api() -> None:
    borrowed = {
        str(path.relative_to(ROOT)): sorted(api_imports(path.read_text(encoding="utf-8")) - SHARED)
        for path in sorted((ROOT / "backend" / "admin").rglob("*.py"))
    }
    assert not {k: v for k, v in borrowed.items() if v}, (
        "the dashboard imports research API modules; move the helper to backend/files/ (HTTP) or "
        "backend/services/ (rows) and import it from there"
    )
