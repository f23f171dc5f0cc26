"""BatchWorker: the high-throughput engine on the Que protocol (sync face).

One locker session per BatchWorker claims batches of due jobs with the same
advisory-lock walk as ``lock_job`` and holds their locks; worker threads run
the work functions; the locker then deletes the worked jobs in one
statement, records failures in another, and only then unlocks them. A
listener session wakes the locker on NOTIFY (see ``que.install_notify``);
polling at the wake interval remains the fallback, and jobs scheduled for
later are claimed when they come due.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from . import sql
from ._engine_base import (
    SATURATED_WAIT,
    BufferSizer,
    Completion,
    EngineBook,
    Outcome,
    id_array,
    key_params,
    vanished_ids,
    wait_seconds,
)
from ._timeouts import OverdueCallback, Timeouts, Watchdog
from ._work import (
    awaitable_message,
    check_work_map,
    failure_message,
    log_loop_error,
    log_outcome,
    queue_name,
    retry_delay,
    unknown_type_message,
    wake_interval,
)
from .client import Client
from .errors import QueError
from .job import Job, job_fields

logger = logging.getLogger(__name__)

WorkFunc = Callable[[Job], Any]


@dataclass(eq=False)
class EngineJob(Job):
    """A Job claimed by the engine: its lock belongs to the locker session, and
    it borrows a pooled connection only if the work function asks for ``conn``
    or ``tx``."""

    _borrow: Callable[[], psycopg.Connection[Any]] | None = field(
        default=None, init=False, repr=False
    )
    _generation: int = field(default=0, init=False, repr=False)

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None:
            if self._borrow is None or self._finished:
                raise QueError("this job holds no connection: its work has finished")
            self._conn = self._borrow()
        return self._conn


def check_engine_options(
    concurrency: object, buffer: int | None, listen: bool, max_connections: int
) -> int | None:
    """Validate the engine's sizes; the fixed buffer, or None to size it on the fly."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, not {concurrency!r}")
    if buffer is not None and (
        isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 0
    ):
        raise ValueError(f"buffer must be a non-negative int or None, not {buffer!r}")
    needed = 2 + (1 if listen else 0)
    if max_connections < needed:
        raise ValueError(
            f"the batched engine needs at least {needed} client connections "
            "(locker, listener, one for job transactions); the client has "
            f"{max_connections}"
        )
    return buffer


