"""Celery workers: thin glue from a job row to `sipat` and back (see `worker.tasks`, `worker.jobs`)."""
