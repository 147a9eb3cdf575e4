"""Issue 18's study-design controls in a real browser: focus and visibility losses counted per trial, the
device pixel ratio recorded and stimuli drawn at whole device pixels, the study's inter-trial interval and
backward mask followed, fullscreen asked for (and exits counted), and the card calibration stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from backend.api.simulation import simulate_grant
from backend.models import Participant, Study
from tests.browser import seed
from tests.browser.conftest import TEST_SECRET
from tests.browser.driver import answer_until, position, stored, wait_screen

pytestmark = pytest.mark.browser


#: Two blurs and one hidden page, dispatched as the browser would (the page cannot tell them apart).
LOSE_ATTENTION = """() => {
  window.dispatchEvent(new Event("blur"));
  window.dispatchEvent(new Event("blur"));
  Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
  document.dispatchEvent(new Event("visibilitychange"));
  delete document.visibilityState;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def _responses_by_position(data: dict[str, Any]) -> dict[int, Any]:
    return {pos: data["responses"][tid] for tid, pos, _ in data["trials"] if tid in data["responses"]}


def test_focus_losses_and_the_device_pixel_ratio_are_recorded(
    server: Any, slug: str, new_page: Any, shots: Any
) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_annotate=0)
    page, watch = new_page(device_scale_factor=2)
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-focus")
    lost: list[int] = []

    def on_screen(name: str, page: Any) -> None:
        if name == "judgment" and position(page) == 3 and not lost:
            page.evaluate(LOSE_ATTENTION)
            lost.append(3)

    answer_until(page, lambda name, _: name == "done", on_screen=on_screen)
    shots(page, "done")
    data = stored(server, "pid-focus")
    assert data["participant"]["client_info"]["device_pixel_ratio"] == 2
    by_position = _responses_by_position(data)
    assert len(by_position) == seed.TOTAL - 1 and lost == [3]
    for pos, response in by_position.items():
        expected = (2, 1, 0) if pos == 3 else (0, 0, 0)
        assert (response.focus_losses, response.visibility_losses, response.fullscreen_exits) == expected, pos
        times = response.client_timestamps
        n = times["device_px_per_image_px"]
        # whole device pixels: each 64-px image pixel is n x n device pixels, n a whole number >= 1
        assert times["device_pixel_ratio"] == 2 and n == int(n) and n >= 1
        assert times["display_width"] * 2 == seed.SIZE * n, times
    assert not watch.errors, watch.errors


def test_the_inter_trial_interval_and_the_backward_mask_are_followed(server: Any, slug: str, new_page: Any) -> None:
    iti_ms, duration_ms, mask_ms = 1200, 300, 250
    with server.session() as s:
        seed.make_study(
            s, server.storage, slug=slug, n_annotate=0, iti_ms=iti_ms, stimulus_duration_ms=duration_ms, mask_ms=mask_ms
        )
    page, watch = new_page()
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-iti")
    masks: list[int] = []

    def on_screen(name: str, page: Any) -> None:
        if name == "judgment":  # let the image, the mask and the blank come before answering
            page.wait_for_selector("canvas.stimulus-mask", state="attached", timeout=5000)
            masks.append(position(page))
            page.wait_for_selector(".stimulus-gone", state="attached", timeout=5000)

    answer_until(page, lambda name, _: name == "done", on_screen=on_screen)
    by_position = _responses_by_position(stored(server, "pid-iti"))
    assert sorted(masks) == sorted(by_position)
    for pos, response in by_position.items():
        times = response.client_timestamps
        assert times["iti_ms"] >= iti_ms, (pos, times)
        assert times["hidden"] - times["onset"] >= duration_ms - 20, times
        assert times["mask_off"] - times["mask_on"] >= mask_ms - 20, times
        previous = by_position.get(pos - 1)
        if previous is not None and pos - 1 >= seed.CONFIG["n_practice"]:  # no feedback screen in between
            assert times["onset"] - previous.client_timestamps["confidence"] >= iti_ms, pos
    assert not watch.errors, watch.errors


def test_fullscreen_is_asked_for_and_exits_are_counted(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_annotate=0, require_fullscreen=True)
    page, watch = new_page()
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-fs")
    asked: list[tuple[int, str]] = []

    def on_screen(name: str, page: Any) -> None:
        if name == "fullscreen":
            asked.append((position(page), page.locator("#fullscreen-heading").inner_text()))
            if len(asked) == 1:
                shots(page, "fullscreen")
        elif name == "judgment" and position(page) == 4 and page.evaluate("Boolean(document.fullscreenElement)"):
            page.evaluate("document.exitFullscreen()")
            page.wait_for_function("!document.fullscreenElement")

    answer_until(page, lambda name, _: name == "done", on_screen=on_screen)
    assert [heading for _, heading in asked] == ["Fullscreen", "Back to fullscreen, please"], asked
    assert [pos for pos, _ in asked] == [0, 5]  # before the first trial, and before the one after the exit
    by_position = _responses_by_position(stored(server, "pid-fs"))
    assert {pos: r.fullscreen_exits for pos, r in by_position.items() if r.fullscreen_exits} == {4: 1}
    assert not watch.errors, watch.errors


def test_card_calibration_stores_px_per_mm(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_annotate=0, card_calibration=True)
    page, watch = new_page()
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-card")

    def stop(name: str, page: Any) -> bool:
        return name == "calibration"

    answer_until(page, stop)
    page.locator("#card-size").fill("428")
    assert page.locator("#card").bounding_box()["width"] == pytest.approx(428, abs=0.5)
    shots(page, "calibration")
    page.locator("#card-done").click()
    wait_screen(page, "instructions")
    assert stored(server, "pid-card")["participant"]["client_info"]["px_per_mm"] == pytest.approx(428 / 85.6)
    assert not watch.errors, watch.errors


def test_the_pilot_robot_gets_through_the_display_screens(server: Any, slug: str, new_page: Any) -> None:
    """Simulate mode on a study with every display setting: the robot's click is no user gesture, so the
    browser refuses fullscreen once and the session goes on (not asked again); the calibration keeps its
    default outline, and the blind-spot test gets the robot's presses."""
    with server.session() as s:
        seed.make_study(
            s,
            server.storage,
            slug=slug,
            n_annotate=0,
            require_fullscreen=True,
            card_calibration=True,
            viewing_distance=True,
            stimulus_duration_ms=200,
            mask_ms=100,
        )
    page, watch = new_page()
    page.goto(f"{server.url}/s/{slug}?simulate=1&grant={simulate_grant(TEST_SECRET, slug)}")
    wait_screen(page, "done", timeout=120_000)  # the blind-spot sweeps alone take about 30 s
    with server.session() as s:
        [participant] = s.scalars(select(Participant).join(Study).where(Study.slug == slug)).all()
        assert participant.simulated and participant.completed_at is not None
        assert participant.client_info["px_per_mm"] == pytest.approx(320 / 85.6, abs=1e-3)
        # The robot presses where someone 60 cm away loses the dot (simulate.js): at most a few frames late.
        assert 600 <= participant.client_info["viewing_distance_mm"] < 640
    responses = stored(server, participant.external_id)["responses"].values()
    assert len(responses) == seed.TOTAL - 1
    assert all(r.fullscreen_exits == 0 for r in responses)
    assert not watch.errors, watch.errors
