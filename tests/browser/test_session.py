"""The participant page in headless Chromium against the real service: whole sessions with real keyboard,
mouse and touch input, a reload in the middle, a server outage in the middle; what the database holds after.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from backend.api.simulation import simulate_grant
from backend.models import Participant, Study, Trial
from tests.browser import seed
from tests.browser.conftest import TEST_SECRET
from tests.browser.driver import (
    answer_until,
    mask_array,
    mouse_stroke,
    position,
    screen,
    stored,
    touch_stroke,
    wait_screen,
)

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "has_touch": True, "is_mobile": True}
REDIRECT = "https://platform.example/complete?cc={completion_code}"


def study_url(server: Any, slug: str, pid: str) -> str:
    return f"{server.url}/s/{slug}?PROLIFIC_PID={pid}&STUDY_ID=study1&SESSION_ID=sess1"


def paint_strokes(page: Any) -> None:
    """Two strokes with the mouse, undo the second, erase the left end of the first (image coordinates, 64 px)."""
    mouse_stroke(page, [(14, 16), (44, 16)], seed.SIZE)  # kept: a band around y = 16
    mouse_stroke(page, [(10, 52), (50, 52)], seed.SIZE)  # undone below
    page.keyboard.press("Control+z")
    page.keyboard.press("e")
    mouse_stroke(page, [(12, 16), (18, 16)], seed.SIZE)  # erased: x < ~22 of the band
    page.keyboard.press("b")


def test_whole_session_by_keyboard(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, redirect_url=REDIRECT)
    page, watch = new_page()
    page.context.route("https://platform.example/**", lambda route: route.fulfill(body="back on the platform"))
    seen: set[str] = set()

    def snapshot(name: str, page: Any) -> None:
        if name not in seen:
            seen.add(name)
            shots(page, name)

    started = time.monotonic()
    page.goto(study_url(server, slug, "pid-keyboard"))

    def paint(page: Any) -> None:
        paint_strokes(page)
        shots(page, "annotate-painted")

    answer_until(page, lambda name, _: name == "done", paint=paint, on_screen=snapshot)
    code = page.locator("#completion-code").inner_text()
    assert seen >= {
        "consent",
        "instructions",
        "judgment",
        "confidence",
        "feedback",
        "phase-main",
        "phase-annotate",
        "annotate",
        "done",
    }
    # Every trial's lifecycle is gone: only the page's own and the completion screen's remain.
    assert sorted(life["name"] for life in page.evaluate("sipatDebug.openLifecycles()")) == ["app", "completion"]
    assert page.evaluate("sipatDebug.pending()") == 0

    # The redirect to the recruiting platform, with the code, by keyboard.
    page.get_by_role("link", name="Return to the study platform now").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"https://platform.example/complete?cc={code}")
    elapsed_ms = (time.monotonic() - started) * 1000

    data = stored(server, "pid-keyboard")
    assert data["participant"]["completed"] and data["participant"]["completion_code"] == code
    assert data["participant"]["recruitment"] == {
        "PROLIFIC_PID": "pid-keyboard",
        "STUDY_ID": "study1",
        "SESSION_ID": "sess1",
    }
    client = data["participant"]["client_info"]
    assert client["screen_width"] > 0 and client["viewport_width"] == 1280 and client["device_pixel_ratio"] == 1
    assert 20 <= client["refresh_rate_hz"] <= 500 and "Chrome" in client["user_agent"]
    assert len(data["trials"]) == seed.TOTAL
    detection = [(tid, pos, phase) for tid, pos, phase in data["trials"] if phase != "annotate"]
    assert set(data["responses"]) == {tid for tid, _, _ in detection}
    for tid, pos, _ in detection:
        r = data["responses"][tid]
        assert 0 < r.rt_ms < elapsed_ms
        assert r.judgment == ("f" if pos % 2 == 0 else "j").replace("f", "perturbed").replace("j", "clean")
        assert r.confidence == 1 + pos % 4
        ts = r.client_timestamps
        assert ts["answer_input"] == "key" and ts["answer"] - ts["onset"] == pytest.approx(r.rt_ms, abs=0.01)
        assert ts["image_width"] == seed.SIZE and ts["display_width"] >= seed.SIZE

    # The mask: painted where the stroke went, nothing where the undone stroke or the eraser went.
    [(annotation_trial, _, _)] = [t for t in data["trials"] if t[2] == "annotate"]
    annotation = data["annotations"][annotation_trial]
    assert (annotation.width, annotation.height) == (seed.SIZE, seed.SIZE) and annotation.duration_ms > 0
    mask = mask_array(server, annotation)
    painted = np.argwhere(mask >= 128)  # (y, x)
    assert len(painted) > 40
    ys, xs = painted[:, 0], painted[:, 1]
    brush_radius = 32 / (annotation.strokes["display_width"] / seed.SIZE) / 2
    assert ys.min() >= 16 - brush_radius - 1.5 and ys.max() <= 16 + brush_radius + 1.5
    assert xs.max() <= 44 + brush_radius + 1.5
    assert xs.min() >= 18, "the eraser stroke over x = 12..18 should have removed the band's left end"
    assert mask[16, 30] == 255 and mask[16, 40] == 255
    assert mask[40:, :].max() == 0, "the undone stroke at y = 52 must not be in the mask"
    actions = annotation.strokes["actions"]
    assert [a["mode"] for a in actions] == ["paint", "erase"]
    assert actions[0]["points"][0][:2] == pytest.approx([14, 16], abs=0.6)
    assert actions[0]["points"][-1][:2] == pytest.approx([44, 16], abs=0.6)
    assert actions[0]["pointer"] == "mouse" and annotation.strokes["counts"]["undo"] == 1
    assert not watch.errors, watch.errors


def test_reload_resumes_at_the_first_unanswered_trial(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, stimulus_duration_ms=250)
    page, watch = new_page()
    page.goto(study_url(server, slug, "pid-reload"))
    # Answer the two practice trials and the first main trial; stop when trial 3 is on screen.
    answer_until(page, lambda name, p: name == "judgment" and position(p) == 3, paint=None)
    assert len(stored(server, "pid-reload")["responses"]) == 3

    page.reload()
    assert wait_screen(page, "resume") == "resume"
    shots(page, "resume")
    assert "trial 4 of 8" in page.locator("main").inner_text()
    assert page.locator("#progress").get_attribute("aria-valuenow") == "3"
    page.keyboard.press("Space")
    wait_screen(page, "judgment")
    assert position(page) == 3
    # stimulus_duration_ms: the image goes after 250 ms; the answer is still taken.
    page.wait_for_selector(".stimulus-gone", timeout=2_000)
    assert page.locator("img.stimulus").count() == 0
    answer_until(page, lambda name, p: name == "judgment" and position(p) == 4)

    # Trial 4 is answered while its request cannot get through; a reload sends it before asking what is next.
    page.route("**/response", lambda route: route.abort("connectionrefused"))
    page.keyboard.press("f")
    wait_screen(page, "confidence")
    page.keyboard.press("1")
    page.wait_for_selector("#status:not([hidden])", timeout=10_000)
    assert page.evaluate("sipatDebug.pending()") == 1
    page.unroute("**/response")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.accept()))
    page.reload()
    wait_screen(page, "resume")
    assert dialogs == ["beforeunload"], "leaving with an unsent answer should ask first"
    assert "trial 6 of 8" in page.locator("main").inner_text()

    answer_until(page, lambda name, _: name == "done", paint=lambda p: mouse_stroke(p, [(20, 20), (40, 40)], seed.SIZE))
    data = stored(server, "pid-reload")
    assert data["participant"]["completed"]
    assert len(data["responses"]) + len(data["annotations"]) == seed.TOTAL
    by_position = {pos: data["responses"].get(tid) for tid, pos, _ in data["trials"]}
    assert (by_position[4].judgment, by_position[4].confidence) == ("perturbed", 1)
    hidden = by_position[3].client_timestamps
    assert hidden["hidden"] - hidden["onset"] == pytest.approx(250, abs=60)
    assert not watch.errors, watch.errors


def test_server_outage_loses_nothing(own_server: Any, slug: str, new_page: Any, shots: Any) -> None:
    server = own_server
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug)
    page, watch = new_page()
    page.goto(study_url(server, slug, "pid-outage"))
    answer_until(page, lambda name, p: name == "judgment" and position(p) == 4)

    server.stop()
    page.keyboard.press("f")
    wait_screen(page, "confidence")
    page.keyboard.press("2")
    page.wait_for_selector("#status:not([hidden])", timeout=10_000)
    assert "your answers are kept in this browser" in page.locator("#status").inner_text()
    shots(page, "outage")
    assert page.evaluate("sipatDebug.pending()") == 1
    stored_key = page.evaluate("Object.keys(localStorage).find((k) => k.startsWith('sipat:'))")
    assert '"trial_id"' in page.evaluate(f"localStorage.getItem('{stored_key}')")
    time.sleep(3)
    assert screen(page) == "saving" and page.evaluate("sipatDebug.pending()") == 1

    server.start()
    wait_screen(page, "judgment", timeout=20_000)
    assert position(page) == 5
    assert page.locator("#status").is_hidden()
    answer_until(page, lambda name, _: name == "done", paint=lambda p: mouse_stroke(p, [(20, 20), (40, 40)], seed.SIZE))

    data = stored(server, "pid-outage")
    position_4 = next(tid for tid, pos, _ in data["trials"] if pos == 4)
    assert data["responses"][position_4].judgment == "perturbed" and data["responses"][position_4].confidence == 2
    assert data["participant"]["completed"]
    assert len(data["responses"]) + len(data["annotations"]) == seed.TOTAL
    assert not watch.errors, watch.errors


def test_phone_touch_session_paints_a_mask(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_practice=0, n_main=1, n_catch=0, n_annotate=1)
    page, watch = new_page(**PHONE)
    cdp = page.context.new_cdp_session(page)
    page.goto(study_url(server, slug, "pid-phone"))

    wait_screen(page, "consent")
    shots(page, "consent")
    page.locator("#consent-agree").tap()
    wait_screen(page, "instructions")
    shots(page, "instructions")
    page.get_by_role("button", name="Start").tap()
    wait_screen(page, "judgment")
    shots(page, "judgment")
    _check_fits(page, "img.stimulus")
    for name in ("Perturbed (key F)", "Clean (key J)"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["height"] >= 48 and box["width"] >= 120
    page.get_by_role("button", name="Clean (key J)").tap()
    wait_screen(page, "confidence")
    shots(page, "confidence")
    page.get_by_role("button", name="4: Certain (key 4)").tap()
    wait_screen(page, "phase-annotate")
    page.get_by_role("button", name="Start painting").tap()
    wait_screen(page, "annotate")
    _check_fits(page, "canvas.paint-overlay")
    touch_stroke(page, cdp, [(8, 40), (56, 40)], seed.SIZE)
    page.wait_for_selector("body[data-painted='true']")
    shots(page, "annotate")
    page.locator("button.done").tap()
    wait_screen(page, "done")
    shots(page, "done")

    data = stored(server, "pid-phone")
    assert data["participant"]["client_info"]["viewport_width"] == 390
    assert data["participant"]["client_info"]["device_pixel_ratio"] == 3
    [annotation] = data["annotations"].values()
    assert annotation.strokes["actions"][0]["pointer"] == "touch"
    mask = mask_array(server, annotation)
    ys, xs = np.nonzero(mask >= 128)
    radius = 32 / (annotation.strokes["display_width"] / seed.SIZE) / 2
    assert len(ys) > 40 and mask[40, 32] == 255
    assert ys.min() >= 40 - radius - 1.5 and ys.max() <= 40 + radius + 1.5
    assert xs.min() >= 8 - radius - 1.5 and xs.max() <= 56 + radius + 1.5
    assert not watch.errors, watch.errors


def test_declining_consent_stores_nothing(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug)
    page, watch = new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(study_url(server, slug, "pid-decline"))
    wait_screen(page, "consent")
    page.get_by_role("button", name="I do not agree").click()
    wait_screen(page, "declined")
    shots(page, "declined")
    assert not [u for u in requests if "/api/" in u]
    assert page.evaluate("Object.keys(localStorage).length") == 0
    with pytest.raises(AssertionError):
        stored(server, "pid-decline")
    assert not watch.errors, watch.errors


def _check_fits(page: Any, selector: str) -> None:
    """The element lies within the viewport's width and above its bottom."""
    box = page.locator(selector).bounding_box()
    viewport = page.viewport_size
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    assert box["y"] + box["height"] <= viewport["height"]


