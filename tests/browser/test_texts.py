"""What a participant reads: the consent text's length estimate computed from the study's own trials, and the
styled page (the study pages' frame and stylesheet) for an address where no study is."""

from __future__ import annotations

from typing import Any

import pytest

from backend.study.config import StudyConfig
from backend.study.texts import estimated_minutes
from tests.browser import seed
from tests.browser.driver import PageWatch, wait_screen

pytestmark = pytest.mark.browser


def test_consent_says_how_long_this_study_takes(server: Any, slug: str, browser: Any) -> None:
    """Two studies of different length promise different durations, each the estimate of its own trials."""
    short, long = f"{slug}s", f"{slug}l"
    with server.session() as s:
        seed.make_study(s, server.storage, slug=short)  # 8 trials
        seed.make_study(s, server.storage, slug=long, n_images=6, n_main=6, n_annotate=8, stimulus_duration_ms=3000)
    context = browser.new_context()
    said = {}
    for study_slug in (short, long):
        page = context.new_page()
        watch = PageWatch().attach(page)
        page.goto(f"{server.url}/s/{study_slug}?PROLIFIC_PID=len{study_slug}")
        wait_screen(page, "consent")
        said[study_slug] = page.locator(".consent-text").inner_text()
        assert "{minutes}" not in said[study_slug] and watch.errors == []
    context.close()
    with server.session() as s:
        from backend.models import Study

        configs = {st.slug: StudyConfig.model_validate(st.config) for st in s.query(Study).filter(Study.slug.in_(said))}
    minutes = {k: estimated_minutes(c) for k, c in configs.items()}
    assert minutes[short] < minutes[long], minutes  # the estimate follows the trials
    for study_slug, text in said.items():
        assert f"takes about {minutes[study_slug]} minutes" in text, text


@pytest.mark.parametrize("path", ["/s/no-such-study", "/s/", "/s/" + "x" * 80, "/s/no-such-study/extra"])
def test_unknown_study_gets_the_styled_page(server: Any, slug: str, browser: Any, path: str, shots: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watch = PageWatch().attach(page)

    def frame() -> dict[str, str]:
        """The look of the text column and the page around it, as the browser computed it."""
        return page.evaluate(
            """() => {
              const text = document.querySelector('.screen-text'), bar = document.querySelector('.topbar');
              const cs = (el, p) => getComputedStyle(el).getPropertyValue(p);
              const box = text.getBoundingClientRect();
              return {bg: cs(document.body, 'background-color'), font: cs(document.body, 'font-family'),
                      bar: cs(bar, 'background-color'), width: cs(text, 'max-width'),
                      centred: String(Math.abs(box.left + box.width / 2 - innerWidth / 2) < 2)};
            }"""
        )

    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=frame")
    wait_screen(page, "consent")
    study_look = frame()
    response = page.goto(f"{server.url}{path}")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator("h1").inner_text() == "This study is not available"
    assert frame() == study_look and study_look["centred"] == "true"
    shots(page, "unknown")
    # Chromium logs the page's own 404 as a failed load; anything else (a stylesheet, a CSP violation) counts.
    assert [e for e in watch.errors if "status of 404" not in e] == [], watch.errors
    assert len(watch.errors) == 1
    context.close()
