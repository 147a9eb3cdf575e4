"""backend.queue: the Celery configuration, sending by name after the commit, the reaper's re-enqueue.

Messages go to the real embedded broker (kombu's SQLAlchemy transport on a SQLite file) and are counted there.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from backend.db import session_scope
from backend.models import Job, utcnow
from backend.queue import ROUTES, TASK_NAMES, celery_config, enqueue, enqueue_on_commit, make_celery, reap_and_requeue
from backend.services.jobs import claim_job, create_job
from backend.settings import Settings
from tests.torchfree import forbidden_imports
from worker.runtime import Runtime


def waiting(app, queue: str) -> int:
    """Messages ready in `queue` of the app's broker."""
    with app.connection_for_write() as conn:
        return conn.default_channel.queue_declare(queue=queue, passive=False).message_count


def test_config_is_at_least_once_with_one_route_table(settings: Settings) -> None:
    conf = celery_config(settings)
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["task_ignore_result"]
    assert conf["worker_prefetch_multiplier"] == 1 and conf["result_backend"] is None
    assert conf["broker_url"].startswith("sqla+sqlite:////")
    assert "polling_interval" not in conf["broker_transport_options"]
    assert {name: r["queue"] for name, r in conf["task_routes"].items()} == ROUTES
    assert {ROUTES[TASK_NAMES[k]] for k in ("generate_stimuli", "train", "evaluate")} == {"gpu"}
    prefixed = celery_config(settings.model_copy(update={"queue_prefix": "t1-"}))
    assert {r["queue"] for r in prefixed["task_routes"].values()} == {"t1-gpu", "t1-cpu"}


def test_a_stopped_worker_hands_its_job_back_and_redis_waits_out_the_longest_job(settings: Settings) -> None:
    """Soft shutdown for every broker; on Redis a visibility timeout far above Redis's 1 h default (a training
    run lasts hours), taken from the settings and really passed to kombu's transport."""
    conf = celery_config(settings)
    assert conf["worker_soft_shutdown_timeout"] == settings.worker_soft_shutdown_s > 0
    assert "visibility_timeout" not in conf["broker_transport_options"]  # SQLite transport: no such thing
    assert settings.broker_visibility_timeout_s >= 24 * 3600 > 10 * settings.job_stale_after_s
    redis = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0", "broker_visibility_timeout_s": 7200.0})
    assert celery_config(redis)["broker_transport_options"] == {"visibility_timeout": 7200.0}
    app = make_celery(redis)
    assert app.conf.worker_soft_shutdown_timeout == settings.worker_soft_shutdown_s
    assert app.connection_for_write().transport_options["visibility_timeout"] == 7200.0
    env = Settings(_env_file=None, secret_key="k" * 40, broker_url="redis://x:6379/0", worker_soft_shutdown_s=0)
    assert celery_config(env)["worker_soft_shutdown_timeout"] == 0


def test_enqueue_sends_only_committed_jobs(rt: Runtime, settings: Settings) -> None:
    app = make_celery(settings)
    with session_scope(rt.session_factory) as session:
        job = create_job(session, "train", {})
        with pytest.raises(ValueError, match="commit first"):
            enqueue(Job(kind="train"), app=app)
    enqueue(job, app=app)
    assert waiting(app, "gpu") == 1 and waiting(app, "cpu") == 0  # routed to one queue only

    with rt.session_factory() as session:  # rolled back: nothing sent
        job = create_job(session, "evaluate", {})
        enqueue_on_commit(session, job, app=app)
        assert waiting(app, "gpu") == 1
        session.rollback()
        session.commit()
    assert waiting(app, "gpu") == 1

    with session_scope(rt.session_factory) as session:  # committed: sent after the commit
        enqueue_on_commit(session, create_job(session, "generate_stimuli", {"stimulus_set_id": 1}), app=app)
        assert waiting(app, "gpu") == 1
    assert waiting(app, "gpu") == 2


def test_reaper_re_enqueues_what_it_requeued(rt: Runtime, settings: Settings) -> None:
    app = make_celery(settings)
    with session_scope(rt.session_factory) as session:
        job_id = create_job(session, "train", {}).id
    assert claim_job(rt.session_factory, job_id, worker_id="gone", stale_after_s=60)
    with session_scope(rt.session_factory) as session:
        session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
    result = reap_and_requeue(rt.session_factory, settings, app=app)
    assert result.requeued == [job_id] and waiting(app, "gpu") == 1


def test_reaper_re_enqueues_a_queued_job_whose_message_was_lost(rt: Runtime, settings: Settings) -> None:
    app = make_celery(settings)
    with session_scope(rt.session_factory) as session:  # committed, but its message never reached the broker
        job_id = create_job(session, "evaluate", {}).id
    assert reap_and_requeue(rt.session_factory, settings, app=app).resend == [] and waiting(app, "gpu") == 0
    with session_scope(rt.session_factory) as session:
        due = utcnow() - timedelta(seconds=settings.job_requeue_after_s + 1)
        session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=due))
    assert reap_and_requeue(rt.session_factory, settings, app=app).resend == [job_id] and waiting(app, "gpu") == 1
    assert reap_and_requeue(rt.session_factory, settings, app=app).resend == [] and waiting(app, "gpu") == 1


def test_backend_queue_imports_no_torch_no_sipat_and_no_worker() -> None:
    modules = ["backend.queue", "backend.services.jobs", "backend.services.job_params", "backend.devserver"]
    assert forbidden_imports(modules, ("torch", "torchvision", "sipat", "worker")) == []
