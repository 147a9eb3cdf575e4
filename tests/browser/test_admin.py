"""The researcher dashboard in headless Chromium against the real service: log in, create and open a study
from a stimulus set, let simulated participants take it (HTTP calls to the participant protocol), read the
detection curve and the annotation agreement, queue a SIP-AT job on the study's annotations and see the model
in the comparison once the job is done.

The train job runs for real, but in this test's process: `worker.runner.execute` is what the Celery task
calls, so the worker code and the job lifecycle are the real ones; only the broker hop is skipped (the
service sends the message to a SQLite broker of its own that nobody reads). Screenshots of each page go to
`test-artifacts/screenshots/admin/`.
"""

from __future__ import annotations

import base64
import io
import secrets
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select, update

from backend.auth import create_user
from backend.models import Image, Job, Stimulus, Study, TrainedModel, Trial
from backend.settings import Settings
from tests.browser import seed
from tests.browser.driver import PageWatch

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "researcher@example.org", "a long passphrase"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots" / "admin"
#: P(judged perturbed) of a simulated participant by eps (clean, the two seed levels, catch).
P_DETECT = {0.0: 0.15, seed.EPS_LEVELS[0]: 0.45, seed.EPS_LEVELS[1]: 0.9}
N_PARTICIPANTS = 8
INATTENTIVE = 7  # answers "clean" to every catch trial: flagged and left out


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue messages go to a broker file of this test (the service inherits the environment)."""
    monkeypatch.setenv("SIPAT_BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")


@pytest.fixture
def server_with_broker(own_broker: None, own_server: Any) -> Any:
    """A service of this test alone, started after `own_broker` set its broker."""
    return own_server


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def mask_png(width: int, height: int, dx: int) -> str:
    """Base64 PNG of a disc painted over the seed images' disc (centre 32 + dx, 30; radius 15)."""
    y, x = np.mgrid[0:height, 0:width]
    disc = ((x - 32 - dx) ** 2 + (y - 30) ** 2 < 15**2).astype(np.uint8) * 255
    out = io.BytesIO()
    PILImage.fromarray(disc, "L").save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def take_part(api: httpx.Client, server: Any, slug: str, k: int) -> None:
    """One simulated participant through the JSON protocol: judgments drawn from P_DETECT, one painting."""
    rng = np.random.default_rng(k)
    r = api.post(f"/api/v1/studies/{slug}/sessions", json={"consent": True, "external_id": f"sim-{k}"})
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    for _ in range(50):
        trial = api.get(f"/api/v1/sessions/{token}/next").json()
        if trial.get("done"):
            return
        base = f"/api/v1/sessions/{token}/trials/{trial['trial_id']}"
        if trial["question"] == "annotate":
            mask = mask_png(trial["mask_width"], trial["mask_height"], dx=2 * k - 7)
            body = {"mask_png": mask, "duration_ms": 3000.0 + 500 * k}
            assert api.post(f"{base}/annotation", json=body).status_code == 201
            continue
        with server.session() as s:
            query = select(Stimulus.eps, Trial.phase).join(Trial, Trial.stimulus_id == Stimulus.id)
            eps, phase = s.execute(query.where(Trial.id == trial["trial_id"])).one()
        if phase == "catch":  # the client is not told (it says "main"); the database knows
            perturbed = k != INATTENTIVE
        else:
            perturbed = rng.random() < P_DETECT[min(P_DETECT, key=lambda e: abs(e - eps))]
        body = {
            "judgment": "perturbed" if perturbed else "clean",
            "confidence": int(rng.integers(1, 5)),
            "rt_ms": abs(float(rng.normal(900 if perturbed else 1300, 200))) + 200,
        }
        assert api.post(f"{base}/response", json=body).status_code == 201
    raise AssertionError(f"participant {k} never finished")


