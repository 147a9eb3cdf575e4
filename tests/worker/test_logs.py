"""The worker's `SIPAT_LOG_FORMAT`: Celery's handlers get the JSON formatter only when it says json."""

from __future__ import annotations

import io
import json
import logging

import pytest

from backend.logjson import JsonFormatter
from backend.settings import get_settings
from worker.app import _json_logs


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_celery_loggers_write_json_when_asked(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPAT_LOG_FORMAT", fmt)
    monkeypatch.setenv("SIPAT_SECRET_KEY", "k" * 40)
    get_settings.cache_clear()
    logger = logging.getLogger(f"test.worker.{fmt}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        _json_logs(logger=logger)
        logger.warning("job 7 of /sessions/abcdef123/next")
    finally:
        logger.removeHandler(handler)
        get_settings.cache_clear()
    if fmt == "json":
        assert isinstance(handler.formatter, JsonFormatter)
        assert json.loads(stream.getvalue())["message"] == "job 7 of /sessions/[redacted]/next"
    else:
        assert handler.formatter is None and stream.getvalue() == "job 7 of /sessions/abcdef123/next\n"
