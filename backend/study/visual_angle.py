"""Degrees of visual angle from the virtual chinrest (Li, Joo, Yeatman & Reinecke 2020, Sci Rep 10:904).

Two measurements, both made by the study page before the session (`static/js/trials/display.js`):

* the card calibration: CSS px per mm (`px_per_mm`), from an outline matched to a credit card (85.60 mm);
* the blind-spot test: the participant covers the right eye, fixates a square with the left eye and presses a
  key when a dot moving leftwards from the square disappears into the blind spot. The blind spot sits about
  13.5 degrees temporal of fixation (the paper's average), so the viewing distance is
  `offset_mm / tan(13.5 deg)`, `offset_mm` the square-to-dot distance at the key press (CSS px / px_per_mm),
  averaged over `SWEEPS` sweeps.

A stimulus of `size_mm` seen from `distance_mm` covers `2 * atan(size_mm / (2 * distance_mm))`.

The server recomputes the distance from the sweeps (`check_blind_spot`) instead of trusting the page's number,
and refuses numbers no real participant produces (`DISTANCE_RANGE_MM`, `OFFSET_RANGE_PX`), so an export never
holds a degree value built on nonsense.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Angle between fixation and the centre of the blind spot (degrees), as in Li et al. 2020.
BLIND_SPOT_DEG = 13.5
#: Sweeps of the blind-spot test whose offsets are averaged.
SWEEPS = 5
#: Plausible viewing distances (mm): closer than 20 cm or further than 1.5 m is a failed test, not a desk.
DISTANCE_RANGE_MM = (200.0, 1500.0)
#: One sweep's square-to-dot offset (CSS px): beyond this no screen has room.
OFFSET_RANGE_PX = (1.0, 20_000.0)
#: The page's distance may differ from the one recomputed here by rounding only (mm).
DISTANCE_TOLERANCE_MM = 1.0


def viewing_distance_mm(offsets_px: Sequence[float], px_per_mm: float) -> float:
    """Viewing distance (mm) from the blind-spot offsets (CSS px, one per sweep) and the card's px per mm."""
    if not offsets_px:
        raise ValueError("the blind-spot test needs at least one sweep's offset")
    if px_per_mm <= 0:
        raise ValueError(f"px_per_mm must be positive; got {px_per_mm}")
    offset_mm = sum(offsets_px) / len(offsets_px) / px_per_mm
    return offset_mm / math.tan(math.radians(BLIND_SPOT_DEG))


def visual_angle_deg(size_mm: float, distance_mm: float) -> float:
    """The angle (degrees) that an extent of `size_mm`, centred on the line of sight, covers at `distance_mm`."""
    if distance_mm <= 0:
        raise ValueError(f"distance_mm must be positive; got {distance_mm}")
    return math.degrees(2.0 * math.atan(size_mm / (2.0 * distance_mm)))


def size_deg(size_css_px: float, px_per_mm: float, distance_mm: float) -> float:
    """A stimulus's extent in degrees from its CSS size on the page (what the trial records as display_width)."""
    return visual_angle_deg(size_css_px / px_per_mm, distance_mm)


def check_blind_spot(offsets_px: Sequence[float], px_per_mm: float | None, claimed_mm: float | None) -> float:
    """The viewing distance (mm, to 0.1) the sweeps give; ValueError saying what to fix when the numbers are
    implausible, the card calibration is missing, or `claimed_mm` (the page's own result) disagrees."""
    if px_per_mm is None:
        raise ValueError("blind_spot_px needs px_per_mm: the offsets are converted to mm with the card calibration")
    if len(offsets_px) != SWEEPS:
        raise ValueError(f"blind_spot_px must hold the {SWEEPS} sweeps' offsets; got {len(offsets_px)}")
    low, high = OFFSET_RANGE_PX
    bad = [x for x in offsets_px if not (math.isfinite(x) and low <= x <= high)]
    if bad:
        raise ValueError(f"each blind-spot offset must be {low:g}..{high:g} CSS px; got {bad[0]}")
    distance = viewing_distance_mm(offsets_px, px_per_mm)
    near, far = DISTANCE_RANGE_MM
    if not near <= distance <= far:
        raise ValueError(
            f"the blind-spot offsets give a viewing distance of {distance:.0f} mm, outside {near:.0f}..{far:.0f} mm; "
            "repeat the test (or send no distance)"
        )
    if claimed_mm is not None and abs(claimed_mm - distance) > DISTANCE_TOLERANCE_MM:
        raise ValueError(
            f"viewing_distance_mm {claimed_mm} differs from the {distance:.1f} mm the blind-spot offsets give "
            f"(offset / px_per_mm / tan({BLIND_SPOT_DEG} deg), averaged)"
        )
    return round(distance, 1)
