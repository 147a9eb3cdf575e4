"""The active painting pool in the schedule (issue 20): ranked images first, in ranking order, those outside
the pool skipped, a seeded sample filling what they leave; the settings refuse bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.study.config import StudyConfig
from backend.study.schedule import build_schedule

IMAGES = list(range(1, 13))
POOL = list(range(100, 120))
CONFIG = StudyConfig(stimulus_set_id=1, n_main=4, n_practice=0, n_catch=0, n_annotate=3, seed=7)


def _painted(index: int, first: list[int] | None, config: StudyConfig = CONFIG) -> list[int]:
    specs = build_schedule(
        config,
        participant_index=index,
        image_ids=IMAGES,
        eps_levels=[0.0, 0.1],
        annotate_image_ids=POOL,
        annotate_first=first,
    )
    return [s.image_id for s in specs if s.phase == "annotate"]


def test_ranked_images_come_first_in_ranking_order_skipping_those_outside_the_pool() -> None:
    assert _painted(0, [117, 5, 103, 111, 104]) == [117, 103, 111]  # 5 is a detection image, not in the pool
    assert _painted(3, [117, 5, 103, 111, 104]) == [117, 103, 111]  # the ranking decides, not the participant


def test_a_short_ranking_is_filled_by_the_participants_seeded_sample() -> None:
    first = _painted(2, [108])
    assert first[0] == 108 and len(set(first)) == 3 and set(first) <= set(POOL)
    assert _painted(2, [108]) == first  # deterministic for (seed, participant)
    assert len({tuple(_painted(k, [108])) for k in range(8)}) > 1  # the fill differs between participants


def test_without_a_ranking_the_schedule_is_the_random_one() -> None:
    for index in range(4):
        assert _painted(index, None) == _painted(index, []) == _painted(index, [999])  # 999: no pool image
    assert len({tuple(_painted(k, None)) for k in range(8)}) > 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"painting_pool": "sometimes"}, "painting_pool"),
        ({"rerank_every": 0}, "rerank_every"),
        ({"rerank_every": -5}, "rerank_every"),
        ({"rerank_every": "often"}, "rerank_every"),
        ({"painting_pool": "active", "annotation_split": None}, "annotation_split"),
    ],
)
def test_bad_painting_settings_are_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        StudyConfig.model_validate({"stimulus_set_id": 1, **change})
    assert field in str(err.value)


def test_the_defaults_keep_todays_behaviour() -> None:
    config = StudyConfig(stimulus_set_id=1)
    assert config.painting_pool == "random" and config.rerank_every is None
    assert StudyConfig(stimulus_set_id=1, painting_pool="active", rerank_every=25).rerank_every == 25
