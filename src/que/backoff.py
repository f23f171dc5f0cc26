"""Retry delays after a failed job: Que's default error_count**4 + 3 seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

# The longest retry delay: a century. Far longer would leave the range of
# PostgreSQL's interval arithmetic, and fail the statement that records it.
MAX_DELAY = 100 * 365.25 * 86400.0

RetryInterval = float | Callable[[int], float]
"""A fixed delay in seconds, or a function of the error count (after the failure)."""


def default_backoff(error_count: int) -> float:
    """Seconds to wait before retrying a job that has now failed ``error_count`` times.

    >>> [default_backoff(n) for n in (1, 2, 3, 4)]
    [4, 19, 84, 259]
    """
    return error_count**4 + 3


@dataclass(frozen=True)
class Backoff:
    """The retry policy of a client: the default, overridden per job type.

    >>> policy = Backoff({"Mailer": 10, "Report": lambda n: 60 * n})
    >>> policy.delay("Mailer", 3), policy.delay("Report", 2), policy.delay("Other", 1)
    (10.0, 120.0, 4.0)
    """

    overrides: Mapping[str, RetryInterval] = field(default_factory=dict)
    default: Callable[[int], float] = default_backoff

    def __post_init__(self) -> None:
        for job_type, interval in self.overrides.items():
            if not callable(interval) and not _is_delay(interval):
                raise ValueError(
                    f"retry interval for job type {job_type!r} must be a non-negative "
                    f"number of seconds or a callable, not {interval!r}"
                )

    def delay(self, job_type: str, error_count: int) -> float:
        """Seconds until a job of ``job_type`` that has failed ``error_count`` times
        runs again, at most MAX_DELAY.

        >>> Backoff().delay("T", 10_000) == MAX_DELAY
        True
        """
        interval = self.overrides.get(job_type, self.default)
        seconds = interval(error_count) if callable(interval) else interval
        if not _is_delay(seconds):
            raise ValueError(
                f"retry interval for job type {job_type!r} gave {seconds!r}; "
                "expected a non-negative number of seconds"
            )
        return min(float(seconds), MAX_DELAY)

    def delay_for_failure(self, job_type: str, error_count: int) -> float:
        """``delay()`` for recording a failure, which must not fail itself: a policy
        that raises or gives a bad value is logged, and the default used instead.

        >>> Backoff({"T": lambda n: 1 / 0}).delay_for_failure("T", 2)
        19.0
        """
        try:
            return self.delay(job_type, error_count)
        except Exception as exc:
            logger.error(
                "retry interval for job type %r failed (%s: %s); using the default backoff",
                job_type,
                type(exc).__name__,
                exc,
            )
            return min(float(default_backoff(error_count)), MAX_DELAY)


def _is_delay(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value >= 0
        and value != float("inf")
    )


DEFAULT_BACKOFF = Backoff()
"""The policy of a job not claimed through a client: the default for every type."""
