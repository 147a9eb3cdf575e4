"""Each participant's display in physical units: viewing distance and stimulus size in degrees of visual angle.

The page records the stimulus's CSS size per trial (`client_timestamps.display_width` / `display_height`, which
can differ between trials when the window is resized or images differ in size) and, at enrolment, the card's
CSS px per mm and the blind-spot viewing distance (`client_info.px_per_mm`, `viewing_distance_mm`, checked by
`backend.schemas.participant.ClientInfo`). Degrees follow from `backend.study.visual_angle`; without both
calibrations they are None (a stimulus's size in mm alone needs only `px_per_mm`).

Per participant, the size is that of their mean displayed detection stimulus (main and catch trials); per trial
(the responses export) it is that trial's own.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from backend.models import Participant, Response, Trial
from backend.study.visual_angle import size_deg

#: The export columns this module fills (participants: all; responses: the two per-trial degrees).
PARTICIPANT_DISPLAY_COLUMNS = ("viewing_distance_mm", "stimulus_width_deg", "stimulus_height_deg")
TRIAL_DISPLAY_COLUMNS = ("stimulus_width_deg", "stimulus_height_deg")
DETECTION_PHASES = ("main", "catch")


def mean_display_sizes(study_id: int) -> Any:
    """A subquery: per participant of the study (`pid`), the mean CSS width and height (`width`, `height`) of
    their detection stimuli as the page recorded them."""
    width = Response.client_timestamps["display_width"].as_float()
    height = Response.client_timestamps["display_height"].as_float()
    query: Select[Any] = (
        select(Trial.participant_id.label("pid"), func.avg(width).label("width"), func.avg(height).label("height"))
        .join(Trial, Trial.id == Response.trial_id)
        .join(Participant, Participant.id == Trial.participant_id)
        .where(Participant.study_id == study_id, Trial.phase.in_(DETECTION_PHASES))
        .group_by(Trial.participant_id)
    )
    return query.subquery("display_sizes")


def _number(value: Any) -> float | None:
    """A finite positive number from stored JSON, else None (older rows, other clients)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def degrees(client_info: dict[str, Any] | None, width_px: Any, height_px: Any) -> tuple[float | None, float | None]:
    """(width, height) in degrees of visual angle (to 0.001) of a stimulus shown `width_px` x `height_px` CSS px
    to a participant with `client_info`; None where a calibration or the size is missing."""
    info = client_info or {}
    px_per_mm, distance = _number(info.get("px_per_mm")), _number(info.get("viewing_distance_mm"))
    if px_per_mm is None or distance is None:
        return None, None
    width, height = _number(width_px), _number(height_px)
    return (
        round(size_deg(width, px_per_mm, distance), 3) if width is not None else None,
        round(size_deg(height, px_per_mm, distance), 3) if height is not None else None,
    )


def participant_display(client_info: dict[str, Any] | None, width_px: Any, height_px: Any) -> dict[str, Any]:
    """The participants export's display columns of one participant (their mean stimulus size)."""
    width_deg, height_deg = degrees(client_info, width_px, height_px)
    return {
        "viewing_distance_mm": _number((client_info or {}).get("viewing_distance_mm")),
        "stimulus_width_deg": width_deg,
        "stimulus_height_deg": height_deg,
    }


def trial_display(client_info: dict[str, Any] | None, client_timestamps: dict[str, Any] | None) -> dict[str, Any]:
    """The responses export's per-trial degrees, from the trial's recorded display size."""
    times = client_timestamps or {}
    width_deg, height_deg = degrees(client_info, times.get("display_width"), times.get("display_height"))
    return {"stimulus_width_deg": width_deg, "stimulus_height_deg": height_deg}


def display_summary(session: Session, study_id: int) -> dict[str, Any]:
    """The results page's display card: per real participant their device pixel ratio, px per mm, viewing
    distance and mean stimulus size in degrees (`rows`), and the medians over those who have each value."""
    sizes = mean_display_sizes(study_id)
    result = session.execute(
        select(Participant.index, Participant.client_info, sizes.c.width, sizes.c.height)
        .outerjoin(sizes, sizes.c.pid == Participant.id)
        .where(Participant.study_id == study_id, Participant.simulated.is_(False))
        .order_by(Participant.index)
    )
    rows = []
    for index, info, width, height in result:
        display = participant_display(info, width, height)
        rows.append(
            {
                "participant_index": index,
                "device_pixel_ratio": _number((info or {}).get("device_pixel_ratio")),
                "px_per_mm": _number((info or {}).get("px_per_mm")),
                **display,
                "stimulus_width_px": round(width, 1) if width is not None else None,
            }
        )

    def med(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(median(values), 3) if values else None

    return {
        "rows": rows,
        "n_with_distance": sum(1 for r in rows if r["viewing_distance_mm"] is not None),
        "median_distance_mm": med("viewing_distance_mm"),
        "median_width_deg": med("stimulus_width_deg"),
        "median_height_deg": med("stimulus_height_deg"),
    }
