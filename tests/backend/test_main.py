"""The application as a whole: OpenAPI completeness, health, and no torch/sipat behind the web service."""

from __future__ import annotations

import subprocess
import sys

from fastapi import FastAPI
from fastapi.testclient import TestClient

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
    code = (
        "import sys\n"
        "import backend.main, backend.cli, backend.migrate, backend.services.datasets, backend.services.jobs\n"
        "backend.main.create_app\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'sipat', 'torchvision'))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
