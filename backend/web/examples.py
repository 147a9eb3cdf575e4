"""The example pair of the instructions: one source image, clean and at the study's largest eps.

Which image: one of the stimulus set that this participant never meets in a trial, when there is one (so the
example teaches without giving away an answer); otherwise the image of the participant's last practice trial
(practice has feedback and is not scored). The pair is labelled on the page, so nothing here is secret; it is
still served without caching, like every stimulus.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.models import Participant, Stimulus, Trial
from backend.services.errors import NotFoundError
from backend.services.participants import study_config

Which = Literal["clean", "perturbed"]


def example_stimulus(session: Session, participant: Participant, which: Which) -> Stimulus:
    """The clean (eps 0) or most perturbed trial stimulus of the participant's example image; 404 if none."""
    set_id = study_config(participant.study).stimulus_set_id
    trials = session.execute(
        select(Trial.phase, Trial.position, Stimulus.image_id)
        .join(Stimulus, Stimulus.id == Trial.stimulus_id)
        .where(Trial.participant_id == participant.id)
        .order_by(Trial.position)
    ).all()
    seen = {image_id for _, _, image_id in trials}
    candidates = session.scalars(
        select(Stimulus.image_id)
        .where(Stimulus.stimulus_set_id == set_id, Stimulus.role == "trial", Stimulus.eps > 0)
        .distinct()
        .order_by(Stimulus.image_id)
    ).all()
    unseen = [image_id for image_id in candidates if image_id not in seen]
    practice = [image_id for phase, _, image_id in trials if phase == "practice" and image_id in candidates]
    fallback = practice[-1:] or list(candidates[:1])
    shown = unseen or fallback
    if not shown:
        raise NotFoundError("this study has no perturbed images to show as an example")
    image_id = shown[0]
    query = select(Stimulus).where(
        Stimulus.stimulus_set_id == set_id, Stimulus.role == "trial", Stimulus.image_id == image_id
    )
    query = query.order_by(Stimulus.eps.desc()) if which == "perturbed" else query.where(Stimulus.eps == 0)
    stimulus = session.scalars(query.limit(1)).first()
    if stimulus is None:
        raise NotFoundError(f"no {which} example image in this study")
    return stimulus
