"""No participant token, media key or recruitment id in the access log (`backend.logredact`): the probe runs
the real server (uvicorn, access log on) and greps its log for the secrets it sent."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

import httpx

from backend.logredact import REDACTED, AccessLogRedactor, redact_path
from tests.netkit import free_port, serving, uvicorn_cmd


def test_paths_are_redacted() -> None:
    assert redact_path("/api/v1/sessions/AbC-123_x/next") == f"/api/v1/sessions/{REDACTED}/next"
    assert redact_path("/api/v1/sessions/tok/trials/7/response") == f"/api/v1/sessions/{REDACTED}/trials/7/response"
    assert redact_path("/api/v1/media/k3y") == f"/api/v1/media/{REDACTED}"
    assert redact_path("/s/pilot/example/tok/perturbed") == f"/s/pilot/example/{REDACTED}/perturbed"
    redacted = redact_path("/s/pilot?PROLIFIC_PID=5f0c&STUDY_ID=s1&lang=en")
    assert "5f0c" not in redacted and "s1" not in redacted and redacted.endswith("lang=en")
    assert redact_path("/api/v1/studies/3/export/responses.csv") == "/api/v1/studies/3/export/responses.csv"


def test_the_filter_rewrites_uvicorns_record() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/sessions/secret-token/next", "1.1", 200), None,
    )  # fmt: skip
    assert AccessLogRedactor().filter(record)
    assert "secret-token" not in record.getMessage() and REDACTED in record.getMessage()


def test_the_servers_access_log_holds_no_token(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "SIPAT_DATABASE_URL": f"sqlite:///{tmp_path / 'sipat.db'}",
        "SIPAT_DATA_DIR": str(tmp_path / "data"),
        "SIPAT_SECRET_KEY": "s" * 40,
    }
    token, pid, media = secrets.token_urlsafe(24), f"pid{secrets.token_hex(8)}", secrets.token_urlsafe(18)
    log = tmp_path / "server.log"
    cmd = uvicorn_cmd("backend.main:create_app", port, extra=("--log-level", "info", "--access-log"))
    with serving(cmd, env=env, log=log, ready_url=f"{base}/api/v1/health"):
        httpx.get(f"{base}/api/v1/sessions/{token}/next")
        httpx.post(f"{base}/api/v1/sessions/{token}/trials/1/response", json={})
        httpx.get(f"{base}/api/v1/media/{media}")
        httpx.get(f"{base}/s/pilot?PROLIFIC_PID={pid}")
    text = log.read_text()
    assert text.count(REDACTED) >= 4, text[-2000:]  # the requests were logged
    assert token not in text and pid not in text and media not in text
