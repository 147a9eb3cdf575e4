"""`SIPAT_LOG_FORMAT=json`: one JSON object per line from a real uvicorn, with no credential in any of them."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path

import httpx
import pytest

from backend.logjson import JsonFormatter, use_json
from backend.logredact import REDACTED, redact_text
from tests.backend.fixtures import TEST_SECRET
from tests.netkit import free_port, serving, uvicorn_cmd

TOKEN = "tok_Zx81SECRETSECRET"


def test_redact_text_finds_credentials_anywhere_in_a_message() -> None:
    text = (
        f"GET /api/v1/sessions/{TOKEN}/next failed; retry /media/{TOKEN}x?PROLIFIC_PID=pid77&x=1 "
        f"with Authorization: Bearer {TOKEN}"
    )
    out = redact_text(text)
    assert TOKEN not in out and "pid77" not in out
    assert f"/sessions/{REDACTED}/next" in out and f"PROLIFIC_PID={REDACTED}&x=1" in out
    assert out.endswith(f"Bearer {REDACTED}")


def test_formatter_writes_access_fields_and_redacted_tracebacks() -> None:
    formatter = JsonFormatter()
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, "h.py", 1, '%s - "%s %s HTTP/%s" %d',
        ("10.0.0.1:5000", "POST", f"/api/v1/sessions/{TOKEN}/answers", "1.1", 200), None,
    )  # fmt: skip
    line = json.loads(formatter.format(access))
    assert line["logger"] == "uvicorn.access" and line["level"] == "INFO" and line["ts"].endswith("+00:00")
    assert line["method"] == "POST" and line["status"] == 200 and line["client"] == "10.0.0.1:5000"
    assert line["path"] == f"/api/v1/sessions/{REDACTED}/answers" and TOKEN not in json.dumps(line)
    try:
        raise ValueError(f"no session at /sessions/{TOKEN}, key=1&token={TOKEN}")
    except ValueError:
        failed = logging.LogRecord("backend", logging.ERROR, "h.py", 1, "failed: %s", (f"/media/{TOKEN}",), None)
        failed.exc_info = __import__("sys").exc_info()
    line = json.loads(formatter.format(failed))
    assert "ValueError: no session at /sessions/[redacted]" in line["exc"] and TOKEN not in json.dumps(line)
    assert line["message"] == f"failed: /media/{REDACTED}"


def test_use_json_formats_the_handlers_uvicorn_configured() -> None:
    logger = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        use_json()
        assert isinstance(handler.formatter, JsonFormatter)
        logger.warning("probe %s", f"/sessions/{TOKEN}")
        assert json.loads(stream.getvalue())["message"] == f"probe /sessions/{REDACTED}"
    finally:
        logger.removeHandler(handler)


def test_a_real_uvicorn_logs_json_lines_without_tokens(tmp_path: Path, sqlite_template: Path) -> None:
    db = tmp_path / "sipat.db"
    shutil.copyfile(sqlite_template, db)
    env = {
        **os.environ,
        "SIPAT_DATABASE_URL": f"sqlite:///{db}",
        "SIPAT_DATA_DIR": str(tmp_path / "data"),
        "SIPAT_SECRET_KEY": TEST_SECRET,
        "SIPAT_LOG_FORMAT": "json",
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    cmd = uvicorn_cmd("backend.main:create_app", port, extra=("--log-level", "info"))
    with serving(cmd, env=env, log=log, ready_url=f"{base}/api/v1/health/live"):
        assert httpx.get(f"{base}/api/v1/sessions/{TOKEN}/next").status_code in (401, 404)
        httpx.get(f"{base}/s/demo?PROLIFIC_PID=pid-secret-42&STUDY_ID=s1")
    text = log.read_text()
    assert TOKEN not in text and "pid-secret-42" not in text, text
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert any(line["path"] == f"/api/v1/sessions/{REDACTED}/next" for line in access), access
    assert any(line["logger"] == "uvicorn.error" and "Uvicorn running" in line["message"] for line in lines)


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    """use_json changes process-wide handlers: put the formatters back after each test."""
    saved = {n: [(h, h.formatter) for h in logging.getLogger(n).handlers] for n in ("", "uvicorn", "uvicorn.access")}
    yield None
    for pairs in saved.values():
        for handler, formatter in pairs:
            handler.setFormatter(formatter)
