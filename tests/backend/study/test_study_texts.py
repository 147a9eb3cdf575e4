"""`backend.study.texts`: the session length a participant is told, from the study's own trials."""

from __future__ import annotations

import pytest

from backend.study.config import DEFAULT_CONSENT_TEXT, StudyConfig
from backend.study.texts import (
    ANNOTATE_S,
    ANSWER_S,
    FEEDBACK_S,
    FIXED_S,
    UNTIMED_VIEW_S,
    estimated_minutes,
    estimated_seconds,
    participant_text,
)


def config(**fields: object) -> StudyConfig:
    return StudyConfig.model_validate({"stimulus_set_id": 1, **fields})


def test_estimate_adds_each_kind_of_trial() -> None:
    c = config(n_practice=2, n_main=10, n_catch=1, n_annotate=3)
    detection = UNTIMED_VIEW_S + ANSWER_S + 0.5  # the default inter-trial interval
    assert estimated_seconds(c) == FIXED_S + 2 * (detection + FEEDBACK_S) + 11 * detection + 3 * ANNOTATE_S
    timed = config(n_practice=2, n_main=10, n_catch=1, n_annotate=3, stimulus_duration_ms=4000)
    assert estimated_seconds(timed) - estimated_seconds(c) == pytest.approx(13 * (4.0 - UNTIMED_VIEW_S))
    masked = config(n_practice=2, n_main=10, n_catch=1, n_annotate=3, stimulus_duration_ms=4000, mask_ms=500)
    assert estimated_seconds(masked) - estimated_seconds(timed) == pytest.approx(13 * 0.5)
    slow = config(n_practice=2, n_main=10, n_catch=1, n_annotate=3, iti_ms=2500)
    assert estimated_seconds(slow) - estimated_seconds(c) == pytest.approx(13 * 2.0)


def test_minutes_round_up_and_grow_with_the_trials() -> None:
    assert estimated_minutes(config(n_main=1, n_practice=0, n_catch=0, n_annotate=0)) == 2  # 90 + 7.5 s -> 2 min
    defaults = config()
    assert estimated_minutes(defaults) == 11  # 90 + 4*9.5 + 44*7.5 + 5*30 = 608 s -> 10.1 min
    assert estimated_minutes(config(n_main=200)) > estimated_minutes(defaults)


def test_placeholder_is_replaced_and_other_braces_kept() -> None:
    c = config(n_main=20)
    minutes = estimated_minutes(c)
    assert f"takes about {minutes} minutes" in participant_text(DEFAULT_CONSENT_TEXT, c)
    assert participant_text("{a} {minutes} {b}", c) == f"{{a}} {minutes} {{b}}"
    assert participant_text("no estimate here {x}", c) == "no estimate here {x}"
