"""The participant protocol: start (or resume) a session, walk its trials in order, store answers once.

Three modules, one per step, and the SQL statements they share:

| module | what |
|---|---|
| `enrolment` | `start_session` (schedule, participant index, simulated pilots), `get_study`, `study_config` |
| `progress` | `progress` (the current trial, one query), `mark_shown`, `finish`, `outcome` |
| `answers` | `submit_response`, `submit_annotation`: stored once, in order, concurrent repeats settled |
| `statements` | the prebuilt Core statements of the hot paths |

The names the routes use are re-exported here (`from backend.services import participants as svc`).
"""

from backend.services.participants.answers import MAX_STROKES_BYTES, submit_annotation, submit_response
from backend.services.participants.enrolment import (
    PREPARING_RETRY_AFTER_S,
    Enrolment,
    get_study,
    start_session,
    study_config,
)
from backend.services.participants.progress import (
    CurrentTrial,
    Outcome,
    Progress,
    finish,
    mark_shown,
    outcome,
    participant_by_token,
    progress,
    stimulus_size,
)

__all__ = [
    "MAX_STROKES_BYTES",
    "PREPARING_RETRY_AFTER_S",
    "CurrentTrial",
    "Enrolment",
    "Outcome",
    "Progress",
    "finish",
    "get_study",
    "mark_shown",
    "outcome",
    "participant_by_token",
    "progress",
    "start_session",
    "stimulus_size",
    "study_config",
    "submit_annotation",
    "submit_response",
]
