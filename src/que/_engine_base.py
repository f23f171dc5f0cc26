"""Pure bookkeeping of the batched engine, shared by its sync and asyncio faces.

The engine's locker session claims batches of jobs and holds their advisory
locks; workers report each job's outcome; the locker writes the outcomes in
batches (deletes, then error updates) and only then unlocks. This module
keeps those batches and builds their statement parameters; it does no IO.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .backoff import Backoff
from .job import BaseJob


class Outcome(enum.Enum):
    """What the locker still has to write for a finished job."""

    DELETE = "delete"  # worked: delete the row, then unlock
    FAIL = "fail"  # raised: record the error, then unlock
    UNLOCK = "unlock"  # already written by the job itself, or given back unworked


@dataclass(frozen=True)
class Completion:
    job: BaseJob
    generation: int
    outcome: Outcome
    message: str = ""


@dataclass
class EngineBook:
    """The locker's view: jobs in flight, and finished jobs not yet written.

    Workers call ``report`` from any thread; everything else runs on the
    locker. ``generation`` counts locker sessions: the locks of an older
    session died with it, so its jobs are never unlocked on a newer one.
    """

    capacity: int
    backoff: Backoff
    generation: int = 0
    in_flight: dict[int, BaseJob] = field(default_factory=dict)
    to_delete: list[Completion] = field(default_factory=list)
    to_fail: list[Completion] = field(default_factory=list)
    to_unlock: list[Completion] = field(default_factory=list)
    _inbox: list[Completion] = field(default_factory=list)
    _inbox_lock: threading.Lock = field(default_factory=threading.Lock)

    def claim_limit(self) -> int:
        """How many jobs to claim now: free places in the workers plus the buffer,
        counting the jobs this turn finishes as free."""
        return max(0, self.capacity - len(self.held_ids()))

    def claimed(self, job: BaseJob) -> None:
        assert job.id is not None
        self.in_flight[job.id] = job

    def report(self, completion: Completion) -> None:
        """Record a finished job (any thread)."""
        with self._inbox_lock:
            self._inbox.append(completion)

    def collect(self) -> int:
        """Move reported completions into the write batches; how many arrived."""
        with self._inbox_lock:
            arrived, self._inbox = self._inbox, []
        for done in arrived:
            if done.outcome is Outcome.DELETE:
                self.to_delete.append(done)
            elif done.outcome is Outcome.FAIL:
                self.to_fail.append(done)
            else:
                self.to_unlock.append(done)
        return len(arrived)

    def pending(self) -> int:
        """Outcomes collected and not yet written."""
        return len(self.to_delete) + len(self.to_fail) + len(self.to_unlock)

    def has_writes(self) -> bool:
        return bool(self.to_delete or self.to_fail or self.to_unlock)

    def delete_params(self) -> dict[str, list[Any]]:
        return _keys([c.job for c in self.to_delete])

    def fail_params(self) -> dict[str, list[Any]]:
        params = _keys([c.job for c in self.to_fail])
        params["delays"] = [
            self.backoff.delay(c.job.type, c.job.error_count + 1) for c in self.to_fail
        ]
        params["messages"] = [c.message.replace("\x00", "\\0") for c in self.to_fail]
        return params

    def finishing(self) -> list[Completion]:
        return self.to_delete + self.to_fail + self.to_unlock

    def held_ids(self) -> list[int]:
        """Ids the locker session still holds after this turn's writes: the walk
        must step over them, as the session's own locks do not exclude it."""
        done = {c.job.id for c in self.finishing()}
        return [job_id for job_id in self.in_flight if job_id not in done]

    def unlock_ids(self) -> list[int]:
        """Ids to unlock on the current session (older sessions' locks are gone)."""
        return [
            c.job.id
            for c in self.finishing()
            if c.generation == self.generation and c.job.id is not None
        ]

    def written(self) -> None:
        """This turn's deletes, error updates and unlocks are done."""
        for done in self.finishing():
            if done.job.id is not None:
                self.in_flight.pop(done.job.id, None)
        self.to_delete, self.to_fail, self.to_unlock = [], [], []

    def new_session(self) -> int:
        """A new locker session; the locks of the old one died with it."""
        self.generation += 1
        return self.generation

    def idle(self) -> bool:
        """Nothing claimed, nothing left to write."""
        return not self.in_flight and not self.has_writes() and not self._inbox


def key_params(rows: list[dict[str, Any]], queue: str) -> dict[str, Any]:
    """Parameters of the batch re-check for rows the walk locked."""
    return {
        "queue": queue,
        "priorities": [r["priority"] for r in rows],
        "run_ats": [r["run_at"] for r in rows],
        "ids": [r["job_id"] for r in rows],
    }


def vanished_ids(locked: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[int]:
    """Ids the walk locked whose rows were gone at the re-check."""
    present = {row["job_id"] for row in found}
    return [row["job_id"] for row in locked if row["job_id"] not in present]


def wait_seconds(interval: float, next_run_at: datetime | None, now: datetime) -> float:
    """How long an idle locker sleeps: the wake interval, or less if a job comes due sooner.

    >>> from datetime import timedelta
    >>> t = datetime(2026, 1, 1)
    >>> wait_seconds(5.0, None, t), wait_seconds(5.0, t + timedelta(seconds=1.5), t)
    (5.0, 1.5)
    """
    if next_run_at is None:
        return interval
    return max(0.0, min(interval, (next_run_at - now).total_seconds()))


def _keys(jobs: list[BaseJob]) -> dict[str, list[Any]]:
    return {
        "queues": [j.queue for j in jobs],
        "priorities": [j.priority for j in jobs],
        "run_ats": [j.run_at for j in jobs],
        "ids": [j.id for j in jobs],
    }