class BatchWorker:
    """Works one queue with ``concurrency`` threads fed by one locker session.

    ``buffer`` is how many jobs beyond the free threads the locker may hold
    claimed, so a thread that finishes finds its next job waiting. By default
    it follows the jobs: about as many as the threads finish during one
    locker cycle (many for jobs of a millisecond, none for jobs of seconds),
    so slow jobs never hoard others, which no other worker could take.

    ``timeout`` (all types) and ``timeouts`` (per type) are seconds a job may
    run. A thread cannot be stopped, so a job past its timeout is reported:
    a warning on ``que.worker``, ``overdue_total``, and ``on_overdue(job,
    seconds_run, limit)`` if given.
    """

    def __init__(
        self,
        client: Client,
        work_map: dict[str, WorkFunc],
        *,
        concurrency: int = 8,
        queue: str | None = None,
        interval: float | None = None,
        buffer: int | None = None,
        listen: bool = True,
        timeout: float | None = None,
        timeouts: Mapping[str, float] | None = None,
        on_overdue: OverdueCallback | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"BatchWorker needs a que.Client, not {type(client).__name__}")
        extra = check_engine_options(concurrency, buffer, listen, client.max_connections)
        self.client = client
        self.work_map = check_work_map(work_map, worker="BatchWorker", allow_async=False)
        self.queue = queue_name(queue)
        self.interval = wake_interval(interval)
        self.concurrency = concurrency
        self.listen = listen
        self._sizer = BufferSizer(concurrency, extra)
        self._book = EngineBook(capacity=concurrency + self._sizer.buffer(), backoff=client.backoff)
        self._jobs: queue_module.SimpleQueue[EngineJob | None] = queue_module.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._locker_done = threading.Event()
        self._locker_done.set()
        self._running = 0
        self._running_lock = threading.Lock()
        self._watchdog = Watchdog(Timeouts(timeout, dict(timeouts or {})), on_overdue)

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        """Start the locker, the listener and the worker threads."""
        if self._threads:
            raise QueError("this BatchWorker was already started")
        self._locker_done.clear()
        self._watchdog.start()
        targets: list[tuple[str, Callable[[], None]]] = [("locker", self._locker_loop)]
        if self.listen:
            targets.append(("listener", self._listener_loop))
        targets += [(f"worker-{n}", self._worker_loop) for n in range(self.concurrency)]
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"que-batch-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def run(self) -> None:
        """Start, and block until ``shutdown()`` is called from another thread."""
        self.start()
        self._locker_done.wait()
        self._join_all(None)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop claiming, hand back jobs not yet started, let running jobs finish,
        write their outcomes and release every lock. False if ``timeout`` ran out."""
        self._stop.set()
        self._wake.set()
        if not self._threads:
            return True
        finished = self._locker_done.wait(timeout)
        if finished:
            self._join_all(timeout)
        else:
            logger.warning("BatchWorker shutdown timed out with %d job(s) running", self._running)
        return finished

    def _join_all(self, timeout: float | None) -> None:
        for _ in range(self.concurrency):
            self._jobs.put(None)
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(left)

    @property
    def running(self) -> int:
        """Jobs whose work functions are running now."""
        return self._running

    @property
    def overdue_total(self) -> int:
        """Jobs that ran past their timeout since start (reported, not stopped)."""
        return self._watchdog.overdue_total

    # -- the locker --------------------------------------------------------------

    def _locker_loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        failures = 0
        try:
            while True:
                try:
                    if conn is None:
                        conn = self._open_locker()
                    finished = self._step(conn)
                    failures = 0
                    if finished:
                        return
                except Exception as exc:  # logged; the session is dropped and reopened
                    failures += 1
                    delay = retry_delay(failures, self.interval)
                    log_loop_error(logger, self.queue, exc, failures, delay)
                    if conn is not None:
                        self._drop(conn)
                        conn = None
                    self._wake.wait(delay)
                    self._wake.clear()
        finally:
            if conn is not None:
                self._close_locker(conn)
            self._watchdog.stop()
            self._locker_done.set()

    def _step(self, conn: psycopg.Connection[Any]) -> bool:
        """One turn of the locker: write outcomes, claim, or sleep. True when stopped."""
        book = self._book
        book.collect()
        if self._stop.is_set():
            # Jobs not started go back with this turn's writes, not a turn later.
            self._hand_back_unstarted()
            book.collect()
            self._write_and_claim(conn, 0)
            if book.idle():
                return True
            self._wait(self.interval)
            return False
        linger = book.linger_left(self.running, self._jobs.qsize(), time.monotonic())
        if linger > 0:
            self._wait(linger)  # let more outcomes arrive, to write them together
            return False
        book.capacity = self.concurrency + self._sizer.buffer()
        limit = book.claim_limit()
        began = time.monotonic()
        claimed = self._write_and_claim(conn, limit)
        if claimed:
            self._sizer.observe_cycle(time.monotonic() - began)
        if limit == 0:
            # Every place taken: workers wake us when half are free or they run
            # dry; the timeout bounds how long a lone outcome waits to be written.
            self._wait(min(self.interval, SATURATED_WAIT))
        elif claimed < limit:  # nothing more is due now
            self._wait(self._idle_wait(conn))
        return False

    def _write_and_claim(self, conn: psycopg.Connection[Any], limit: int) -> int:
        """Write the finished jobs' outcomes, unlock them, and claim up to ``limit``
        more, in one pipelined round trip; then re-check the claimed rows."""
        book = self._book
        if not book.has_writes() and limit == 0:
            return 0
        claim = conn.cursor(row_factory=dict_row)
        # One round trip: the writes commit in their own transaction before
        # the unlocks run (unlocking first would let another worker re-check
        # and run a job whose delete is not committed yet), then the claim,
        # which sees those commits.
        with conn.pipeline():
            if book.to_delete or book.to_fail:
                conn.execute(sql.BEGIN)
                if book.to_delete:
                    conn.execute(sql.DELETE_JOBS, book.delete_params(self.queue), prepare=True)
                if book.to_fail:
                    conn.execute(sql.SET_JOBS_ERROR, book.fail_params(self.queue), prepare=True)
                conn.execute(sql.COMMIT)
            unlock = book.unlock_ids()
            if unlock:
                conn.execute(sql.UNLOCK_JOBS, {"ids": id_array(unlock)}, prepare=True)
            if limit > 0:
                params = {"queue": self.queue, "limit": limit, "held": id_array(book.held_ids())}
                claim.execute(sql.LOCK_JOBS, params, prepare=True)
        book.written()
        if limit == 0:
            return 0
        locked = claim.fetchall()
        return self._recheck(conn, locked) if locked else 0

    def _recheck(self, conn: psycopg.Connection[Any], locked: list[dict[str, Any]]) -> int:
        with conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                sql.RECHECK_JOBS, key_params(locked, self.queue), prepare=True
            ).fetchall()
            gone = vanished_ids(locked, found)
            if gone:  # finished by another worker after the walk's snapshot
                cur.execute(sql.UNLOCK_JOBS, {"ids": id_array(gone)}, prepare=True)
        for row in found:
            job = EngineJob(**job_fields(row))
            job._set_claimed(self.client.backoff)
            job._borrow = self._borrow
            job._release = self._give_back
            job._generation = self._book.generation
            self._book.claimed(job)
            self._jobs.put(job)
        return len(found)

    def _idle_wait(self, conn: psycopg.Connection[Any]) -> float:
        row = conn.execute(sql.NEXT_RUN_AT, {"queue": self.queue}, prepare=True).fetchone()
        next_run_at = None if row is None else _value(row)
        return wait_seconds(self.interval, next_run_at, datetime.now(timezone.utc))

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()

    def _hand_back_unstarted(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue_module.Empty:
                return
            if job is None:
                self._jobs.put(None)
                return
            self._book.report(Completion(job, job._generation, Outcome.UNLOCK))

    def _open_locker(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = self.client._pool.getconn()
        try:
            conn.autocommit = True
        except BaseException:
            self._drop(conn)
            raise
        self._book.new_session()
        return conn

    def _close_locker(self, conn: psycopg.Connection[Any]) -> None:
        """Give the locker session back; any lock it still holds dies with it."""
        if self._book.in_flight:
            self._drop(conn)
        else:
            self.client._checkin(conn)

    def _drop(self, conn: psycopg.Connection[Any]) -> None:
        conn.close()  # closing the session releases every lock it held
        self.client._pool.putconn(conn)

    # -- the listener ------------------------------------------------------------

    def _listener_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            conn = None
            try:
                conn = self.client._pool.getconn()
                conn.autocommit = True
                conn.execute(sql.LISTEN)
                failures = 0
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=0.5):
                        if note.payload == self.queue:
                            self._wake.set()
                conn.execute(sql.UNLISTEN)
                self.client._checkin(conn)
                conn = None
            except psycopg.Error as exc:
                failures += 1
                delay = retry_delay(failures, self.interval)
                log_loop_error(logger, self.queue, exc, failures, delay)
                if conn is not None:
                    self._drop(conn)
                self._stop.wait(delay)

    # -- the workers ---------------------------------------------------------------

    def _worker_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._stop.is_set():  # shutting down: give it back unstarted
                self._book.report(Completion(job, job._generation, Outcome.UNLOCK))
                self._wake.set()
                continue
            with self._running_lock:
                self._running += 1
            self._watchdog.started(job)
            began = time.monotonic()
            try:
                outcome, message = self._perform(job)
            finally:
                self._sizer.observe_job(time.monotonic() - began)
                self._watchdog.finished(job)
                with self._running_lock:
                    self._running -= 1
            self._book.report(Completion(job, job._generation, outcome, message))
            if self._book.worth_waking(self._jobs.qsize()):
                self._wake.set()

    def _perform(self, job: EngineJob) -> tuple[Outcome, str]:
        started = time.monotonic()
        func = self.work_map.get(job.type)
        try:
            if func is None:
                log_outcome(job, started, "unknown type")
                return Outcome.FAIL, unknown_type_message(job.type)
            try:
                result = func(job)
                if hasattr(result, "__await__"):
                    getattr(result, "close", lambda: None)()
                    raise TypeError(awaitable_message(job.type))
                if job._in_tx and not job.deleted:
                    job.delete()  # commits the job's own writes with its delete
            except Exception as exc:
                log_outcome(job, started, f"failed: {type(exc).__name__}: {exc}")
                if job._error_written:
                    return Outcome.UNLOCK, ""
                return Outcome.FAIL, failure_message(exc)
            except BaseException as exc:
                # KeyboardInterrupt or SystemExit from a work function: give the
                # job back untouched (it runs again) and keep this thread alive.
                log_outcome(job, started, f"interrupted: {type(exc).__name__}")
                return Outcome.UNLOCK, ""
            log_outcome(job, started, "done")
            if job.deleted or job._error_written:
                return Outcome.UNLOCK, ""
            return Outcome.DELETE, ""
        finally:
            job.done()

    def _borrow(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = self.client._pool.getconn()
        conn.autocommit = True
        return conn

    def _give_back(self, job: Job) -> None:
        conn = job._conn
        job._conn = None
        if conn is None:
            return
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.rollback()
        except psycopg.Error:
            conn.close()
        job._in_tx = False
        self.client._checkin(conn)


def _value(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
