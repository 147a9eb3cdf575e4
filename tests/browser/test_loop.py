"""The loop in one test: the demo study (as `make run` seeds it) completed in Chromium with three paintings,
then a SIP-AT job on the study's annotations through the REST API; its result names exactly the painted
training digits as having a human map, and the maps it trained with are the stored paintings' mean.

The jobs run in this test's process with `worker.runner.execute` (what the Celery task calls), as in
`test_admin.py`; the service's messages go to a broker file nobody reads.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from backend.auth import create_token, create_user
from backend.devserver import DEMO_SLUG, seed_demo
from backend.models import Image, Job, SalienceMap, Stimulus, StimulusSet, Study, Trial
from backend.services.exports import stroke_count
from backend.settings import Settings
from tests.browser import seed
from tests.browser.driver import answer_until, mask_array, mouse_stroke, position, stored

pytestmark = pytest.mark.browser

DIGIT = 28
#: Training params of the shortest run that still goes through every step (1 epoch, 1 PGD step).
TRAIN = {
    "method": "sip_at",
    "arch": "small_cnn",
    "salience": "annotations",
    "epochs": 1,
    "eps_ramp_epochs": 0,  # the API refuses a ramp as long as the run (the default is 10 epochs)
    "batch_size": 32,
    "lr": 0.02,
    "eps": 0.1,
    "alpha": 0.1,
    "steps": 1,
    "eval_eps": [0.0, 0.1],
    "eval_steps": 1,
}


@pytest.fixture
def server_with_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Any:
    """A service of this test alone whose queue messages go to a broker file of this test."""
    monkeypatch.setenv("SIPAT_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    return request.getfixturevalue("own_server")


def run_jobs(server: Any, job_ids: list[int]) -> None:
    from worker.runner import execute  # torch: imported only now
    from worker.runtime import Runtime

    settings = Settings(
        database_url=server.database_url, data_dir=server.data_dir, secret_key=secrets.token_urlsafe(48)
    )
    runtime = Runtime.from_settings(settings, durable=False, device="cpu")
    try:
        for job_id in job_ids:
            outcome = execute(job_id, runtime=runtime)
            with server.session() as s:
                job = s.get(Job, job_id)
                assert outcome.status == "succeeded", (job.kind, job.error, job.traceback)
    finally:
        runtime.close()


@pytest.mark.slow
def test_demo_paintings_reach_sip_at_training(server_with_broker: Any, browser: Any) -> None:
    server = server_with_broker
    with server.session() as s:
        assert seed_demo(s, server.storage)
        user = create_user(s, "researcher@example.org", "a long passphrase", is_admin=True)
        token = create_token(s, user, name="loop test")
        s.commit()
        demo_jobs = list(s.scalars(select(Job.id).order_by(Job.id)))  # the demo model, then its stimuli
        study_id = s.scalar(select(Study.id).where(Study.slug == DEMO_SLUG))
        dataset_id = s.scalar(select(StimulusSet.dataset_id))
    run_jobs(server, demo_jobs)

    # -- the demo, as a participant: three paintings, a different stroke on each ------------------------------
    strokes = iter([[(4, 6), (24, 6)], [(6, 4), (6, 24)], [(4, 22), (24, 22)]])
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.url}/s/{DEMO_SLUG}?PROLIFIC_PID=loop1&STUDY_ID=s&SESSION_ID=x")
    answer_until(  # always "perturbed" (F): right on the catch trials, so the participant is not flagged
        page,
        lambda name, _page: name == "done",
        paint=lambda p: mouse_stroke(p, next(strokes), DIGIT),
        judgment_key=lambda _pos: "f",
    )
    page.context.close()
    data = stored(server, "loop1")
    assert data["participant"]["completed"] and len(data["annotations"]) == 3
    with server.session() as s:
        painted: dict[int, list[np.ndarray]] = {}
        for trial_id, annotation in data["annotations"].items():
            image_id, split = s.execute(
                select(Image.id, Image.split)
                .join(Stimulus, Stimulus.image_id == Image.id)
                .join(Trial, Trial.stimulus_id == Stimulus.id)
                .where(Trial.id == trial_id)
            ).one()
            assert split == "train"  # the demo paints the digits training uses
            painted.setdefault(image_id, []).append(mask_array(server, annotation).astype(np.float64) / 255)
    assert all(m.max() > 0 for ms in painted.values() for m in ms)  # each painting holds its stroke

    # -- a SIP-AT job on the study's annotations, through REST ---------------------------------------------------
    params = {**TRAIN, "dataset_id": dataset_id, "study_id": study_id}
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as api:
        r = api.post("/api/v1/jobs", json={"kind": "train", "params": params})
        assert r.status_code == 202, r.text
        planned = r.json()["coverage"]
        assert planned["human_image_ids"] == sorted(painted) and planned["n_train"] == 240
        job_id = r.json()["id"]
        run_jobs(server, [job_id])
        result = api.get(f"/api/v1/jobs/{job_id}").json()["result"]
    coverage = result["metrics"]["coverage"]
    assert coverage["human"] == len(painted) > 0 and coverage["human_image_ids"] == sorted(painted)
    assert coverage["fallback_count"] == 240 - len(painted) and coverage["warning"]
    assert result["metrics"]["salience"] == {"annotations": len(painted), "none": 240 - len(painted)}

    # The maps it trained with (kept as `human_mean` salience maps, 8-bit) are the paintings' mean.
    with server.session() as s:
        maps = dict(
            s.execute(select(SalienceMap.image_id, SalienceMap.sha256).where(SalienceMap.source == "human_mean")).all()
        )
    assert set(maps) == set(painted)
    for image_id, masks in painted.items():
        with PILImage.open(io.BytesIO(server.storage.get(maps[image_id]))) as img:
            used = np.asarray(img.convert("L"), dtype=np.float64) / 255
        np.testing.assert_allclose(used, np.mean(masks, axis=0), atol=0.5 / 255)


def test_the_eraser_leaves_no_residue_and_strokes_are_counted(server: Any, slug: str, browser: Any) -> None:
    """Erasing a stroke along its own path clears it: the anti-aliased edge leaves no faint paint behind.
    And a reload in the middle shows the current trial again, which its `shown_count` records."""
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug)

    def paint(page: Any) -> None:
        mouse_stroke(page, [(10, 16), (54, 16)], seed.SIZE)  # kept
        mouse_stroke(page, [(10, 48), (54, 48)], seed.SIZE)  # erased below, along the same path
        page.keyboard.press("e")
        mouse_stroke(page, [(10, 48), (54, 48)], seed.SIZE)
        page.keyboard.press("b")

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=eraser&STUDY_ID=s&SESSION_ID=x")
    answer_until(page, lambda name, _page: name == "judgment" and position(_page) == 3)
    page.reload()  # shows trial 3 again: the data say so
    answer_until(page, lambda name, _page: name == "done", paint=paint)
    page.context.close()
    data = stored(server, "eraser")
    with server.session() as s:
        shown = dict(s.execute(select(Trial.position, Trial.shown_count).where(Trial.id.in_(data["responses"]))).all())
    assert shown[3] == 2 and {n for p, n in shown.items() if p != 3} == {1}, shown
    [annotation] = data["annotations"].values()
    mask = mask_array(server, annotation)
    assert mask[16, 20:44].min() == 255  # the kept stroke
    assert mask[36:, :].max() == 0, f"residue of the erased stroke: {np.count_nonzero(mask[36:, :])} pixels"
    assert [a["mode"] for a in annotation.strokes["actions"]] == ["paint", "paint", "erase"]
    assert stroke_count(annotation.strokes) == 3 and stroke_count([{"mode": "paint"}, {"mode": "clear"}]) == 1


def test_links_follow_the_port_the_server_runs_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chromium_path: str, browser: Any
) -> None:
    """Without SIPAT_PUBLIC_BASE_URL the dashboard's participant and Prolific links name the server's port."""
    from backend.migrate import upgrade
    from tests.browser.conftest import LiveServer

    url = f"sqlite:///{tmp_path / 'sipat.db'}"
    upgrade(url)
    server = LiveServer(url, tmp_path / "data", tmp_path / "uvicorn.log")
    monkeypatch.delenv("SIPAT_PUBLIC_BASE_URL", raising=False)
    monkeypatch.setenv("SIPAT_PORT", str(server.port))  # as `make run` passes it on
    try:
        server.start()
        with server.session() as s:
            create_user(s, "researcher@example.org", "a long passphrase", is_admin=True)
            s.commit()
            study_id = seed.make_study(s, server.storage, slug="port").id
        page = browser.new_context().new_page()
        page.goto(f"{server.url}/admin/login")
        page.fill("#email", "researcher@example.org")
        page.fill("#password", "a long passphrase")
        page.click("button[type=submit]")
        page.wait_for_url("**/admin**")
        page.goto(f"{server.url}/admin/studies/{study_id}")
        assert server.port != 8000
        assert page.input_value("#prolific-url").startswith(f"http://localhost:{server.port}/s/port?PROLIFIC_PID=")
        participant = page.input_value("#participant-url")
        assert participant == f"http://localhost:{server.port}/s/port"
        page.goto(participant)  # the link leads to the study on this server
        assert page.locator("#study-config").count() == 1
        page.context.close()
    finally:
        server.close()


def test_touch_devices_are_told_to_tap_not_to_press_keys(server: Any, slug: str, browser: Any) -> None:
    with server.session() as s:
        seed.make_study(s, server.storage, slug=slug)
    phone = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
    for options, expected, absent in ((phone, "Tap the left button", "F"), ({}, "or the left button", "Tap")):
        context = browser.new_context(**options)
        page = context.new_page()
        page.goto(f"{server.url}/s/{slug}?PROLIFIC_PID=touch{len(options)}&STUDY_ID=s&SESSION_ID=x")
        answer_until(page, lambda name, _page: name == "instructions")
        keys = page.locator("ul.keys").inner_text()
        assert expected in keys and absent not in keys.split(), keys
        context.close()
