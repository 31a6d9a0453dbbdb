"""The job queue: register handlers, enqueue messages, run them in `worker.py`.

Import from here; the submodules are the implementation.
"""

from app.jobs.context import JobContext
from app.jobs.errors import Discard, InvalidPayload, Retry, UnknownJob
from app.jobs.operations import cancel
from app.jobs.queue import (
    JobRequest,
    enqueue,
    enqueue_many,
    pause_queue,
    resume_queue,
)
from app.jobs.registry import job, load_job_modules, registry

__all__ = [
    "Discard",
    "InvalidPayload",
    "JobContext",
    "JobRequest",
    "Retry",
    "UnknownJob",
    "cancel",
    "enqueue",
    "enqueue_many",
    "job",
    "load_job_modules",
    "pause_queue",
    "registry",
    "resume_queue",
]
