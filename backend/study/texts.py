"""What the participant reads about the study's length, computed from the study's own trials.

The consent text used to say "about 15 minutes" whatever the study: a 5-trial pilot and a 200-trial study
promised the same. A text may now hold `{minutes}`; the participant sees it replaced by `estimated_minutes`
(the default consent text does). Only that placeholder is replaced (no `str.format`: a researcher's text may
hold other braces).

The per-trial seconds are deliberately generous guesses of a careful participant, not measurements: a
promise that runs short costs goodwill (and on Prolific, "time-out" returns), one that runs long costs little.
"""

from __future__ import annotations

import math

from backend.study.config import StudyConfig

MINUTES_PLACEHOLDER = "{minutes}"
#: Consent, instructions with the example pair, the end screen.
FIXED_S = 90.0
#: One detection trial after the image: the clean/perturbed answer and the confidence rating (the inter-trial
#: interval and the backward mask, `iti_ms` and `mask_ms`, are added as configured).
ANSWER_S = 5.0
#: How long an image is looked at when the study does not time it (`stimulus_duration_ms` null).
UNTIMED_VIEW_S = 2.0
#: The right/wrong feedback after a practice trial.
FEEDBACK_S = 2.0
#: Painting the salient regions of one image (a few strokes, maybe an erase).
ANNOTATE_S = 30.0


def estimated_seconds(config: StudyConfig) -> float:
    """Expected duration of one session of `config`, in seconds (see the module docstring for the parts)."""
    view_s = UNTIMED_VIEW_S if config.stimulus_duration_ms is None else config.stimulus_duration_ms / 1000
    detection_s = view_s + ANSWER_S + (config.iti_ms + (config.mask_ms or 0)) / 1000
    return (
        FIXED_S
        + config.n_practice * (detection_s + FEEDBACK_S)
        + (config.n_main + config.n_catch) * detection_s
        + config.n_annotate * ANNOTATE_S
    )


def estimated_minutes(config: StudyConfig) -> int:
    """`estimated_seconds` rounded up to whole minutes (at least 1): what the participant is told."""
    return max(1, math.ceil(estimated_seconds(config) / 60))


def participant_text(text: str, config: StudyConfig) -> str:
    """`text` (a consent text or instructions of `config`) with `{minutes}` replaced by the estimate."""
    if MINUTES_PLACEHOLDER not in text:
        return text
    return text.replace(MINUTES_PLACEHOLDER, str(estimated_minutes(config)))
