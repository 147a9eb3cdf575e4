"""`backend.services.study_defaults`: a new study's left-out counts fit its stimulus set (API and form)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.models import Stimulus
from backend.services.study_defaults import fit_defaults, image_count
from backend.storage import BlobStore
from backend.study.config import StudyConfig
from tests.backend.factories import make_dataset, make_stimulus_set


def test_left_out_counts_fit_the_set_and_given_ones_are_kept(session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=6))
    assert image_count(session, sset) == 6
    fitted = fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id))
    assert fitted.n_main == 6 and fitted.n_catch == 4  # the set has catch stimuli: the default stays
    given = fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id, n_main=30))
    assert given.n_main == 30  # explicit: kept (check_ready reports it)
    few = fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id, n_main=3))
    assert few.n_main == 3


def test_no_catch_stimuli_means_no_catch_trials_by_default(session: Session, storage: BlobStore) -> None:
    sset = make_stimulus_set(session, storage, make_dataset(session, storage, n_images=4))
    session.query(Stimulus).filter(Stimulus.stimulus_set_id == sset.id, Stimulus.role == "catch").delete()
    session.flush()
    assert fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id)).n_catch == 0
    assert fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id, n_catch=2)).n_catch == 2


def test_a_set_being_made_counts_its_planned_images(session: Session, storage: BlobStore) -> None:
    dataset = make_dataset(session, storage, n_images=9)
    sset = make_stimulus_set(session, storage, dataset, status="generating", with_stimuli=False)
    sset.params = {"split": "test", "n_images": 5}
    session.flush()
    assert image_count(session, sset) == 5
    assert fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id)).n_main == 5
    sset.status = "failed"
    assert image_count(session, sset) == 0
    assert fit_defaults(session, sset, StudyConfig(stimulus_set_id=sset.id)).n_main == 40  # nothing to fit to
