"""Pure bookkeeping of the batched engine, shared by its sync and asyncio faces.

The engine's locker session claims batches of jobs and holds their advisory
locks; workers report each job's outcome; the locker writes the outcomes in
batches (deletes, then error updates) and only then unlocks. This module
keeps those batches and builds their statement parameters; it does no IO.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from ._jobs import id_array
from ._last_error import storable
from ._outcomes import UNLOCK, Verdict
from ._work import Outcome
from .backoff import Backoff
from .errors import QueError
from .job import BaseJob, job_key

# The longest the locker holds finished jobs' outcomes to write them in one batch.
MAX_LINGER = 0.05
# The longest the locker sleeps while every place is taken.
SATURATED_WAIT = 0.5
# Rows one claim statement walks (see sql.LOCK_JOBS); windows past a full
# one double, up to MAX_CLAIM_WINDOW, so long runs of held jobs cost few trips.
CLAIM_WINDOW = 1000
MAX_CLAIM_WINDOW = 64000
# A key before every row: where the first window of a claim starts.
_FIRST_KEY = {"after_priority": -32768, "after_run_at": "-infinity", "after_id": -(2**63)}


@dataclass(frozen=True)
class Completion:
    """A finished job: its verdict, and whether a cancel request was seen for it."""

    job: BaseJob
    generation: int
    verdict: Verdict = UNLOCK
    cancelled: bool = False

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    @property
    def message(self) -> str:
        return self.verdict.message


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
    to_snooze: list[Completion] = field(default_factory=list)
    to_bury: list[Completion] = field(default_factory=list)
    pending_since: float | None = None  # when the first unwritten outcome was collected
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

    def linger_left(self, running: int, queued: int, now: float, workers: int) -> float:
        """Seconds to hold the outcomes gathered so far before writing them.

        Writing and claiming after every job would cost a round trip per job.
        While every one of the ``workers`` is busy, the locker waits until
        half its places are free, but never longer than MAX_LINGER after the
        first outcome arrived. A worker with nothing queued for it is not
        kept waiting: jobs that wait on IO finish one by one, and each free
        worker would otherwise idle for the rest of the linger.

        >>> book = EngineBook(capacity=10, backoff=Backoff(), pending_since=100.0)
        >>> book.in_flight.update({n: BaseJob(type="T", id=n) for n in range(8)})
        >>> book.linger_left(running=3, queued=2, now=100.01, workers=3) > 0
        True
        >>> book.linger_left(running=2, queued=0, now=100.01, workers=3)  # one idles
        0.0
        >>> book.linger_left(running=3, queued=2, now=101.0, workers=3)  # waited enough
        0.0
        """
        if self.pending_since is None:
            return 0.0
        if self.claim_limit() >= max(1, self.capacity // 2):
            return 0.0
        if queued == 0 and running < workers:
            return 0.0
        return max(0.0, self.pending_since + MAX_LINGER - now)

    def worth_waking(self, queued: int) -> bool:
        """Whether a worker that just reported should wake the locker: when the
        workers are running dry, or half the places wait to be written. Waking
        it for every job would cost a thread switch per job; the locker also
        wakes by itself (MAX_LINGER while lingering, SATURATED_WAIT when every
        place is taken)."""
        return queued == 0 or len(self._inbox) + self.pending() >= self.capacity // 2

    def collect(self) -> int:
        """Move reported completions into the write batches; how many arrived."""
        with self._inbox_lock:
            arrived, self._inbox = self._inbox, []
        if arrived and self.pending_since is None:
            self.pending_since = time.monotonic()
        for done in arrived:
            if done.outcome is Outcome.DELETE:
                self.to_delete.append(done)
            elif done.outcome is Outcome.FAIL:
                self.to_fail.append(done)
            elif done.outcome is Outcome.SNOOZE:
                self.to_snooze.append(done)
            elif done.outcome is Outcome.BURY:
                self.to_bury.append(done)
            else:
                self.to_unlock.append(done)
        return len(arrived)

    def pending(self) -> int:
        """Outcomes collected and not yet written (asked after every job: no list built)."""
        return sum(map(len, self._batches()))

    def has_writes(self) -> bool:
        return self.pending() > 0

    def delete_params(self) -> list[dict[str, Any]]:
        """DELETE_JOBS parameters, one set per queue."""
        return [key_params(rows) for rows in by_queue([job_key(c.job) for c in self.to_delete])]

    def fail_params(self) -> list[dict[str, Any]]:
        """SET_JOBS_ERROR parameters, one set per queue."""
        batches = []
        for queue in dict.fromkeys(c.job.queue for c in self.to_fail):
            failed = [c for c in self.to_fail if c.job.queue == queue]
            params = key_params([job_key(c.job) for c in failed])
            delays = [
                self.backoff.delay_for_failure(c.job.type, c.job.error_count + 1) for c in failed
            ]
            params["delays"] = "{" + ",".join(map(repr, delays)) + "}"
            params["messages"] = [storable(c.message) for c in failed]
            batches.append(params)
        return batches

    def snooze_params(self) -> list[dict[str, Any]]:
        """SNOOZE_JOB parameters, one set per job (snoozes are few)."""
        return [{**job_key(c.job), "delay": c.verdict.delay} for c in self.to_snooze]

    def bury_params(self) -> list[dict[str, Any]]:
        """MOVE_JOB_TO_DEAD parameters, one set per job (burials are few)."""
        batches = []
        for c in self.to_bury:
            failed = c.verdict.counts_as_failure
            batches.append(
                {
                    **job_key(c.job),
                    "failed": 1 if failed else 0,
                    "last_error": storable(c.message) if failed else None,
                    "outcome": c.verdict.dead_as,
                    "reason": storable(c.verdict.reason),
                }
            )
        return batches

    def forget_ids(self) -> list[int]:
        """Jobs finishing this turn that had a cancel request: their requests go."""
        return [c.job.id for c in self.finishing() if c.cancelled and c.job.id is not None]

    def finishing(self) -> list[Completion]:
        return [done for batch in self._batches() for done in batch]

    def _batches(self) -> tuple[list[Completion], ...]:
        """The outcomes collected for this turn's writes, one list per kind."""
        return (self.to_delete, self.to_fail, self.to_snooze, self.to_bury, self.to_unlock)

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
        self.to_snooze, self.to_bury = [], []
        self.pending_since = None

    def new_session(self) -> int:
        """A new locker session; the locks of the old one died with it."""
        self.generation += 1
        return self.generation

    def idle(self) -> bool:
        """Nothing claimed, nothing left to write."""
        return not self.in_flight and not self.has_writes() and not self._inbox


