"""The virtual chinrest and the MTurk ending in Chromium: the blind-spot test after the card (Space pressed as
the dot disappears, 5 sweeps; an implausible attempt is repeated) gives the viewing distance the service stores,
and an MTurk HIT's end page posts assignmentId and the completion code to MTurk's externalSubmit, which the
page's CSP (form-action) lets through."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

import pytest

from tests.browser import seed
from tests.browser.driver import answer_until, stored, wait_screen

pytestmark = pytest.mark.browser

TAN = math.tan(math.radians(13.5))
CARD_PX = 428  # the card outline's width: 428 / 85.6 = 5 CSS px per mm
PX_PER_MM = CARD_PX / 85.6
SANDBOX = "https://workersandbox.mturk.com"


def press_when(page: Any, sweep: int, offset_px: float) -> float:
    """Press Space in sweep `sweep` (0-based) in the first animation frame where the dot is at least `offset_px`
    CSS px from the square's centre; returns the square-to-dot distance on screen at the press (CSS px, from the
    elements' boxes).

    The press is dispatched from inside the page, in that frame: one sent from the test process lands a round
    trip later, and on a loaded 2-core machine that was seconds of dot travel (150 px a second here), which no
    fixed margin can bound. The page's keydown handler is the one a real key press reaches."""
    return float(
        page.evaluate(
            """([sweep, offset]) => new Promise((resolve, reject) => {
              const deadline = performance.now() + 15000;
              const poll = () => {
                const field = document.getElementById("blind-spot-field");
                const dot = document.getElementById("blind-spot-dot");
                const moving = field && dot && !dot.hidden;
                if (moving && Number(field.dataset.sweeps || 0) === sweep && Number(field.dataset.offset) >= offset) {
                  const d = dot.getBoundingClientRect();
                  const s = document.getElementById("blind-spot-square").getBoundingClientRect();
                  const gap = s.left + s.width / 2 - (d.left + d.width / 2);
                  window.dispatchEvent(new KeyboardEvent("keydown", { key: " ", bubbles: true, cancelable: true }));
                  resolve(gap);
                } else if (performance.now() > deadline) {
                  reject(new Error(`sweep ${sweep}: the dot never reached ${offset} px`));
                } else {
                  requestAnimationFrame(poll);
                }
              };
              requestAnimationFrame(poll);
            })""",
            [sweep, offset_px],
        )
    )


def test_blind_spot_sweeps_give_the_viewing_distance(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_annotate=0, card_calibration=True, viewing_distance=True)
    page, watch = new_page()
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-chin")
    answer_until(page, lambda name, _: name == "calibration")
    page.locator("#card-size").fill(str(CARD_PX))
    page.locator("#card-done").click()

    # First attempt: Space pressed right away each sweep, as if the dot vanished at once: 30-odd px is a few
    # cm of viewing distance, so the page asks again instead of sending it.
    wait_screen(page, "blind-spot")
    page.locator("#blind-spot-start").click()
    for sweep in range(5):
        press_when(page, sweep, 1)
    page.wait_for_selector("#blind-spot-heading:text('Once more, please')", timeout=10_000)

    # Second attempt: pressed when the dot is where someone 30 cm away loses it.
    target = 300 * TAN * PX_PER_MM  # 72 mm = 360 CSS px
    shots(page, "blind-spot")
    page.locator("#blind-spot-start").click()
    geometry = [press_when(page, sweep, target) for sweep in range(5)]
    wait_screen(page, "instructions")

    info = stored(server, "pid-chin")["participant"]["client_info"]
    offsets = info["blind_spot_px"]
    assert info["px_per_mm"] == pytest.approx(PX_PER_MM)
    assert len(offsets) == 5 and all(target <= x < target + 200 for x in offsets), offsets
    # The dot moved leftwards from the square: on screen it sat about the recorded offset away at each press.
    assert all(g >= target - 1 for g in geometry), geometry
    expected = sum(offsets) / 5 / PX_PER_MM / TAN
    assert info["viewing_distance_mm"] == pytest.approx(expected, abs=0.06)
    assert 300 <= info["viewing_distance_mm"] < 300 + 200 / PX_PER_MM / TAN
    assert not watch.errors, watch.errors


def test_mturk_end_page_posts_the_external_submit_form(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_annotate=0, mturk=True, completion_code="DONE7")
    page, watch = new_page()
    posted: list[Any] = []

    def mturk(route: Any) -> None:
        posted.append(route.request)
        route.fulfill(body="submitted to MTurk", content_type="text/plain")

    page.context.route(f"{SANDBOX}/**", mturk)
    page.goto(f"{server.url}/s/{slug}?assignmentId=ASSIGN1&hitId=HIT1&workerId=WORKER1&turkSubmitTo={SANDBOX}")
    answer_until(page, lambda name, _: name == "done")
    shots(page, "mturk-done")
    form = page.locator("form#mturk-submit")
    assert form.get_attribute("action") == f"{SANDBOX}/mturk/externalSubmit"
    assert form.get_attribute("method") == "post"
    fields = page.eval_on_selector_all("form#mturk-submit input[type=hidden]", "els => els.map(e => [e.name, e.value])")
    assert fields == [["assignmentId", "ASSIGN1"], ["completion_code", "DONE7"]]
    page.locator("#mturk-submit-button").click()
    page.wait_for_url(f"{SANDBOX}/mturk/externalSubmit")
    assert len(posted) == 1 and posted[0].method == "POST"
    assert parse_qs(posted[0].post_data) == {"assignmentId": ["ASSIGN1"], "completion_code": ["DONE7"]}
    data = stored(server, "WORKER1")
    assert data["participant"]["completed"] and data["participant"]["recruitment"]["assignmentId"] == "ASSIGN1"
    assert not watch.errors, watch.errors  # a form-action violation would be reported here
