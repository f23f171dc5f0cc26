"""What becomes of a job once its work function has run, without IO: retry
limits, and the verdict each worker and engine writes.

A failed job is retried with backoff (Ruby's and Go's behaviour) unless a
retry limit says it has run out of attempts; then, like a job whose work
function raised ``que.Discard``, or one cancelled while it ran, it is *buried*:
moved to ``que_dead_jobs`` in one statement. Burying needs the que-pg
extension; without it the job fails as usual and keeps its row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NamedTuple

from ._extension_base import missing_extension_message
from ._work import Outcome
from .errors import QueError


class Verdict(NamedTuple):
    """What is left to write for one job: ``outcome``, the failure ``message``
    (FAIL, BURY), ``delay`` in seconds (SNOOZE), and for BURY the dead row's
    ``dead_as`` ('exhausted', 'discarded', 'cancelled') and ``reason``."""

    outcome: Outcome
    message: str = ""
    delay: float = 0.0
    dead_as: str = ""
    reason: str = ""

    @property
    def counts_as_failure(self) -> bool:
        """Whether writing it adds one to error_count (and replaces last_error)."""
        return self.outcome is Outcome.FAIL or (
            self.outcome is Outcome.BURY and self.dead_as != "cancelled"
        )


DELETE = Verdict(Outcome.DELETE)
UNLOCK = Verdict(Outcome.UNLOCK)


@dataclass(frozen=True)
class RetryLimits:
    """How many times a job may run before it is buried: per type, else the
    default; None means no limit (as Ruby que 0.x and Go behave).

    >>> limits = RetryLimits(5, {"Report": 2, "Sync": None})
    >>> limits.attempts("Report"), limits.attempts("Mail"), limits.attempts("Sync")
    (2, 5, None)
    """

    default: int | None = None
    per_type: Mapping[str, int | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in [("default", self.default), *self.per_type.items()]:
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(
                    f"max_attempts for {name!r} must be a positive int or None, not {value!r}"
                )

    def attempts(self, job_type: str) -> int | None:
        return self.per_type.get(job_type, self.default)

    @property
    def enabled(self) -> bool:
        return self.default is not None or any(v is not None for v in self.per_type.values())


def settle(
    verdict: Verdict,
    job_type: str,
    error_count: int,
    limits: RetryLimits,
    *,
    cancelled: bool,
    extension: bool = True,
) -> Verdict:
    """The verdict to write, after retry limits and a cancel request, on a
    database with the que-pg extension or (``extension`` False) without it.

    ``error_count`` is the job's count before this run. A job asked to stop
    that did not finish is buried as cancelled; a failure that uses up the
    job's attempts is buried as exhausted.

    >>> fail = Verdict(Outcome.FAIL, "boom")
    >>> settle(fail, "T", 2, RetryLimits(3), cancelled=False).dead_as
    'exhausted'
    >>> settle(fail, "T", 1, RetryLimits(3), cancelled=False).outcome.name
    'FAIL'
    >>> settle(fail, "T", 0, RetryLimits(), cancelled=True).dead_as
    'cancelled'
    >>> settle(DELETE, "T", 0, RetryLimits(), cancelled=True).outcome.name
    'DELETE'
    """
    settled = _settle(verdict, job_type, error_count, limits, cancelled=cancelled)
    return settled if extension else without_extension(settled)


def _settle(
    verdict: Verdict, job_type: str, error_count: int, limits: RetryLimits, *, cancelled: bool
) -> Verdict:
    if cancelled and verdict.outcome in (Outcome.FAIL, Outcome.BURY, Outcome.SNOOZE):
        return Verdict(
            Outcome.BURY,
            verdict.message,
            dead_as="cancelled",
            reason=f"cancelled while running; it ended with: {first_line(verdict.message)}",
        )
    if verdict.outcome is Outcome.FAIL:
        limit = limits.attempts(job_type)
        if limit is not None and error_count + 1 >= limit:
            return Verdict(
                Outcome.BURY,
                verdict.message,
                dead_as="exhausted",
                reason=f"failed {error_count + 1} time(s), the most its type may (max_attempts "
                f"{limit}); last: {first_line(verdict.message)}",
            )
    return verdict


def without_extension(verdict: Verdict) -> Verdict:
    """A burial on a database without the que-pg extension: recorded as a
    failure instead, so the job keeps its row and is retried.

    >>> without_extension(Verdict(Outcome.BURY, "boom", dead_as="discarded")).outcome.name
    'FAIL'
    """
    if verdict.outcome is not Outcome.BURY:
        return verdict
    note = (
        f"[{verdict.dead_as}: not moved to que_dead_jobs, because the que-pg extension is "
        "not installed; run `que migrate`]"
    )
    return Verdict(Outcome.FAIL, f"{note}\n{verdict.message}" if verdict.message else note)


def first_line(message: str) -> str:
    """The first line of a failure message, for a dead row's reason."""
    return message.strip().splitlines()[0] if message.strip() else "(no message)"


# How often a worker with a dead-job retention purges the expired ones.
DEAD_PURGE_PERIOD = 600.0


def retention_seconds(value: timedelta | float | None) -> float | None:
    """A dead-job retention as seconds: a timedelta or a number; None keeps them all.

    >>> retention_seconds(timedelta(days=30)), retention_seconds(None)
    (2592000.0, None)
    """
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"dead_retention must be a positive duration or None, not {value!r}")
    return float(seconds)


@dataclass
class DeadPurge:
    """When a worker with a retention next deletes the dead jobs older than it."""

    retention: float | None
    due: float = 0.0  # monotonic time; the first purge comes at once

    def ready(self, now: float) -> bool:
        if self.retention is None or now < self.due:
            return False
        self.due = now + DEAD_PURGE_PERIOD
        return True


def check_limits(limits: RetryLimits, extension_version: int) -> None:
    """Refuse retry limits on a database without the que-pg extension, where a
    job past its limit would have nowhere to go."""
    if limits.enabled and extension_version == 0:
        raise QueError(missing_extension_message("max_attempts"))