@dataclass
class BufferSizer:
    """How many jobs the locker claims ahead of its free workers.

    Enough that the workers do not run dry while the locker spends one cycle
    writing outcomes and claiming (about ``concurrency * cycle / job`` jobs),
    and no more, so that slow jobs never hoard others: with jobs much longer
    than a cycle it comes down to one or none. A fixed ``buffer`` overrides it.

    >>> sizer = BufferSizer(concurrency=8, fixed=None)
    >>> sizer.buffer()  # nothing measured yet
    4
    >>> sizer.observe_cycle(0.005); sizer.observe_job(0.001); sizer.buffer()
    40
    >>> sizer.observe_job(2.0); sizer.observe_job(2.0); sizer.buffer() <= 1
    True
    """

    concurrency: int
    fixed: int | None
    ceiling: int = 256
    job_seconds: float | None = None
    cycle_seconds: float | None = None

    def observe_job(self, seconds: float) -> None:
        self.job_seconds = _smooth(self.job_seconds, seconds)

    def observe_cycle(self, seconds: float) -> None:
        self.cycle_seconds = _smooth(self.cycle_seconds, seconds)

    def buffer(self) -> int:
        if self.fixed is not None:
            return self.fixed
        if self.job_seconds is None or self.cycle_seconds is None:
            return self.concurrency // 2
        need = self.concurrency * self.cycle_seconds / max(self.job_seconds, 1e-6)
        return max(0, min(self.ceiling, math.ceil(need)))


def _smooth(old: float | None, new: float) -> float:
    return new if old is None else 0.7 * old + 0.3 * new


