"""The ends of a session in the browser: the questionnaire after the trials (real clicks and typing), and
declining consent on a Prolific study (the 'no consent' code and the return link)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from backend.models import Participant
from tests.browser import seed
from tests.browser.driver import answer_until, stored, wait_screen

pytestmark = pytest.mark.browser

ITEMS = [
    {"id": "age", "kind": "age_range", "required": True},
    {"id": "vision", "kind": "vision_corrected"},
    {"id": "device", "kind": "device"},
    {"id": "comments", "kind": "free_text", "prompt": "Anything else?"},
]


def test_questionnaire_after_the_trials(server: Any, slug: str, new_page: Any, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, n_annotate=0, questionnaire=ITEMS)
    page, watch = new_page()
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-q&STUDY_ID=st&SESSION_ID=se")
    answer_until(page, lambda name, _: name == "questionnaire")
    shots(page, "questionnaire")
    assert page.locator("fieldset.q-item").count() == 3 and page.locator("textarea").count() == 1
    # A required item left blank: the form says so and nothing is sent.
    page.locator("#questionnaire-submit").click()
    assert "How old are you?" in page.locator("#questionnaire-error").inner_text()
    assert wait_screen(page, "questionnaire") == "questionnaire"
    page.get_by_label("25-34").check()
    page.get_by_label("Corrected to normal (glasses or contact lenses)").check()
    page.get_by_label("Desktop or laptop computer").check()
    page.get_by_label("Anything else?").fill("The images were small.")
    page.locator("#questionnaire-submit").click()
    wait_screen(page, "done")
    data = stored(server, "pid-q")
    assert data["participant"]["completed"]
    with server.session() as s:
        answers = s.scalar(select(Participant.questionnaire).where(Participant.external_id == "pid-q"))
    assert answers == {
        "age": "25-34",
        "vision": "Corrected to normal (glasses or contact lenses)",
        "device": "Desktop or laptop computer",
        "comments": "The images were small.",
    }
    # A reload after the questionnaire goes straight to the code.
    page.reload()
    wait_screen(page, "done")
    assert not watch.errors, watch.errors


def test_declined_consent_on_prolific_shows_and_returns_the_code(server: Any, slug: str, new_page: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug, prolific=True, completion_code="DONE1", declined_code="NOCONSENT")
    page, watch = new_page()
    page.context.route("https://app.prolific.com/**", lambda route: route.fulfill(body="back on Prolific"))
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=pid-no&STUDY_ID=st&SESSION_ID=se")
    wait_screen(page, "consent")
    page.get_by_role("button", name="I do not agree").click()
    wait_screen(page, "declined")
    assert page.locator("#declined-code").inner_text() == "NOCONSENT"
    page.locator("#declined-return").click()
    page.wait_for_url("https://app.prolific.com/submissions/complete?cc=NOCONSENT")
    with pytest.raises(AssertionError):
        stored(server, "pid-no")  # nothing was recorded
    assert not watch.errors, watch.errors
