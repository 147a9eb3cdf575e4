"""The job functions: `JOB_FUNCTIONS[kind](run, runtime) -> result dict`, testable without a broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from backend.services.jobs import JobRun
from worker.jobs.evaluate import evaluate_job
from worker.jobs.rank import rank_paintings_job
from worker.jobs.stimuli import generate_stimuli
from worker.jobs.train import train_job
from worker.runtime import Runtime

JOB_FUNCTIONS: dict[str, Callable[[JobRun, Runtime], dict[str, Any]]] = {
    "generate_stimuli": generate_stimuli,
    "train": train_job,
    "evaluate": evaluate_job,
    "rank_paintings": rank_paintings_job,
}

__all__ = ["JOB_FUNCTIONS"]
