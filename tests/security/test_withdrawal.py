"""Withdrawal deletes what was derived from the participant's masks: the `human_mean` salience map of an
image they annotated (the issue's probe found it byte-identical afterwards) is gone, rows and blob; the maps
of images they did not annotate stay."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.auth import create_token
from backend.models import Annotation, Image, Participant, SalienceMap, Stimulus, Trial
from backend.storage import BlobStore
from tests.backend.factories import make_open_study, make_user, mask_png
from tests.backend.research_factories import finish_session, start_session


def test_withdrawal_deletes_the_mean_maps_built_from_the_masks(
    client: TestClient, session: Session, storage: BlobStore
) -> None:
    study = make_open_study(session, storage)
    assert finish_session(client, start_session(client, "pilot", external_id="p-1").json()["token"]) > 0
    participant = session.scalar(select(Participant))
    annotated = set(
        session.scalars(
            select(Stimulus.image_id)
            .join(Trial, Trial.stimulus_id == Stimulus.id)
            .join(Annotation, Annotation.trial_id == Trial.id)
            .where(Trial.participant_id == participant.id)
        )
    )
    others = [i for i in session.scalars(select(Image.id)) if i not in annotated]
    assert annotated and others
    # What the training job stores: the mean of the annotators' masks, per image.
    derived = storage.put(mask_png(fill=200))
    untouched = storage.put(mask_png(fill=100))
    session.add_all(SalienceMap(image_id=i, source="human_mean", sha256=derived) for i in annotated)
    session.add(SalienceMap(image_id=others[0], source="human_mean", sha256=untouched))
    session.commit()

    admin_token = create_token(session, make_user(session, "boss@example.org", admin=True))
    session.commit()
    r = client.delete(
        f"/api/v1/studies/{study.id}/participants/{participant.id}",
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 200, r.text
    session.expire_all()
    left = session.execute(select(SalienceMap.image_id, SalienceMap.sha256)).all()
    assert left == [(others[0], untouched)]
    assert not storage.exists(derived) and storage.exists(untouched)
