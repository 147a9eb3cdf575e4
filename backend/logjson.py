"""JSON log lines (`SIPAT_LOG_FORMAT=json`) for the API (uvicorn) and the workers (Celery), credentials redacted.

One JSON object per line, for a log shipper to index without parsing free text: `ts` (UTC, ISO 8601),
`level`, `logger`, `message`, and where the record has them `exc` (the traceback), the access log's `client`,
`method`, `path`, `status`, and a Celery task's `task_id`/`task_name`. Every text goes through
`backend.logredact.redact_text` (participant tokens, media keys, recruitment ids, bearer tokens), on top of the
access log's own filter, so a token cannot reach the log through an exception message either.

`use_json()` puts the formatter on the handlers that uvicorn and Celery configured (and a stderr handler on the
root logger if it has none); `backend.main.create_app` calls it for the API, `worker.app` from Celery's
`after_setup_logger` signals for the worker. The text format stays the default.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from backend.logredact import redact_text

#: Loggers whose handlers get the JSON formatter: the root, uvicorn's (which do not propagate), Celery's.
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON, texts redacted (see the module docstring for the fields)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _version, status = record.args
            out.update(client=str(client), method=str(method), path=redact_text(str(path)), status=status)
        for key in ("task_id", "task_name"):
            value = getattr(record, key, None)
            if value and value != "???":
                out[key] = str(value)
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = redact_text(record.exc_text)
        return json.dumps(out, ensure_ascii=False, default=str)


def use_json(loggers: tuple[str, ...] = LOGGERS) -> None:
    """Give every handler of `loggers` the JSON formatter; a root logger without handlers gets one (stderr)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    formatter = JsonFormatter()
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


def json_on_logger(logger: logging.Logger) -> None:
    """The JSON formatter on the handlers of one logger (Celery's `after_setup_logger` hands it over)."""
    formatter = JsonFormatter()
    for handler in logger.handlers:
        handler.setFormatter(formatter)