def test_researcher_runs_the_loop(server_with_broker: Any, browser: Any) -> None:
    server = server_with_broker
    with server.session() as s:
        create_user(s, EMAIL, PASSWORD, is_admin=True)
        s.commit()
        seed.make_study(s, server.storage, slug="seeded", n_images=8)
        dataset_id = s.scalar(select(Image.dataset_id))
        # Half the images for training, half held out (the seed puts all of them in 'test').
        ids = sorted(s.scalars(select(Image.id)))
        s.execute(update(Image).where(Image.id.in_(ids[:4])).values(split="train"))
        s.commit()

    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    watch = PageWatch().attach(page)
    base = server.url

    # -- log in -----------------------------------------------------------------------------------------
    page.goto(f"{base}/admin/studies")
    assert page.url.startswith(f"{base}/admin/login")
    shot(page, "01-login")
    page.fill("#email", EMAIL)
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    assert "Wrong e-mail or password" in page.inner_text(".error-box")
    assert watch.errors == [
        "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    watch.errors.clear()  # the refused login's page comes with 401, as it should
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/studies")

    # -- a study from the stimulus set ------------------------------------------------------------------
    page.fill("#f-title", "Can you see the noise?")
    page.fill("#f-slug", "noise")
    page.fill("#f-main", "4")
    page.fill("#f-practice", "2")
    page.fill("#f-catch", "2")
    page.fill("#f-annotate", "1")
    page.fill("#f-seed", "11")
    page.click("form[action='/admin/studies'] button[type=submit]")
    page.wait_for_url("**/admin/studies/*?notice=created")
    study_url = page.url.split("?")[0]
    assert "draft" in page.inner_text("h1")
    page.click("form[action$='/open'] button")
    page.wait_for_url("**?notice=opened")
    assert "open" in page.inner_text("h1")
    assert page.input_value("#prolific-url").endswith(
        "/s/noise?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
    )

    # -- simulated participants --------------------------------------------------------------------------
    with httpx.Client(base_url=base, timeout=10) as api:
        for k in range(N_PARTICIPANTS):
            take_part(api, server, "noise", k)
    page.goto(study_url)
    assert f"{N_PARTICIPANTS} started · {N_PARTICIPANTS} completed · 1 flagged" in page.inner_text(".facts")
    shot(page, "04-study")

    # -- results: the detection curve --------------------------------------------------------------------
    page.click("a.button:has-text('Results')")
    page.wait_for_selector("#figure-detection svg")
    assert page.locator("#figure-detection svg circle").count() >= 2  # the two eps levels (and thresholds)
    assert page.locator("#figure-detection svg polyline").count() == 1  # the fitted curve
    assert "1 participant is excluded by the rules" in page.inner_text("main")
    assert "/255" in page.inner_text("#eps50")
    page.click("#figure-detection summary")
    rows = page.locator("#figure-detection table.data").first.locator("tbody tr")
    assert rows.count() == 3  # clean, 8/255, 32/255
    shot(page, "05-results")

    # -- annotations: agreement -------------------------------------------------------------------------
    page.goto(f"{study_url}/annotations")
    agreement = page.inner_text("#mean-iou")
    assert "mean pairwise IoU" in agreement
    iou = float(agreement.split("IoU ")[1].split()[0])
    assert 0.3 < iou < 1.0  # shifted discs overlap partly
    assert page.locator(".annotation-image img").count() >= 2
    shot(page, "06-annotations")

    # -- the other pages -------------------------------------------------------------------------------------
    page.goto(f"{base}/admin/datasets/{dataset_id}")
    page.wait_for_selector("img[src*='overlay.png?source=annotations']")
    shot(page, "02-dataset")
    page.goto(f"{base}/admin/stimulus-sets/1")
    page.wait_for_selector("img[src$='perturbation.png']")
    shot(page, "03-stimulus-set")
    page.goto(f"{base}/admin")
    shot(page, "00-overview")

    # -- training on the study's annotations ----------------------------------------------------------------
    page.goto(f"{base}/admin/training?study_id={study_url.rsplit('/', 1)[1]}")
    page.select_option("#t-dataset", str(dataset_id))
    page.select_option("#t-method", "sip_at")
    page.select_option("#t-arch", "small_cnn")
    page.fill("#t-epochs", "1")
    page.fill("#t-steps", "1")
    page.fill("#t-seed", "3")
    assert page.input_value("#t-salience") == "annotations"
    page.click("details.more summary")
    page.fill("#t-batch", "4")
    page.click("#t-recipe summary")
    page.fill("#t-eps-ramp", "0")  # the default 10-epoch ramp outlasts 1 epoch: the job would be refused
    page.fill("#t-eval", "0, 8/255, 32/255")
    page.fill("#t-eval-steps", "1")
    page.click("#train-form button[type=submit]")
    page.wait_for_url("**/admin/jobs/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    assert page.inner_text("[data-job-id] [data-field=status]") == "queued"
    shot(page, "07-job-queued")

    from worker.runner import execute  # torch: imported only now
    from worker.runtime import Runtime

    settings = Settings(
        database_url=server.database_url, data_dir=server.data_dir, secret_key=secrets.token_urlsafe(48)
    )
    runtime = Runtime.from_settings(settings, durable=False, device="cpu")
    try:
        outcome = execute(job_id, runtime=runtime)
    finally:
        runtime.close()
    with server.session() as s:
        job = s.get(Job, job_id)
        assert outcome.status == "succeeded", (job.error, job.traceback)
        model = s.scalar(select(TrainedModel).where(TrainedModel.job_id == job_id))
        assert model.metrics and model.metrics["salience"]["annotations"] >= 1
    # The page polls the job's progress and reloads itself when it is done.
    page.wait_for_selector(".badge.status-succeeded", timeout=15_000)
    assert "Traceback" not in page.inner_text("main")
    shot(page, "08-job-done")

    page.goto(f"{base}/admin/training")
    table = page.locator("#models table.data tbody tr").first
    cells = table.locator("td").all_inner_texts()
    assert cells[0] == str(model.id) and cells[2] == "sip_at" and cells[4] == "3" and cells[6] == "succeeded"
    assert page.locator("#models svg polyline").count() >= 1
    shot(page, "09-training")

    # -- FAB-T and Square on that model, queued from the training page (tiny budget; 2 classes: no APGD-T) ---
    page.select_option("#e-model", str(model.id))
    page.uncheck("input[name='attack:pgd']")
    page.uncheck("input[name='attack:apgd']")
    page.check("input[name='attack:fab-t']")
    page.check("input[name='attack:square']")
    page.fill("#e-eps", "0, 8/255")
    page.fill("#e-split", "")
    page.fill("#e-apgd", "2")
    page.fill("#e-square", "10")
    page.click("#evaluate-form button[type=submit]")
    page.wait_for_url("**/admin/jobs/*")
    eval_id = int(page.url.rsplit("/", 1)[1])
    runtime = Runtime.from_settings(settings, durable=False, device="cpu")
    try:
        assert execute(eval_id, runtime=runtime).status == "succeeded"
    finally:
        runtime.close()
    page.wait_for_selector(".badge.status-succeeded", timeout=15_000)
    columns = page.locator("#figure-evaluation table.data tbody tr td:first-child").all_inner_texts()
    assert columns == ["fab-t", "square"], columns
    assert page.locator("#figure-evaluation svg polyline").count() >= 1
    shot(page, "09b-evaluation")

    # -- withdrawal on request -----------------------------------------------------------------------------
    page.goto(study_url)
    page.locator("a:has-text('withdraw…')").first.click()
    assert "Delete this participant's data?" in page.inner_text("h1")
    shot(page, "10-withdraw")
    page.click("button.danger")
    page.wait_for_url("**?notice=withdrawn")
    with server.session() as s:
        assert s.scalar(select(Study).where(Study.slug == "noise")) is not None
    assert f"{N_PARTICIPANTS - 1} started" in page.inner_text(".facts")

    assert watch.errors == []
    context.close()
