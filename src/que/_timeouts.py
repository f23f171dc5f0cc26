"""Job timeouts: how long each job type may run, and a watchdog for threads.

An asyncio work function past its timeout is cancelled and fails like any
other error. A thread cannot be stopped from outside, so for work functions
run in threads the watchdog reports a job past its timeout (a warning, a
count, and an optional callback: ``que worker --processes`` uses it to end
the process so that the job is worked again elsewhere).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from .errors import JobTimeoutError
from .job import BaseJob

T = TypeVar("T")

logger = logging.getLogger("que.worker")

OverdueCallback = Callable[[BaseJob, float, float], None]


@dataclass(frozen=True)
class Timeouts:
    """Seconds a job may run: per type, else the default; None means no limit.

    >>> Timeouts(60, {"Report": 600}).seconds("Report"), Timeouts(60).seconds("Mail")
    (600.0, 60.0)
    """

    default: float | None = None
    per_type: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in [("default", self.default), *self.per_type.items()]:
            if value is not None and not _is_limit(value):
                raise ValueError(
                    f"timeout for {name!r} must be a positive number of seconds, not {value!r}"
                )

    def seconds(self, job_type: str) -> float | None:
        value = self.per_type.get(job_type, self.default)
        return None if value is None else float(value)

    @property
    def enabled(self) -> bool:
        return self.default is not None or bool(self.per_type)


async def run_with_timeout(awaitable: Awaitable[T], job: BaseJob, seconds: float | None) -> T:
    """Await a work function's result, cancelling it after ``seconds`` (None: no limit)."""
    if seconds is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise JobTimeoutError(
            f"job {job.type} id={job.id} ran past its timeout of {seconds:g}s and was cancelled"
        ) from exc


class Watchdog:
    """Watches jobs running in threads; reports each one once when it overruns."""

    def __init__(self, timeouts: Timeouts, on_overdue: OverdueCallback | None = None) -> None:
        self.timeouts = timeouts
        self.on_overdue = on_overdue
        self.overdue_total = 0
        self._running: dict[int, tuple[BaseJob, float, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.timeouts.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="que-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def started(self, job: BaseJob) -> None:
        limit = self.timeouts.seconds(job.type)
        if limit is not None:
            with self._lock:
                self._running[id(job)] = (job, time.monotonic(), limit)

    def finished(self, job: BaseJob) -> None:
        with self._lock:
            self._running.pop(id(job), None)

    def check(self, now: float | None = None) -> list[BaseJob]:
        """Report every job past its timeout (once each); the jobs reported."""
        now = time.monotonic() if now is None else now
        with self._lock:
            late = [
                (key, job, now - began, limit)
                for key, (job, began, limit) in self._running.items()
                if now - began > limit
            ]
            for key, *_ in late:
                del self._running[key]
        for _, job, ran, limit in late:
            logger.warning(
                "job %s id=%s has run %.1fs, past its timeout of %gs; a thread cannot be "
                "stopped, so it keeps running",
                job.type,
                job.id,
                ran,
                limit,
                extra={"job_id": job.id, "job_type": job.type, "outcome": "overdue"},
            )
            try:
                if self.on_overdue is not None:
                    self.on_overdue(job, ran, limit)
            finally:
                # Counted once reported: whoever sees the count saw the warning too.
                self.overdue_total += 1
        return [job for _, job, _, _ in late]

    def _run(self) -> None:
        while not self._stop.wait(self._period()):
            self.check()

    def _period(self) -> float:
        limits = [self.timeouts.default, *self.timeouts.per_type.values()]
        shortest = min(v for v in limits if v is not None)
        return max(0.05, min(1.0, shortest / 4))


def _is_limit(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )
