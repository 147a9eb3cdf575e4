"""Job rows and their lifecycle, shared by the research API (create, cancel) and the workers (run, reap).

State lives in our database, not in Celery's result backend. A job goes

    queued --claim--> running --> succeeded | failed | cancelled
      |                  |--(waits for another job / worker shut down)--> queued   (attempt given back)
      |                  '--(heartbeat older than stale_after_s: reaper)--> queued (attempts < max) | failed
      '--(still queued requeue_after_s after enqueued_at: reaper)--> queued, sent again | cancelled (if asked)

* **Claim** is one conditional UPDATE (`claim_job`): it takes a job that is `queued`, or `running` with a stale
  heartbeat, and not cancelled, and counts an attempt. A redelivered message for a job another live worker
  runs, or that has finished, claims nothing and is a no-op, so duplicate messages are harmless.
* **Lost messages**: every move to `queued` sets `enqueued_at`, the time its message is due at the broker
  (now, or now + countdown for a retry that waits), in the same UPDATE; the message is sent after the commit.
  A broker can still lose it (a Redis without persistence restarted; the send failed after the commit), so
  the reaper treats a job still `queued` `requeue_after_s` after `enqueued_at` as lost and sends it again
  (see `reap_stale_jobs`). It cannot tell a lost message from one waiting behind busy workers; the claim makes
  the extra message a no-op either way.
* **Ownership**: each run has its own `worker_id`; heartbeats and the final status are written only while the
  row still names that run, so a run that was declared lost (and re-run elsewhere) cannot overwrite it.
* **Progress** (`JobRun.progress`: fraction 0..1, message, ETA in seconds) is written at most once per
  `progress_min_interval_s`; the heartbeat thread writes the newest pending value with every beat, so the row
  is at most `heartbeat_s` behind while work goes on. Each call checks for cancellation (the flag is re-read
  with every write and beat) and raises `JobCancelled` to stop the work.
* **Failure** stores the error and the traceback; it is final (a bug or bad input fails again on retry).
  Only lost workers cost an attempt that is retried (see `reap_stale_jobs`).

Enqueue the Celery task only after the transaction that created or re-queued the job has committed (the task
re-reads the row by id); `backend.queue.enqueue` / `enqueue_on_commit` do the sending.

The package: `common` (shared names), `create` (the API side: create, cancel), `claims` (the claim and the
run's exceptions and timings), `run` (`JobRun`, `run_job`: the worker side) and `reaper`. The params per kind
and the request handling live beside it in `backend.services.job_params` and `job_requests`. The names below
are the package's public surface, so callers import them from `backend.services.jobs`.
"""

from backend.services.jobs.claims import JobCancelled, JobLost, JobTimings, WaitFor, claim_job, new_worker_id
from backend.services.jobs.common import FINISHED, SessionFactory
from backend.services.jobs.create import (
    create_job,
    create_stimuli_job,
    create_train_job,
    get_job,
    request_cancel,
)
from backend.services.jobs.reaper import ReapResult, reap_stale_jobs
from backend.services.jobs.run import JobFunction, JobRun, RunOutcome, run_job

__all__ = [
    "FINISHED",
    "JobCancelled",
    "JobFunction",
    "JobLost",
    "JobRun",
    "JobTimings",
    "ReapResult",
    "RunOutcome",
    "SessionFactory",
    "WaitFor",
    "claim_job",
    "create_job",
    "create_stimuli_job",
    "create_train_job",
    "get_job",
    "new_worker_id",
    "reap_stale_jobs",
    "request_cancel",
    "run_job",
]
