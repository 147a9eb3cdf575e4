"""The exactly-once check of acknowledged answers, shared by the fault tests and benchmarks/load/: every
answer a client got a 2xx for is stored once, with the values sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

from backend.auth import token_hash

#: (session token, trial id) -> what was acknowledged: ("response", judgment, confidence, rt_ms) or
#: ("annotation", duration_ms).
Acknowledged = dict[tuple[str, int], tuple[Any, ...]]


@dataclass
class Discrepancies:
    """Keys (sha256 of the token, trial id) of acknowledged answers not stored, stored more than once, or
    stored with other values."""

    lost: list[tuple[str, int]]
    duplicated: list[tuple[str, int]]
    altered: list[tuple[str, int]]


def stored_answers(engine: Engine) -> dict[tuple[str, int], list[tuple[Any, ...]]]:
    """Every stored answer by (sha256 of the session token, trial id): the database keeps only the hash."""
    stored: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for token, trial_id, judgment, confidence, rt in conn.execute(
            text(
                "SELECT p.token, r.trial_id, r.judgment, r.confidence, r.rt_ms FROM responses r "
                "JOIN trials t ON t.id = r.trial_id JOIN participants p ON p.id = t.participant_id"
            )
        ):
            stored.setdefault((token, trial_id), []).append(("response", judgment, confidence, rt))
        for token, trial_id, duration in conn.execute(
            text(
                "SELECT p.token, a.trial_id, a.duration_ms FROM annotations a "
                "JOIN trials t ON t.id = a.trial_id JOIN participants p ON p.id = t.participant_id"
            )
        ):
            stored.setdefault((token, trial_id), []).append(("annotation", duration))
    return stored


def discrepancies(engine: Engine, acknowledged: Acknowledged) -> Discrepancies:
    stored = stored_answers(engine)
    wanted = {(token_hash(token), trial_id): ack for (token, trial_id), ack in acknowledged.items()}
    return Discrepancies(
        lost=[key for key in wanted if key not in stored],
        duplicated=[key for key, rows in stored.items() if len(rows) > 1],
        altered=[key for key, ack in wanted.items() if key in stored and stored[key][0] != ack],
    )