def by_queue(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by queue (in the order each queue first appears): each
    batched statement takes the rows of one queue.

    >>> rows = [{"queue": q, "job_id": n} for n, q in enumerate("aba")]
    >>> [[r["job_id"] for r in group] for group in by_queue(rows)]
    [[0, 2], [1]]
    """
    if len({row["queue"] for row in rows}) <= 1:
        return [rows] if rows else []
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["queue"], []).append(row)
    return list(groups.values())


def key_params(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The full keys of rows of one queue as array literals, for the batched
    re-check, delete and error update."""
    return {
        "queue": rows[0]["queue"],
        "priorities": "{" + ",".join(str(r["priority"]) for r in rows) + "}",
        "run_ats": "{" + ",".join(f'"{r["run_at"].isoformat()}"' for r in rows) + "}",
        "ids": id_array([r["job_id"] for r in rows]),
    }


def claim_params(
    queue: str,
    limit: int,
    skip: list[int],
    after: dict[str, Any] | None = None,
    window: int = CLAIM_WINDOW,
) -> dict[str, Any]:
    """LOCK_JOBS and CLAIM_WINDOW_END parameters: the ``window`` due rows after
    the key ``after`` (from the start when None), stepping over ``skip``.

    >>> p = claim_params("mail", 5, [7])
    >>> p["after_run_at"], p["held"], p["window"]
    ('-infinity', '{7}', 1000)
    """
    if after is None:
        key: dict[str, Any] = _FIRST_KEY
    else:
        key = {
            "after_priority": after["priority"],
            "after_run_at": after["run_at"].isoformat(),
            "after_id": after["job_id"],
        }
    return {"queue": queue, "limit": limit, "held": id_array(skip), "window": window, **key}


class WindowEnd(NamedTuple):
    """The key of the last row of a claim's window, or None when the window
    was not full (no due row lies beyond it)."""

    key: dict[str, Any] | None


def window_end(noted: dict[str, Any] | None) -> WindowEnd | None:
    """The window end a LOCK_JOBS_NOTED row reports (its key is None when the
    window was not full, and when the claim locked all it wanted: then the
    statement does not look)."""
    if noted is None:
        return None
    if noted["end_job_id"] is None:
        return WindowEnd(None)
    return WindowEnd(
        {
            "priority": noted["end_priority"],
            "run_at": noted["end_run_at"],
            "job_id": noted["end_job_id"],
        }
    )


#: A re-checked row: a tuple in the re-check statements' column order (queue,
#: priority, run_at, job_id, ...), which ``job_from_values`` reads; a dict per
#: row would cost the locker measurable time in every turn.
Recheck = tuple[Any, ...]
#: Where a re-checked row holds its job_id.
RECHECK_ID = 3


def vanished_ids(locked: list[int], found: list[Recheck]) -> list[int]:
    """Ids the walk locked whose rows were gone at the re-check.

    >>> vanished_ids([1, 2, 3], [("q", 100, None, 3), ("q", 100, None, 1)])
    [2]
    """
    if len(found) == len(locked):
        return []
    present = {row[RECHECK_ID] for row in found}
    return [job_id for job_id in locked if job_id not in present]


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


def check_engine_options(
    concurrency: object,
    buffer: int | None,
    listen: bool,
    limit: int | None,
    *,
    pgbouncer: bool = False,
) -> int | None:
    """Validate the engine's sizes; the fixed buffer, or None to size it on the fly.

    ``limit`` is the size of a pool the caller gave the client (None: the
    client's own pool, which grows to what the engine needs)."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, not {concurrency!r}")
    if buffer is not None and (
        isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0
    ):
        raise ValueError(f"buffer must be a non-negative int or None, not {buffer!r}")
    if pgbouncer:
        needed, what = 3, "locker, one claim transaction, one for job transactions"
    else:
        needed = 2 + (1 if listen else 0)
        what = "locker, listener, one for job transactions"
    if limit is not None and limit < needed:
        raise ValueError(
            f"the batched engine needs at least {needed} connections ({what}); "
            f"the pool given to the client has {limit}"
        )
    return buffer


def check_listen(listen: bool | None, can_listen: bool) -> bool:
    """Whether an engine listens: as asked, by default whenever it can.

    >>> check_listen(None, can_listen=False), check_listen(False, can_listen=True)
    (False, False)
    """
    if listen is None:
        return can_listen
    if listen and not can_listen:
        raise QueError(
            "listen=True, but LISTEN does not work through PgBouncer in transaction "
            "pooling: give the client listen_url (a direct connection to PostgreSQL) "
            "or let the engine poll (listen=False)"
        )
    return bool(listen)


def engine_connections(concurrency: int, listen: bool, *, pgbouncer: bool = False) -> int:
    """Pooled connections an engine may use at once: its locker, its listener,
    and one for each job that opens a transaction or asks for a connection.
    Behind PgBouncer the listener is a direct connection outside the pool, and
    up to ``concurrency`` claim transactions (holds) are open besides."""
    if pgbouncer:
        return 1 + 2 * concurrency
    return 1 + (1 if listen else 0) + concurrency