def test_simulate_mode_drives_the_page_to_the_end(server: Any, slug: str, new_page: Any) -> None:
    """On an open study simulate mode needs the dashboard's grant (`backend.api.simulation`); with it the robot
    runs the real page to the end and its session is marked simulated."""
    items = [{"id": "age", "kind": "age_range", "required": True}, {"id": "note", "kind": "free_text"}]
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, questionnaire=items)
    assert httpx.get(f"{server.url}/s/{slug}?simulate=1").status_code == 403
    page, watch = new_page()
    grant = simulate_grant(TEST_SECRET, slug)
    page.goto(f"{server.url}/s/{slug}?simulate=1&grant={grant}")
    wait_screen(page, "done", timeout=30_000)
    with server.session() as s:
        [participant] = s.scalars(select(Participant).join(Study).where(Study.slug == slug)).all()
        assert participant.external_id.startswith("simulated-") and participant.completed_at is not None
        assert participant.simulated is True
        assert participant.questionnaire is not None and participant.questionnaire["note"] == "simulated"
        answered = s.scalar(
            select(func.count())
            .select_from(Trial)
            .where(Trial.participant_id == participant.id)
            .where(Trial.response.has() | Trial.annotation.has())
        )
    assert answered == seed.TOTAL
    assert not watch.errors, watch.errors
