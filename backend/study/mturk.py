"""Amazon Mechanical Turk's ExternalQuestion conventions, in one place.

MTurk shows the study page in an iframe on one of two hosts and appends `assignmentId`, `hitId`, `workerId` and
`turkSubmitTo` to its URL. While a worker only previews the HIT, `assignmentId` is `ASSIGNMENT_ID_NOT_AVAILABLE`:
the page must describe the task but not start it. At the end the page must POST a form with `assignmentId` (and
at least one field of its own) to `<turkSubmitTo>/mturk/externalSubmit`.

`turkSubmitTo` comes from the URL, so anyone can craft a link with another value; a form posting there would
hand the completion code (and the worker to a page of the attacker's choosing) to an arbitrary site. So only the
two MTurk origins are accepted, compared as parsed origins, never as string prefixes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: The live marketplace and the sandbox (the only `turkSubmitTo` values MTurk sends).
MTURK_ORIGINS = ("https://www.mturk.com", "https://workersandbox.mturk.com")
#: The `assignmentId` of a HIT preview: the worker has not accepted the HIT.
PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
SUBMIT_PATH = "/mturk/externalSubmit"


def submit_origin(turk_submit_to: str) -> str:
    """The MTurk origin of `turk_submit_to` (ValueError, with what is accepted, for anything else).

    MTurk sends the bare origin (`https://workersandbox.mturk.com`); a trailing slash is tolerated, any other
    path, a query, credentials, a port or another scheme or host is refused."""
    value = turk_submit_to.strip()
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = -1
    origin = f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}"
    if (
        origin not in MTURK_ORIGINS
        or parts.username is not None
        or parts.password is not None
        or port is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"turkSubmitTo must be one of MTurk's hosts ({' or '.join(MTURK_ORIGINS)}), as MTurk itself sends it; "
            f"got {value[:200]!r}"
        )
    return origin


def submit_url(turk_submit_to: str) -> str:
    """Where the end page posts its form: `<MTurk origin>/mturk/externalSubmit` (ValueError as `submit_origin`)."""
    return submit_origin(turk_submit_to) + SUBMIT_PATH
