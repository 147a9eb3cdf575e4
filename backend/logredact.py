"""Credentials out of the access log: participant tokens, media keys and recruitment ids are redacted.

A participant's session token is the credential of the protocol, and it sits in the URL path
(`/api/v1/sessions/<token>/next`); uvicorn's access log wrote it for every request, so anyone who could read
the logs (a log shipper, a shared server) could answer in any participant's name. Media keys (one per trial)
and example tokens are secrets of the same kind, and the recruitment ids of a study link
(`?PROLIFIC_PID=...`) are personal data. `redact_path` replaces them with a placeholder; the rest of the
line (method, route shape, status, client) stays for debugging.

`install()` puts `AccessLogRedactor` on the `uvicorn.access` logger (idempotent): a filter on the logger
itself, so it works whatever handlers the logging configuration attaches.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, urlencode

REDACTED = "[redacted]"

#: Path segments that are credentials: the segment after each of these path parts.
_SECRET_SEGMENTS = re.compile(r"(/sessions/|/media/|/example/)([^/?#\s\"'<>]+)")
#: Query parameters that carry credentials or recruitment ids.
SECRET_QUERY_KEYS = frozenset(
    {"prolific_pid", "study_id", "session_id", "workerid", "assignmentid", "hitid", "token", "csrf_token"}
)


def redact_path(path: str) -> str:
    """`path` (with its query string) with tokens, media keys and recruitment ids replaced by `REDACTED`."""
    base, sep, query = path.partition("?")
    base = _SECRET_SEGMENTS.sub(lambda m: m[1] + REDACTED, base)
    if not sep:
        return base
    pairs = parse_qsl(query, keep_blank_values=True)
    cleaned = [(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs]
    return f"{base}?{urlencode(cleaned, safe='[]')}"


class AccessLogRedactor(logging.Filter):
    """Rewrites the path argument of uvicorn's access records: `(client, method, path, http version, status)`."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


#: A bearer token or a `key=value` of a secret query parameter anywhere in a free text (an error message).
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_SECRET_PAIRS = re.compile(r"(?i)\b(" + "|".join(sorted(SECRET_QUERY_KEYS)) + r")=([^&\s\"']+)")


def redact_text(text: str) -> str:
    """`text` with the credentials `redact_path` knows, and bearer tokens, replaced wherever they stand (for
    whole log messages and tracebacks, not only the access log's path)."""
    text = _SECRET_SEGMENTS.sub(lambda m: m[1] + REDACTED, text)
    text = _SECRET_PAIRS.sub(lambda m: f"{m[1]}={REDACTED}", text)
    return _BEARER.sub(lambda m: m[1] + REDACTED, text)


def install(logger_name: str = "uvicorn.access") -> None:
    """Put the redacting filter on `logger_name` once."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, AccessLogRedactor) for f in logger.filters):
        logger.addFilter(AccessLogRedactor())
