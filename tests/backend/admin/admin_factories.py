"""Helpers of the dashboard tests: logging in through the form, a fake enqueuer, painted masks, and a study
with participants, answers and masks written straight to the database (so the numbers are known)."""

from __future__ import annotations

import io
import re
import secrets
from dataclasses import dataclass, field

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from backend.models import Annotation, Job, Participant, Study, Trial
from backend.storage import BlobStore
from backend.study.schedule import CATCH_EPS
from tests.backend.factories import make_dataset, make_stimulus_set, make_study
from tests.backend.research_factories import add_participant, answer_trials, stimulus_at

PASSWORD = "correct horse"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "the page has no form with a csrf_token"
    return match.group(1)


def log_in(client: TestClient, email: str = "ada@example.org", password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/admin/login")
    r = client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text), "next": "/admin"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/admin").text)


@dataclass
class Enqueued:
    """The jobs the pages sent to the queue (the broker is not needed)."""

    sent: list[int] = field(default_factory=list)

    def __call__(self, job: Job) -> str:
        self.sent.append(job.id)
        return f"message-{job.id}"


def mask_png(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """A grayscale mask with the rectangle box = (x0, y0, x1, y1) painted (255), exclusive ends."""
    a = np.zeros((height, width), dtype=np.uint8)
    x0, y0, x1, y1 = box
    a[y0:y1, x0:x1] = 255
    out = io.BytesIO()
    PILImage.fromarray(a, "L").save(out, format="PNG")
    return out.getvalue()


def paint(
    session: Session, storage: BlobStore, participant: Participant, stimulus_set_id: int, box: tuple[int, int, int, int]
) -> Annotation:
    """An annotation trial of `participant` on the first clean stimulus of the set, with `box` painted."""
    stimulus = stimulus_at(session, stimulus_set_id, 0.0)
    width, height = stimulus.image.width, stimulus.image.height
    position = len(participant.trials) + 100
    trial = Trial(
        participant_id=participant.id,
        position=position,
        phase="annotate",
        stimulus_id=stimulus.id,
        media_key=secrets.token_urlsafe(18),
    )
    session.add(trial)
    session.flush()
    annotation = Annotation(
        trial_id=trial.id,
        mask_sha256=storage.put(mask_png(width, height, box)),
        strokes=[[[0, 0], [1, 1]]],
        duration_ms=4000.0,
        width=width,
        height=height,
    )
    session.add(annotation)
    session.flush()
    return annotation


#: Main-phase answers of the seeded participants: (eps, judgment), 2/255 and 8/255 levels (factories.EPS_LEVELS).
ANSWERS: list[list[tuple[float, str]]] = [
    [(0.0, "clean"), (2 / 255, "clean"), (8 / 255, "perturbed"), (8 / 255, "perturbed")],
    [(0.0, "perturbed"), (2 / 255, "perturbed"), (8 / 255, "perturbed"), (2 / 255, "clean")],
    [(0.0, "clean"), (2 / 255, "clean"), (8 / 255, "clean"), (0.0, "clean")],
]


@dataclass
class Seeded:
    study: Study
    participants: list[Participant]
    annotations: list[Annotation]


def seed_study(session: Session, storage: BlobStore, *, slug: str = "pilot") -> Seeded:
    """A study whose 3 participants answered `ANSWERS` (the third missed both catch trials and is flagged) and
    painted the same image: columns 0-3, columns 2-3 (IoU of the two kept masks: 12 / 24 = 0.5), and columns
    4-7 (the flagged participant, left out of the mean and the agreement). Committed."""
    dataset = make_dataset(session, storage)
    sset = make_stimulus_set(session, storage, dataset)
    study = make_study(session, sset, slug=slug)
    people, masks = [], []
    for k, answers in enumerate(ANSWERS):
        p = add_participant(session, study, k, external_id=f"pid{k}")
        catch = "perturbed" if k < 2 else "clean"
        answer_trials(
            session,
            p,
            sset.id,
            [("main", eps, j) for eps, j in answers] + [("catch", CATCH_EPS, catch), ("catch", CATCH_EPS, catch)],
            rt_ms=400.0 + 100 * k,
            confidence=1 + k,
        )
        p.flagged = k == 2
        people.append(p)
    masks.append(paint(session, storage, people[0], sset.id, (0, 0, 4, 6)))
    masks.append(paint(session, storage, people[1], sset.id, (2, 0, 4, 6)))
    masks.append(paint(session, storage, people[2], sset.id, (4, 0, 8, 6)))
    session.commit()
    return Seeded(study, people, masks)
