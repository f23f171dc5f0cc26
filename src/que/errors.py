"""The exception tree: every error this library raises on purpose is a QueError."""

from __future__ import annotations

import json


class QueError(Exception):
    """Base class of every error raised by que."""


class InvalidJobError(QueError, ValueError):
    """A job cannot be enqueued as given; nothing was written."""


class MissingTypeError(InvalidJobError):
    """A job has no type (Go's ErrMissingType)."""

    def __init__(self) -> None:
        super().__init__("job type must be specified (Job.type is empty)")


class LockAttemptsError(QueError):
    """lock_job gave up after the walk kept finding jobs deleted under it (Go's ErrAgain).

    It only happens under extreme concurrency; calling lock_job again is safe.
    """


class SchemaVersionError(QueError):
    """The que_jobs table has a schema version this library cannot use."""


class DatabaseUnavailableError(QueError):
    """The database could not be reached (Go's MustNewClient panic)."""


class UnknownJobTypeError(QueError):
    """A worker claimed a job whose type is not in its work map.

    Recorded as the job's failure, in the words Go's qg uses:
    ``unknown job type: "Billing::Refund"``.
    """

    def __init__(self, job_type: str) -> None:
        super().__init__(f"unknown job type: {json.dumps(job_type, ensure_ascii=False)}")
        self.job_type = job_type


class JobTimeoutError(QueError, TimeoutError):
    """A job ran past its timeout and was cancelled (asyncio work functions)."""


class JobCancelledError(QueError):
    """An async job was cancelled because someone asked for it to stop."""


class Discard(Exception):
    """Raise it from a work function to give a job up: it moves to the dead-job
    table (``que_dead_jobs``, outcome 'discarded') with ``reason``, and is not
    retried. Needs the que-pg extension; without it the job fails as usual."""

    def __init__(self, reason: str = "discarded") -> None:
        super().__init__(reason)
        self.reason = reason


class Snooze(Exception):
    """Raise (or return) it from a work function to run the job again in
    ``seconds``, without counting a failure."""

    def __init__(self, seconds: float) -> None:
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < 3.2e9
        ):
            raise ValueError(f"Snooze needs a number of seconds >= 0, not {seconds!r}")
        super().__init__(f"snoozed for {seconds:g}s")
        self.seconds = float(seconds)


class JobNotFoundError(QueError, LookupError):
    """A management action named a job that is not where it looked (que_jobs, or
    que_dead_jobs for dead jobs): finished and deleted, moved, or never there."""

    def __init__(self, message: str, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobLockedError(QueError):
    """A management action refused a job that a worker (Python, Ruby or Go) is
    working right now: changing it under the worker would race its outcome."""

    def __init__(self, message: str, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobLostError(QueError):
    """``job.delete(conn=...)`` found the job's row gone: another worker
    finished it after this one lost its lock. Raised inside the application's
    transaction, so that its writes roll back and the effects happen once."""

    def __init__(self, job_id: int | None) -> None:
        super().__init__(
            f"job {job_id} is no longer in que_jobs (another worker finished it); "
            "roll this transaction back"
        )
        self.job_id = job_id
