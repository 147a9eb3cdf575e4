"""The virtual chinrest's geometry (`backend.study.visual_angle`) and the check of the page's numbers."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from backend.schemas.participant import ClientInfo
from backend.study.visual_angle import (
    BLIND_SPOT_DEG,
    check_blind_spot,
    size_deg,
    viewing_distance_mm,
    visual_angle_deg,
)

TAN = math.tan(math.radians(13.5))


def sweeps_for(distance_mm: float, px_per_mm: float, jitter: tuple[float, ...] = (-4, -2, 0, 2, 4)) -> list[float]:
    """Five offsets (CSS px) around the blind spot of someone at `distance_mm`, symmetric so their mean is exact."""
    centre = distance_mm * TAN * px_per_mm
    return [centre + j for j in jitter]


def test_distance_is_the_mean_offset_over_tan_13_5_degrees() -> None:
    assert BLIND_SPOT_DEG == 13.5
    # 4 px/mm, offsets averaging 600 px = 150 mm: 150 / tan(13.5 deg) = 624.79 mm.
    assert viewing_distance_mm([590, 595, 600, 605, 610], 4.0) == pytest.approx(150 / TAN, rel=1e-12)
    assert pytest.approx(624.79, abs=0.01) == 150 / TAN
    # A participant at 500 mm on a 96-dpi screen (3.7795 CSS px per mm) is recovered exactly.
    assert viewing_distance_mm(sweeps_for(500, 3.7795), 3.7795) == pytest.approx(500, abs=1e-9)
    # The same physical offset at twice the pixel density is twice the pixels, and the same distance.
    assert viewing_distance_mm(sweeps_for(700, 7.559), 7.559) == pytest.approx(700)


def test_visual_angle_of_known_sizes() -> None:
    # The classic rule of thumb: 1 cm at 57.3 cm is about 1 degree.
    assert visual_angle_deg(10, 572.96) == pytest.approx(1.0, abs=1e-4)
    # An object as wide as the distance (half-width / distance = 1/2): 2 * atan(0.5) = 53.13 degrees.
    assert visual_angle_deg(500, 500) == pytest.approx(53.1301, abs=1e-4)
    # 2 * d * tan(theta / 2) inverted, for several angles.
    for theta in (0.5, 5, 13.5, 40):
        size = 2 * 600 * math.tan(math.radians(theta / 2))
        assert visual_angle_deg(size, 600) == pytest.approx(theta, abs=1e-9)
    # CSS px through the card's px per mm: a 224 px stimulus at 4 px/mm = 56 mm; at 600 mm that is 5.34 deg.
    assert size_deg(224, 4.0, 600) == pytest.approx(math.degrees(2 * math.atan(28 / 600)))
    assert size_deg(224, 4.0, 600) == pytest.approx(5.344, abs=1e-3)
    with pytest.raises(ValueError, match="distance_mm must be positive"):
        visual_angle_deg(10, 0)


def test_check_recomputes_and_refuses_what_no_participant_produces() -> None:
    assert check_blind_spot(sweeps_for(600, 4.0), 4.0, None) == pytest.approx(600, abs=0.05)
    assert check_blind_spot(sweeps_for(600, 4.0), 4.0, 600.4) == pytest.approx(600, abs=0.05)
    cases = [
        (sweeps_for(600, 4.0), None, None, "needs px_per_mm"),
        (sweeps_for(600, 4.0)[:4], 4.0, None, "must hold the 5 sweeps"),
        ([0.0, *sweeps_for(600, 4.0)[1:]], 4.0, None, "each blind-spot offset"),
        ([math.inf, *sweeps_for(600, 4.0)[1:]], 4.0, None, "each blind-spot offset"),
        (sweeps_for(120, 4.0, (0, 0, 0, 0, 0)), 4.0, None, "outside 200..1500 mm"),  # nose on the screen
        (sweeps_for(2500, 4.0), 4.0, None, "outside 200..1500 mm"),  # across the room
        (sweeps_for(600, 4.0), 4.0, 650.0, "differs from the 600.0 mm"),
    ]
    for offsets, px_per_mm, claimed, message in cases:
        with pytest.raises(ValueError, match=message):
            check_blind_spot(offsets, px_per_mm, claimed)


def test_client_info_keeps_the_service_s_distance_and_refuses_bad_numbers() -> None:
    info = ClientInfo(px_per_mm=4.0, blind_spot_px=sweeps_for(600, 4.0), viewing_distance_mm=600.3)
    assert info.viewing_distance_mm == pytest.approx(600.0, abs=0.05)
    # Without the page's own number the service still computes it.
    assert ClientInfo(px_per_mm=4.0, blind_spot_px=sweeps_for(800, 4.0)).viewing_distance_mm == pytest.approx(800)
    assert ClientInfo(px_per_mm=4.0).viewing_distance_mm is None
    for body, message in [
        ({"px_per_mm": 4.0, "viewing_distance_mm": 600}, "needs blind_spot_px"),
        ({"blind_spot_px": sweeps_for(600, 4.0)}, "needs px_per_mm"),
        ({"px_per_mm": 4.0, "blind_spot_px": [*sweeps_for(600, 4.0), 600.0]}, "at most 5 items"),
        ({"px_per_mm": 4.0, "blind_spot_px": sweeps_for(3000, 4.0)}, "outside 200..1500 mm"),
    ]:
        with pytest.raises(ValidationError, match=message):
            ClientInfo.model_validate(body)
