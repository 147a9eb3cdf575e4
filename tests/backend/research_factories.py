"""Helpers of the research API tests: zips to upload, and participants with answered trials written straight
to the database (so result numbers can be set exactly)."""

from __future__ import annotations

import base64
import io
import secrets
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from backend.auth import token_hash
from backend.db import make_session_factory
from backend.models import Job, Participant, Response, Stimulus, Study, Trial
from tests.backend.factories import mask_png


def zip_bytes(members: dict[str, bytes | str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def blob_files(data_dir: Path) -> list[Path]:
    """Every file under the blob store (blobs and any leftover temporary file)."""
    root = data_dir / "blobs"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def add_participant(session: Session, study: Study, index: int, *, external_id: str | None = None) -> Participant:
    participant = Participant(
        study_id=study.id,
        token_hash=token_hash(secrets.token_urlsafe(24)),
        external_id=external_id,
        index=index,
        consent=True,
    )
    session.add(participant)
    session.flush()
    return participant


def stimulus_at(session: Session, stimulus_set_id: int, eps: float, *, role: str = "trial", nth: int = 0) -> Stimulus:
    """The `nth` stimulus (by image) of the set at `eps` and `role`."""
    rows = session.scalars(
        select(Stimulus)
        .where(Stimulus.stimulus_set_id == stimulus_set_id, Stimulus.role == role)
        .order_by(Stimulus.image_id, Stimulus.eps)
    ).all()
    matching = [s for s in rows if abs(s.eps - eps) < 1e-9]
    return matching[nth % len(matching)]


def answer_trials(
    session: Session,
    participant: Participant,
    stimulus_set_id: int,
    answers: list[tuple[str, float, str]],
    *,
    confidence: int = 3,
    rt_ms: float = 500.0,
) -> None:
    """Trials with responses: one per (phase, eps, judgment), at the next positions of `participant`."""
    start = len(session.scalars(select(Trial.id).where(Trial.participant_id == participant.id)).all())
    for k, (phase, eps, judgment) in enumerate(answers):
        role = "catch" if phase == "catch" else "trial"
        trial = Trial(
            participant_id=participant.id,
            position=start + k,
            phase=phase,
            stimulus_id=stimulus_at(session, stimulus_set_id, eps, role=role, nth=k).id,
            media_key=secrets.token_urlsafe(18),
        )
        session.add(trial)
        session.flush()
        session.add(Response(trial_id=trial.id, judgment=judgment, confidence=confidence, rt_ms=rt_ms))
    session.flush()


@dataclass
class FakeEnqueuer:
    """Records the jobs sent, and whether each was committed (visible to another connection) when sent."""

    engine: Engine
    sent: list[int] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)
    fail: bool = False

    def __call__(self, job: Job) -> str:
        with make_session_factory(self.engine)() as other:
            row = other.get(Job, job.id)
            self.committed.append(row is not None and row.status == "queued")
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append(job.id)
        return f"message-{job.id}"


def start_session(client: Any, slug: str, external_id: str | None = None) -> Any:
    """POST a participant session of study `slug` (the participant protocol)."""
    body: dict[str, Any] = {"consent": True}
    if external_id is not None:
        body["external_id"] = external_id
    return client.post(f"/api/v1/studies/{slug}/sessions", json=body)


def finish_session(client: Any, token: str, *, judgment: str = "perturbed", mask_fill: int = 255) -> int:
    """Answer every trial of a session through the participant protocol; returns the number answered."""
    answered = 0
    while True:
        trial = client.get(f"/api/v1/sessions/{token}/next").json()
        if trial["done"]:
            return answered
        base = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}"
        if trial["question"] == "annotate":
            mask = base64.b64encode(mask_png(trial["mask_width"], trial["mask_height"], fill=mask_fill)).decode()
            body: dict[str, Any] = {"mask_png": mask, "strokes": [[[0, 0], [3, 5]], [[1, 1]]], "duration_ms": 1500}
            r = client.post(f"{base}/annotation", json=body)
        else:
            body = {"judgment": judgment, "confidence": 3, "rt_ms": 640.0, "client_timestamps": {"onset": 1.5}}
            r = client.post(f"{base}/response", json=body)
        assert r.status_code == 201, r.text
        answered += 1
