"""The records of que: a job's fields (BaseJob) and a row of statistics (JobStats).

They do no IO. A claimed job is finished through its handle; see
``async_job_handle`` (and the generated ``job_handle``), where ``Job`` and
``AsyncJob`` live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from ._jobs import DEFAULT_PRIORITY, decode_args


@dataclass(eq=False)
class BaseJob:
    """The fields of a Que job; what the sync Job and AsyncJob share.

    To enqueue, only ``type`` is required: ``Job(type="SendEmail", args=[42])``.
    ``id``, ``error_count`` and ``last_error`` are filled in by the database.
    ``inserted`` is set by enqueue: True when it wrote the job's row, False
    when a unique enqueue found a live job holding the key (``id`` is then
    that job's); None on a job that was not enqueued here (a claimed one).
    """

    type: str = ""
    args: Any = field(default_factory=list)
    queue: str = ""
    priority: int = DEFAULT_PRIORITY
    run_at: datetime | None = None
    id: int | None = None
    error_count: int = 0
    last_error: str | None = None
    inserted: bool | None = None


def job_key(job: BaseJob) -> dict[str, Any]:
    """The full primary key of a job's row, as statement parameters."""
    return {"queue": job.queue, "priority": job.priority, "run_at": job.run_at, "job_id": job.id}


def job_from_row(cls: type[J], row: Mapping[str, Any]) -> tuple[J, str | None]:
    """A job of class ``cls`` read from a re-checked que_jobs row (args as JSON
    text), and why its args could not be decoded (None when they could)."""
    return job_from_values(
        cls,
        (
            row["queue"],
            row["priority"],
            row["run_at"],
            row["job_id"],
            row["job_class"],
            row["args"],
            row["error_count"],
            row["last_error"],
        ),
    )


def job_from_values(cls: type[J], values: Sequence[Any]) -> tuple[J, str | None]:
    """A job of class ``cls`` from a tuple row in RECHECK_JOB's column order
    (queue, priority, run_at, job_id, job_class, args, error_count,
    last_error), and why its args could not be decoded: the one place a
    claimed job is built (workers and engines read tuple rows, where a dict
    per row is measurable; ``job_from_row`` passes a dict row's values)."""
    queue, priority, run_at, job_id, job_class, text, error_count, last_error = values
    args, problem = decode_args(text)
    job = cls(job_class, args, queue, priority, run_at, job_id, error_count, last_error)
    return job, problem


J = TypeVar("J", bound=BaseJob)


@dataclass(frozen=True)
class JobStats:
    """Counts for one (queue, type) pair of que_jobs."""

    queue: str
    type: str
    count: int
    count_working: int
    count_errored: int
    highest_error_count: int
    oldest_run_at: datetime


def stats_from_row(row: Mapping[str, Any]) -> JobStats:
    return JobStats(
        queue=row["queue"],
        type=row["job_class"],
        count=row["count"],
        count_working=row["count_working"],
        count_errored=row["count_errored"],
        highest_error_count=row["highest_error_count"],
        oldest_run_at=row["oldest_run_at"],
    )


def __getattr__(name: str) -> Any:
    """``que.job.Job`` and ``que.job.AsyncJob``, where they lived before the job
    handles got modules of their own (imported late: those modules import this one)."""
    if name == "Job":
        from .job_handle import Job

        return Job
    if name == "AsyncJob":
        from .async_job_handle import AsyncJob

        return AsyncJob
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BaseJob", "JobStats", "job_from_row", "job_from_values", "job_key", "stats_from_row"]
