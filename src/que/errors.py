"""The exception tree: every error this library raises on purpose is a QueError."""

from __future__ import annotations


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
    """A worker claimed a job whose type is not in its work map."""


class JobTimeoutError(QueError, TimeoutError):
    """A job ran past its timeout and was cancelled (asyncio work functions)."""
