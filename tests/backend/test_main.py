"""The application as a whole: OpenAPI completeness, health, and no torch/sipat behind the web service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.torchfree import forbidden_imports

#: POSTs that change a state and take no input (open/close a study, cancel a job): no request body to declare.
ACTIONS_WITHOUT_INPUT = ("/open", "/close", "/cancel")


def test_every_operation_declares_request_and_response_models(app: FastAPI) -> None:
    spec = app.openapi()
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 8
    for path, method, op in operations:
        success = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert success, f"{method} {path} declares no 2xx response"
        for code, response in success.items():
            content = response.get("content", {})
            assert content and all(c.get("schema") for c in content.values()), f"{method} {path} {code}"
        if method in ("post", "put", "patch") and not path.endswith(ACTIONS_WITHOUT_INPUT):
            body = op.get("requestBody", {}).get("content", {})
            assert body and all(c.get("schema") for c in body.values()), f"{method} {path} has no body schema"
    annotation = spec["paths"]["/api/v1/sessions/{token}/trials/{trial_id}/annotation"]["post"]
    assert set(annotation["requestBody"]["content"]) == {"application/json", "multipart/form-data"}


def test_health(client: TestClient) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok", "database": "ok"}


def test_backend_imports_neither_torch_nor_sipat() -> None:
    modules = ["backend.main", "backend.cli", "backend.migrate", "backend.services.datasets", "backend.services.jobs"]
    assert forbidden_imports(modules) == []


def test_a_server_process_freezes_its_startup_objects(tmp_path: Path) -> None:
    """The app's startup moves the long-lived objects out of the collector's way (gc.freeze), once."""
    code = (
        "import gc\n"
        "from fastapi.testclient import TestClient\n"
        "from backend.main import create_app\n"
        "assert gc.get_freeze_count() == 0\n"
        "with TestClient(create_app()):\n"
        "    frozen = gc.get_freeze_count()\n"
        "    assert frozen > 10_000, frozen\n"
        "marker = [[]]  # made after the first freeze: a second freeze would take it out of get_objects()\n"
        "with TestClient(create_app()):\n"
        "    assert any(o is marker for o in gc.get_objects())\n"
    )
    env = {
        "SIPAT_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "SIPAT_DATA_DIR": str(tmp_path / "data"),
        "SIPAT_SECRET_KEY": "k" * 40,
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
