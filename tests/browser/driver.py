"""Driving the participant page with real input (keyboard, mouse, touch through CDP) and reading what it stored."""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from backend.models import Annotation, Participant, Response, Trial

SCREEN_TIMEOUT_MS = 15_000
#: Screens that wait for the participant; `answer_until` handles each of them.
INTERACTIVE = (
    "consent",
    "instructions",
    "resume",
    "phase-main",
    "phase-annotate",
    "judgment",
    "confidence",
    "feedback",
    "annotate",
    "questionnaire",
    "fullscreen",
    "calibration",
    "done",
)


@dataclass
class PageWatch:
    """Console errors, uncaught exceptions and CSP violations of a page (none are expected)."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> PageWatch:
        def console(msg: Any) -> None:
            if msg.type == "error" and "net::ERR_CONNECTION_REFUSED" not in msg.text:
                self.errors.append(f"console: {msg.text}")
            elif "Content Security Policy" in msg.text:
                self.errors.append(f"csp: {msg.text}")

        page.on("console", console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        return self


def screen(page: Any) -> str:
    return page.evaluate("document.body.dataset.screen || ''")


def wait_screen(page: Any, *names: str, timeout: float = SCREEN_TIMEOUT_MS) -> str:
    """Wait until <body data-screen> is one of `names`; returns it."""
    selector = ", ".join(f"body[data-screen='{n}']" for n in names)
    page.wait_for_selector(selector, state="attached", timeout=timeout)
    return screen(page)


def position(page: Any) -> int:
    return int(page.evaluate("document.body.dataset.trialPosition ?? '-1'"))


def canvas_box(page: Any) -> dict[str, float]:
    box = page.locator("canvas.paint-overlay").bounding_box()
    assert box is not None, "the painting canvas is not on the page"
    return box


def image_to_page(box: dict[str, float], x: float, y: float, size: int) -> tuple[float, float]:
    """Page (CSS) coordinates of image pixel (x, y) of an image `size` pixels wide shown in `box`."""
    return box["x"] + x * box["width"] / size, box["y"] + y * box["height"] / size


def mouse_stroke(page: Any, points: list[tuple[float, float]], size: int, steps: int = 6) -> None:
    """Drag the mouse through image points (image pixel coordinates) on the painting canvas."""
    box = canvas_box(page)
    page.mouse.move(*image_to_page(box, *points[0], size))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*image_to_page(box, *point, size), steps=steps)
    page.mouse.up()


def touch_stroke(page: Any, cdp: Any, points: list[tuple[float, float]], size: int, steps: int = 8) -> None:
    """A one-finger drag through image points, as touch events (CDP Input.dispatchTouchEvent)."""
    box = canvas_box(page)
    coords = [image_to_page(box, *p, size) for p in points]

    def touch(kind: str, x: float, y: float) -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y}]})

    touch("touchStart", *coords[0])
    for (x0, y0), (x1, y1) in itertools.pairwise(coords):
        for k in range(1, steps + 1):
            touch("touchMove", x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps)
    # The finger rests before it lifts, as people do; lifting in full motion starts a fling, and Chromium
    # swallows the next tap that lands while a fling runs.
    time.sleep(0.15)
    touch("touchMove", *coords[-1])
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def answer_until(
    page: Any,
    stop: Callable[[str, Any], bool],
    *,
    paint: Callable[[Any], None] | None = None,
    on_screen: Callable[[str, Any], None] | None = None,
    judgment_key: Callable[[int], str] = lambda pos: "f" if pos % 2 == 0 else "j",
) -> str:
    """Answer every screen with the keyboard (the painting with `paint`) until `stop(screen, page)` is true."""
    while True:
        name = wait_screen(page, *INTERACTIVE)
        if on_screen:
            on_screen(name, page)
        if stop(name, page):
            return name
        pos = position(page)
        if name == "consent":
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.id") == "consent-agree"
            page.keyboard.press("Enter")
        elif name in ("instructions", "resume", "phase-main", "phase-annotate", "feedback"):
            page.keyboard.press("Space")
        elif name in ("fullscreen", "calibration"):  # a click: fullscreen needs a user gesture
            page.locator("main button.primary").click()
        elif name == "judgment":
            page.keyboard.press(judgment_key(pos))
        elif name == "confidence":
            page.keyboard.press(str(1 + pos % 4))
        elif name == "annotate":
            assert paint is not None, "an annotation trial came but the test gave no painting"
            paint(page)
            page.locator("button.done").click()
        elif name == "done":
            raise AssertionError("the session ended before the stop condition")
        # The next screen replaces this one: wait until the marker changes (the same screen may come again).
        page.wait_for_function(
            "([name, pos]) => document.body.dataset.screen !== name || document.body.dataset.trialPosition !== pos",
            arg=[name, str(pos)],
            timeout=SCREEN_TIMEOUT_MS,
        )


def stored(server: Any, external_id: str) -> dict[str, Any]:
    """The participant of `external_id` with its trials, responses and annotations, from the database."""
    with server.session() as s:
        participant = s.scalar(select(Participant).where(Participant.external_id == external_id))
        assert participant is not None, f"no participant {external_id!r} in the database"
        trials = s.scalars(select(Trial).where(Trial.participant_id == participant.id).order_by(Trial.position)).all()
        ids = [t.id for t in trials]
        responses = s.scalars(select(Response).where(Response.trial_id.in_(ids))).all()
        annotations = s.scalars(select(Annotation).where(Annotation.trial_id.in_(ids))).all()
        return {
            "participant": {
                "client_info": participant.client_info,
                "recruitment": participant.recruitment,
                "completed": participant.completed_at is not None,
                "completion_code": participant.completion_code,
            },
            "trials": [(t.id, t.position, t.phase) for t in trials],
            "responses": {r.trial_id: r for r in responses},
            "annotations": {a.trial_id: a for a in annotations},
        }


def mask_array(server: Any, annotation: Annotation) -> np.ndarray:
    """The stored mask (grayscale, 255 = painted) as a (height, width) uint8 array."""
    with PILImage.open(io.BytesIO(server.storage.get(annotation.mask_sha256))) as img:
        return np.asarray(img.convert("L"))
