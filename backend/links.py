"""The service's absolute links (participant and Prolific links, export URLs), in one place.

They start with `Settings.public_base_url`: `SIPAT_PUBLIC_BASE_URL` when it is set (the address participants
reach, e.g. behind a proxy), else `http://localhost:<SIPAT_PORT>`, the address `make run` serves at, so a
server on port 8123 does not hand out links to port 8000.
"""

from __future__ import annotations

from backend.settings import Settings

#: Prolific's placeholders, filled in per participant by Prolific.
PROLIFIC_QUERY = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


def base_url(settings: Settings) -> str:
    """The origin of every absolute link, without a trailing slash."""
    return settings.public_base_url.rstrip("/")


def participant_url(settings: Settings, slug: str) -> str:
    """Where participants take part in study `slug`."""
    return f"{base_url(settings)}/s/{slug}"


def prolific_url(settings: Settings, slug: str) -> str:
    """The study link for Prolific, with its placeholders for the participant, study and session ids."""
    return f"{participant_url(settings, slug)}?{PROLIFIC_QUERY}"
