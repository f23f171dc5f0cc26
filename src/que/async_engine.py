"""AsyncBatchWorker: the high-throughput engine on the Que protocol.

One locker session per
engine claims batches of due jobs with the same advisory-lock walk as
``lock_job`` and holds their locks; workers (tasks here, threads on the sync
face) run the work functions; the locker then deletes the worked jobs in one
statement, records failures in another, and only then unlocks them. A
listener session wakes the locker on NOTIFY (see ``que.install_notify``);
polling at the wake interval remains the fallback, and jobs scheduled for
later are claimed when they come due.

Behind PgBouncer (a client made with ``pgbouncer=True``) there is no session
to hold locks between transactions: each claim opens a transaction of its
own (a *hold*) and takes transaction-level locks in it; the locker writes
outcomes as usual and ends a hold once all of its jobs are written, which
releases their locks.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import dict_row, tuple_row

from . import sql
from ._acompat import (
    ASYNC,
    Background,
    Cancelled,
    Event,
    Queue,
    QueueEmpty,
    cancel_count,
    check_can_start,
    join,
    spawn,
    wait_event,
)
from ._engine_base import (
    CLAIM_WINDOW,
    MAX_CLAIM_WINDOW,
    RECHECK_ID,
    SATURATED_WAIT,
    BufferSizer,
    Completion,
    EngineBook,
    Recheck,
    WindowEnd,
    by_queue,
    check_engine_options,
    check_listen,
    claim_params,
    engine_connections,
    key_params,
    vanished_ids,
    wait_seconds,
    window_end,
)
from ._jobs import id_array, parse_id_array, text_array
from ._observe import observers
from ._outcomes import (
    UNLOCK,
    DeadPurge,
    RetryLimits,
    Verdict,
    check_limits,
    retention_seconds,
    settle,
)
from ._pause_base import unpaused
from ._registry import attempts_per_type
from ._timeouts import OverdueCallback, Timeouts, Watchdog
from ._unique import unique_purge_due
from ._work import (
    check_work_map,
    describe_queues,
    log_loop_error,
    log_outcome,
    queue_names,
    retry_delay,
    rotated,
    wake_interval,
)
from .async_cancel import AsyncCancelWatch, purge_expired_dead_jobs
from .async_client import AsyncClient
from .async_job_handle import AsyncJob, AsyncJobHandle, perform
from .async_unique import purge_stale_unique_keys
from .errors import QueError
from .job import job_from_values

logger = logging.getLogger(__name__)

AsyncWorkFunc = Callable[[AsyncJob], Any]
AnyConnection = psycopg.AsyncConnection[Any]


class Hold(NamedTuple):
    """PgBouncer mode: one claim's transaction and the ids it still holds."""

    conn: AnyConnection
    ids: set[int]


class Write(NamedTuple):
    """One statement of a turn's writes, with its parameters."""

    statement: str
    params: dict[str, Any]
    prepare: bool = False


class Claimed(NamedTuple):
    """A job handed to a worker, with its handle and the locker session it was claimed on."""

    job: AsyncJob
    handle: AsyncJobHandle
    generation: int


class AsyncBatchWorker:
    """Works one queue with ``concurrency`` workers fed by one locker session.

    ``buffer`` is how many jobs beyond the free workers the locker may hold
    claimed, so a worker that finishes finds its next job waiting. By default
    it follows the jobs: about as many as the workers finish during one
    locker cycle (many for jobs of a millisecond, none for jobs of seconds),
    so slow jobs never hoard others, which no other worker could take.

    ``timeout`` (all types) and ``timeouts`` (per type) are seconds a job may
    run. An async work function past its timeout is cancelled and fails with
    JobTimeoutError, so the job is retried after the backoff. A thread cannot
    be stopped, so a sync work function past its timeout is reported: a
    warning on ``que.worker``, ``overdue_total``, and ``on_overdue(job,
    seconds_run, limit)`` if given.

    A work function's job borrows a pooled connection only if it asks for one
    (``connection()``, ``transaction()``, or a ``delete()``/``error()`` of its
    own); the lock stays with the locker session.

    ``dead_retention`` (a timedelta or seconds) deletes dead jobs older than
    that, every ten minutes. ``max_attempts`` and ``max_attempts_per_type``, ``que.Discard``,
    ``que.Snooze`` and cancel requests work as on ``AsyncWorker``; a cancel
    request reaches a running job within a second (at once when listening).

    A paused queue (``client.pause_queue``, ``que pause``) is not claimed
    from: the locker looks at most once a second, and at once on the NOTIFY
    that comes with a pause or resume when it listens; jobs it had claimed
    but not started yet are handed back, running ones finish and are written
    as usual. Pauses need version 2 of the que-pg extension.

    ``listen`` (default: whenever the client can) wakes the engine on NOTIFY;
    behind PgBouncer that needs the client's ``listen_url``, and without it
    the engine polls every ``interval``.

    ``synchronous_commit=False`` commits each job's own transaction (its
    writes through ``transaction()`` with its delete) without waiting for the
    WAL flush: much faster where that flush bounds the rate, but a crash of
    the database server can lose the last such commits, effects and delete
    together, and the job then runs again. Read docs/reliability.md first.
    """

    # Failed writes in a row the locker retries while it keeps holding the jobs.
    _WRITE_TRIES = 8

    def __init__(
        self,
        client: AsyncClient,
        work_map: dict[str, AsyncWorkFunc],
        *,
        concurrency: int = 8,
        queue: str | Sequence[str] | None = None,
        interval: float | None = None,
        buffer: int | None = None,
        listen: bool | None = None,
        timeout: float | None = None,
        timeouts: Mapping[str, float] | None = None,
        on_overdue: OverdueCallback | None = None,
        max_attempts: int | None = None,
        max_attempts_per_type: Mapping[str, int | None] | None = None,
        dead_retention: timedelta | float | None = None,
        synchronous_commit: bool = True,
    ) -> None:
        if not isinstance(client, AsyncClient):
            raise TypeError(
                f"AsyncBatchWorker needs a que.AsyncClient, not {type(client).__name__}"
            )
        connections = client.connections
        listen = check_listen(listen, connections.can_listen)
        extra = check_engine_options(
            concurrency, buffer, listen, connections.limit, pgbouncer=connections.pgbouncer
        )
        self.client = client
        self.work_map = check_work_map(work_map, worker="AsyncBatchWorker", allow_async=ASYNC)
        self.queues = queue_names(queue)
        self._turn = 0
        self.interval = wake_interval(interval)
        self.concurrency = concurrency
        self.listen = listen
        self.synchronous_commit = synchronous_commit
        self._connections = connections
        self._holds: dict[int, Hold] = {}
        self._lock_jobs = sql.LOCK_JOBS_XACT if connections.pgbouncer else sql.LOCK_JOBS
        self._sizer = BufferSizer(concurrency, extra)
        self._book = EngineBook(capacity=concurrency + self._sizer.buffer(), backoff=client.backoff)
        self._jobs: Queue[Claimed | None] = Queue()
        self._wake = Event()
        self._stop = Event()
        self._locker: list[Background] = []
        self._workers: list[Background] = []
        if ASYNC:
            # A task per job, started while fewer than ``concurrency`` run.
            self._job_tasks: set[asyncio.Task[None]] = set()
            self._free_places = concurrency
            self._filling = False
        self._running: set[int] = set()
        self._timeouts = Timeouts(timeout, dict(timeouts or {}))
        self._watchdog = Watchdog(self._timeouts, on_overdue)
        self.limits = RetryLimits(
            max_attempts, attempts_per_type(self.work_map, max_attempts_per_type)
        )
        self._cancel_watch = AsyncCancelWatch(connections)
        self._dead_purge = DeadPurge(retention_seconds(dead_retention))
        self._cancels_checked = 0.0
        # A turn failed: the next one writes before it claims again, so that a
        # claim failing turn after turn cannot keep the outcomes from being written.
        self._write_first = False
        self._write_failures = 0  # turns in a row whose writes failed

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        """Start the locker and the listener in the background, and the workers:
        threads on the sync face; on the asyncio face each job gets a task."""
        if self._locker:
            raise QueError("this AsyncBatchWorker was already started")
        self._connections.check_open()
        check_limits(self.limits, self.client.extension_version)
        check_can_start("AsyncBatchWorker.start()")
        self.client.pauses.watch(self.queues)
        self._watchdog.start()
        self._locker.append(spawn(self._locker_loop, "que-batch-locker"))
        if self.listen:
            self._workers.append(spawn(self._listener_loop, "que-batch-listener"))
        if ASYNC:
            # Each job's task starts in a copy of this context, not of the
            # context a previous job left behind.
            self._context = contextvars.copy_context()
            self._loop = asyncio.get_running_loop()
        else:
            for number in range(self.concurrency):
                self._workers.append(spawn(self._worker_loop, f"que-batch-worker-{number}"))

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop claiming, hand back jobs not yet started, let running jobs finish,
        write their outcomes and release every lock. False if ``timeout`` ran out."""
        self._stop.set()
        self._wake.set()
        if not self._locker:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        if await join(self._locker, timeout):
            logger.warning(
                "AsyncBatchWorker shutdown timed out with %d job(s) running", self.running
            )
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if ASYNC:
            await join([*self._workers, *self._job_tasks], left)
        else:
            for _ in range(self.concurrency):
                self._jobs.put_nowait(None)
            await join(self._workers, left)
        return True

    @property
    def queue(self) -> str:
        """The first of ``queues``."""
        return self.queues[0]

    @property
    def running(self) -> int:
        """Jobs whose work functions are running now."""
        return len(self._running)

    @property
    def overdue_total(self) -> int:
        """Sync work functions (in threads) that ran past their timeout since start."""
        return self._watchdog.overdue_total

    # -- the locker --------------------------------------------------------------

    async def _locker_loop(self) -> None:
        conn: AnyConnection | None = None
        failures = 0
        reserved = engine_connections(
            self.concurrency, self.listen, pgbouncer=self._connections.pgbouncer
        )
        try:
            await self._connections.reserve(reserved)
            while True:
                try:
                    if conn is None:
                        conn = await self._connections.take()
                    if await self._step(conn):
                        return
                    failures = 0
                except Exception as exc:  # logged; the session is dropped and reopened
                    failures += 1
                    delay = retry_delay(failures, self.interval)
                    log_loop_error(logger, self.queues, exc, failures, delay)
                    observers.loop_error("locker", exc)
                    self._write_first = True
                    if conn is not None and not await self._keep_session(conn):
                        await self._connections.drop(conn)
                        conn = None
                        # Its locks are gone now: the next session is a new
                        # generation, and the jobs this one claimed that wait
                        # unstarted must not start (see _unlocked).
                        self._book.new_session()
                        if not self._connections.pgbouncer:  # it holds no locks there
                            self._write_failures = 0
                    await self._wait(delay)
        finally:
            self._connections.unreserve(reserved)
            self._watchdog.stop()
            if conn is not None:
                # Any lock the session still holds dies with it.
                if self._book.in_flight:
                    await self._connections.drop(conn)
                else:
                    await self._connections.give_back(conn)
            for hold in self._holds.values():  # jobs still running: their locks go
                await self._connections.drop(hold.conn)
            self._holds.clear()

    async def _keep_session(self, conn: AnyConnection) -> bool:
        """After a failed turn: whether the locker keeps its session, and with it
        the locks of the jobs running now (dropping it would let another worker
        take them). It does when the session rolls back cleanly; a claim cut
        short may have locked jobs it never reported, and those are unlocked
        first. Outcomes not written stay in the book, to be tried again, and
        nothing is claimed while writing them fails.

        After ``_WRITE_TRIES`` turns in a row whose writes failed (about half a
        minute of backoff) the locker lets go instead of holding its jobs, and
        claiming nothing, for ever: the session goes with their locks, and the
        jobs whose outcomes were not written run again (here or on any worker).
        Behind PgBouncer the locker's own session holds no lock: it is replaced."""
        if conn.closed or self._connections.pgbouncer:
            return False
        if self._write_failures >= self._WRITE_TRIES:
            self._give_up_writes()  # forgotten: with the session gone, the jobs run again
            return False
        try:
            await conn.rollback()
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                return False
            await self._unlock_strays(conn)
        except Exception:  # any doubt about the session: drop it, and its locks with it
            return False
        return True

    def _give_up_writes(self) -> None:
        """Forget the outcomes that could not be written: their jobs' locks are
        about to be released, and the jobs run again."""
        if self._book.has_writes():
            logger.error(
                "%s: the outcomes of %d job(s) could not be written in %d tries; "
                "their locks are released and they will run again",
                describe_queues(self.queues),
                self._book.pending(),
                self._write_failures,
            )
        self._book.written()

    async def _unlock_strays(self, conn: AnyConnection) -> None:
        """Unlock the job locks this session holds and the book does not know of."""
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.SESSION_JOB_LOCKS)
            row = await cur.fetchone()
        held = parse_id_array(row["ids"]) if row else []
        strays = sorted(set(held) - set(self._book.in_flight))
        if strays:
            await conn.execute(sql.UNLOCK_JOBS, {"ids": id_array(strays)})

    async def _step(self, conn: AnyConnection) -> bool:
        """One turn of the locker: write outcomes, claim, or sleep. True when stopped."""
        book = self._book
        book.collect()
        await self._check_cancels(conn)
        if self.client.extension_version > 0 and self._dead_purge.ready(time.monotonic()):
            await purge_expired_dead_jobs(conn, self._dead_purge)
        purge = self.client.unique_purge
        if unique_purge_due(self.client.extension_version, purge, time.monotonic()):
            await purge_stale_unique_keys(conn, purge)
        if self._stop.is_set():
            # Jobs not started go back with this turn's writes, not a turn later.
            self._hand_back_unstarted()
            book.collect()
            await self._write_and_claim(conn, 0, [])
            if book.idle():
                return True
            await self._wait(self.interval)
            return False
        if ASYNC:
            # A job task that ended by a cancel left its place free without
            # starting the next job; a turn that hands nothing out (behind
            # PgBouncer with a hold per place, every queue paused) would leave it.
            self._fill_places()
        linger = book.linger_left(
            self.running, self._jobs.qsize(), time.monotonic(), self.concurrency
        )
        if linger > 0:
            await self._wait(linger)  # let more outcomes arrive, to write them together
            return False
        book.capacity = self.concurrency + self._sizer.buffer()
        queues = unpaused(self.queues, await self.client.pauses.paused(conn))
        # After a failed turn the outcomes go first: while writing them fails,
        # each claim would hand out jobs that cannot be finished.
        claiming = bool(queues) and not (self._write_first and book.has_writes())
        limit = book.claim_limit() if claiming else 0
        began = time.monotonic()
        claimed = await self._write_and_claim(conn, limit, queues)
        if claimed:
            self._sizer.observe_cycle(time.monotonic() - began)
        if not queues:
            # Every queue paused: look again within a check period (at once
            # when a NOTIFY says one was resumed).
            await self._wait(min(self.interval, self.client.pauses.period))
        elif limit == 0:
            # Every place taken: workers wake us when half are free or they run
            # dry; the timeout bounds how long a lone outcome waits to be written.
            await self._wait(min(self.interval, SATURATED_WAIT))
        elif claimed < limit:  # nothing more is due now
            # Already woken (a NOTIFY during the turn): no sleep to size.
            woken = self._wake.is_set()
            await self._wait(0.0 if woken else await self._idle_wait(conn, queues))
        return False

    async def _write_and_claim(self, conn: AnyConnection, limit: int, queues: list[str]) -> int:
        """Claim up to ``limit`` jobs from ``queues`` (those not paused), write the
        finished jobs' outcomes and unlock them, and hand the new jobs out: one
        pipeline, whose claim and re-check are read before the writes are sent.
        The server runs the writes while the jobs are built and handed out, and
        the workers start on them while the writes commit."""
        book = self._book
        if not book.has_writes() and limit == 0:
            return 0
        if self._connections.pgbouncer:
            return await self._write_and_claim_in_hold(conn, limit, queues)
        began = time.perf_counter()
        claimed = 0
        # The finished jobs are still locked until the writes below: the walk
        # steps over every job in flight.
        held = list(book.in_flight)
        # The queues take turns at being claimed from first.
        order = rotated(queues, self._turn)
        self._turn += 1
        locked: list[int] = []
        found: list[Recheck] = []
        first_end: WindowEnd | None = None
        writing = False
        try:
            async with conn.pipeline():
                if limit > 0:
                    claim = conn.cursor(row_factory=dict_row)
                    recheck = conn.cursor(row_factory=tuple_row)  # no dict per job
                    # The locks are the session's: they outlive this transaction,
                    # which only scopes the planner setting.
                    await conn.execute(sql.BEGIN)
                    await conn.execute(sql.WALK_IN_INDEX_ORDER)
                    params = claim_params(order[0], limit, held)
                    await claim.execute(sql.LOCK_JOBS_NOTED, params, prepare=True)
                    await conn.execute(sql.COMMIT)
                    await recheck.execute(sql.RECHECK_NOTED, {"queue": order[0]}, prepare=True)
                # Built while the server runs the claim.
                writes, unlock = self._writes(), book.unlock_ids()
                if limit > 0:
                    noted = await claim.fetchone()  # a flush: the writes are not sent yet
                    # (nor is the unlock of rows the re-check finds gone, in _hand_out)
                    locked = parse_id_array(noted["ids"]) if noted else []
                    first_end = window_end(noted)
                    found = await recheck.fetchall()
                # An error from here on may be the writes' (it surfaces when the
                # pipeline ends); with nothing to write it is the hand-out's,
                # which must not count towards giving the running jobs up.
                writing = bool(writes or unlock)
                await self._send_writes(conn, writes, unlock)
                if limit > 0:
                    claimed = await self._hand_out(conn, locked, found)
        except Exception:
            if writing:
                self._write_failures += 1
            raise
        self._write_first = False
        self._write_failures = 0
        book.written()
        if limit == 0:
            return 0
        if len(locked) < limit:
            more = await self._claim_more(conn, limit, held, order, locked, first_end)
            if more:
                more_ids = [row["job_id"] for row in more]
                claimed += await self._hand_out(conn, more_ids, await self._reread(conn, more))
        self._log_claim(claimed, limit, began)
        return claimed

    async def _send_writes(
        self, conn: AnyConnection, writes: list[Write], unlock: list[int]
    ) -> None:
        """This turn's outcomes, committed in a transaction of their own before
        the unlocks run: unlocking first would let another worker re-check and
        run a job whose delete is not committed yet."""
        if writes:
            await conn.execute(sql.BEGIN)
            await self._write_outcomes(conn, writes)
            await conn.execute(sql.COMMIT)
        if unlock:
            await conn.execute(sql.UNLOCK_JOBS, {"ids": id_array(unlock)}, prepare=True)

    async def _write_and_claim_in_hold(
        self, conn: AnyConnection, limit: int, queues: list[str]
    ) -> int:
        """PgBouncer mode: write the outcomes in a transaction of their own, end
        the holds whose jobs are all written, and claim in a new hold."""
        book = self._book
        began = time.perf_counter()
        finishing = book.finishing()
        writes = self._writes()
        try:
            if writes:
                async with conn.transaction():
                    await self._write_outcomes(conn, writes)
        except Exception:
            self._write_failures += 1
            if self._write_failures < self._WRITE_TRIES:
                raise
            # Given up: the holds whose jobs are all finished end below, and
            # their locks with them; a hold with a job still running ends
            # when that job is done.
            self._give_up_writes()
        book.written()
        self._write_first = False
        self._write_failures = 0
        for done in finishing:
            hold = self._holds.get(done.generation)
            if hold is not None and done.job.id is not None:
                hold.ids.discard(done.job.id)
        for generation, hold in list(self._holds.items()):
            if not hold.ids:
                del self._holds[generation]
                await self._end_hold(hold.conn)
        # Every hold pins a server connection of PgBouncer's pool while its
        # jobs run: no more of them than workers.
        if limit == 0 or len(self._holds) >= self.concurrency:
            return 0
        held = book.held_ids()
        order = rotated(queues, self._turn)
        self._turn += 1
        hold_conn = await self._connections.take()
        try:
            await hold_conn.set_autocommit(False)
            generation = book.new_session()
            await hold_conn.execute(sql.WALK_IN_INDEX_ORDER)
            async with hold_conn.cursor(row_factory=dict_row) as claim:
                await claim.execute(self._lock_jobs, claim_params(order[0], limit, held))
                locked = await claim.fetchall()
            ids = [row["job_id"] for row in locked]
            if len(locked) < limit:
                locked += await self._claim_more(hold_conn, limit, held, order, ids)
                ids = [row["job_id"] for row in locked]
            found = await self._reread(hold_conn, locked) if locked else []
            claimed = await self._hand_out(hold_conn, ids, found)
        except BaseException:
            await self._connections.drop(hold_conn)
            raise
        if claimed:
            self._holds[generation] = Hold(hold_conn, {row[RECHECK_ID] for row in found})
        else:
            await self._end_hold(hold_conn)
        self._log_claim(claimed, limit, began)
        return claimed

    def _writes(self) -> list[Write]:
        """This turn's deletes, failures, snoozes and burials, and the cancel
        requests of the jobs they finish: statements and their parameters."""
        book = self._book
        writes = [Write(sql.DELETE_JOBS, params, True) for params in book.delete_params()]
        writes += [Write(sql.SET_JOBS_ERROR, params, True) for params in book.fail_params()]
        writes += [Write(sql.SNOOZE_JOB, params) for params in book.snooze_params()]
        writes += [Write(sql.MOVE_JOB_TO_DEAD, params) for params in book.bury_params()]
        forget = book.forget_ids()
        if forget:
            writes.append(Write(sql.FORGET_CANCEL_REQUESTS, {"ids": id_array(forget)}))
        return writes

    async def _write_outcomes(self, conn: AnyConnection, writes: list[Write]) -> None:
        """Run ``writes`` (inside the caller's transaction)."""
        for write in writes:
            await conn.execute(write.statement, write.params, prepare=write.prepare)

    async def _end_hold(self, conn: AnyConnection) -> None:
        """End a hold's transaction (its locks with it) and return its connection."""
        if not await self._connections.reset_and_give_back(conn):
            logger.warning(
                "%s: could not end a claim's transaction; closed its connection",
                describe_queues(self.queues),
            )

    def _log_claim(self, claimed: int, limit: int, began: float) -> None:
        observers.claimed(claimed, limit)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s: claimed %d of %d wanted in %.1f ms",
                describe_queues(self.queues),
                claimed,
                limit,
                (time.perf_counter() - began) * 1000,
                extra={"queues": list(self.queues), "claimed": claimed, "wanted": limit},
            )

    async def _claim_more(
        self,
        conn: AnyConnection,
        limit: int,
        held: list[int],
        order: list[str],
        mine: list[int],
        first_end: WindowEnd | None = None,
    ) -> list[dict[str, Any]]:
        """After a short first claim (which locked ``mine``): the rest of the
        first queue past full windows, then the other queues in turn, until
        ``limit`` are locked. ``first_end`` is the end of the first claim's
        window, when the claim reported it."""
        if first_end is not None and first_end.key is None and len(order) == 1:
            return []  # the claim's window was not full: nothing more is due
        more: list[dict[str, Any]] = []
        async with self._walking(conn), conn.cursor(row_factory=dict_row) as cur:
            for index, queue in enumerate(order):
                locked = mine + [row["job_id"] for row in more]
                # What this queue's first window skipped: the first queue's was
                # sent with the writes, before this turn locked anything.
                skip = held if index == 0 else held + locked
                if index > 0:
                    await cur.execute(
                        self._lock_jobs, claim_params(queue, limit - len(locked), skip)
                    )
                    more += await cur.fetchall()
                    locked = mine + [row["job_id"] for row in more]
                if len(locked) < limit:
                    if index == 0 and first_end is not None:
                        end = first_end.key
                    else:
                        end = await self._window_end(cur, claim_params(queue, 0, skip))
                    more += await self._claim_beyond(cur, queue, limit, skip, locked, end)
                if len(mine) + len(more) >= limit:
                    break
        return more

    @asynccontextmanager
    async def _walking(self, conn: AnyConnection) -> AsyncIterator[None]:
        """A transaction for the window statements, planned as index walks (a
        hold's own transaction behind PgBouncer)."""
        if self._connections.pgbouncer:
            yield  # already inside the hold's transaction, planned so
            return
        async with conn.transaction():
            await conn.execute(sql.WALK_IN_INDEX_ORDER)
            yield

    async def _claim_beyond(
        self,
        cur: psycopg.AsyncCursor[Any],
        queue: str,
        limit: int,
        skip: list[int],
        locked: list[int],
        end: dict[str, Any] | None,
    ) -> list[dict[str, Any]]:
        """Walk on in ``queue`` past a full window (ending at the key ``end``)
        whose free jobs ran out (other sessions hold the rest), window after
        window, each twice the last, until ``limit`` are locked in all
        (``locked`` so far) or a window is not full."""
        more: list[dict[str, Any]] = []
        size = CLAIM_WINDOW
        while end is not None and len(locked) + len(more) < limit:
            mine = locked + [row["job_id"] for row in more]
            size = min(2 * size, MAX_CLAIM_WINDOW)
            window = claim_params(queue, limit - len(mine), skip + mine, end, size)
            await cur.execute(self._lock_jobs, window, prepare=True)
            more += await cur.fetchall()
            if len(locked) + len(more) < limit:
                end = await self._window_end(cur, window)
        return more

    async def _window_end(
        self, cur: psycopg.AsyncCursor[Any], window: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The key of the last row of ``window`` (claim parameters), or None
        when it is not full."""
        await cur.execute(sql.CLAIM_WINDOW_END, window, prepare=True)
        end: dict[str, Any] | None = await cur.fetchone()
        return end

    async def _reread(self, conn: AnyConnection, locked: list[dict[str, Any]]) -> list[Recheck]:
        """The rows of ``locked`` (keys the walk locked) still in the table, read
        by a fresh statement: one per queue."""
        found: list[Recheck] = []
        async with conn.cursor(row_factory=tuple_row) as cur:
            for rows in by_queue(locked):
                await cur.execute(sql.RECHECK_JOBS, key_params(rows), prepare=True)
                found += await cur.fetchall()
        return found

    async def _hand_out(self, conn: AnyConnection, locked: list[int], found: list[Recheck]) -> int:
        """Hand the re-checked rows to the workers and return how many. The
        locks of rows found gone (finished by another worker after the walk's
        snapshot, or written to since the claim) are released; a
        transaction-level one stays until its hold ends."""
        gone = vanished_ids(locked, found)
        if gone:
            # One may only have been written to since the claim: claim again
            # at once rather than sleep with it due.
            self._wake.set()
            if not self._connections.pgbouncer:
                await conn.execute(sql.UNLOCK_JOBS, {"ids": id_array(gone)}, prepare=True)
        generation = self._book.generation
        for row in found:
            job, problem = job_from_values(AsyncJob, row)
            handle = AsyncJobHandle(
                job,
                self.client.backoff,
                self._give_back,
                lend=self._connections.take,
                problem=problem,
                synchronous_commit=self.synchronous_commit,
            )
            self._book.claimed(job)
            self._cancel_watch.watch(handle)
            self._jobs.put_nowait(Claimed(job, handle, generation))
        if ASYNC:
            self._fill_places()
        return len(found)

    async def _idle_wait(self, conn: AnyConnection, queues: list[str]) -> float:
        """How long to sleep when ``queues`` (those not paused) have nothing due:
        until the next job comes due, and no longer than a pause check period
        while any queue is paused."""
        async with conn.cursor(row_factory=dict_row) as cur:
            names = text_array(list(queues))
            await cur.execute(sql.NEXT_RUN_AT, {"queues": names}, prepare=True)
            row = await cur.fetchone()
        next_run_at = None if row is None else row["next_run_at"]
        interval = self.interval
        if len(queues) < len(self.queues):
            interval = min(interval, self.client.pauses.period)
        return wait_seconds(interval, next_run_at, datetime.now(timezone.utc))

    async def _check_cancels(self, conn: AnyConnection) -> None:
        """Look for cancel requests of the running jobs, once a period."""
        if self.client.extension_version == 0 or not self._book.in_flight:
            return
        now = time.monotonic()
        if now - self._cancels_checked >= self._cancel_watch.period:
            self._cancels_checked = now
            await self._cancel_watch.check(conn)

    async def _wait(self, seconds: float) -> None:
        if self.client.extension_version > 0 and self._book.in_flight:
            # Running jobs: look for cancel requests again within a period.
            seconds = min(seconds, self._cancel_watch.period)
        if seconds > 0:
            await wait_event(self._wake, seconds)
        self._wake.clear()

    def _hand_back_unstarted(self) -> None:
        while True:
            try:
                item = self._jobs.get_nowait()
            except QueueEmpty:
                return
            if item is None:
                self._jobs.put_nowait(None)
                return
            self._cancel_watch.unwatch(item.handle)
            self._book.report(Completion(item.job, item.generation))

    # -- the listener ------------------------------------------------------------

    async def _listener_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            conn: AnyConnection | None = None
            try:
                conn = await self._connections.take_listener()
                cancels = self.client.extension_version > 0
                pauses = self.client.pauses.enabled
                if cancels:
                    await conn.execute(sql.LISTEN_CANCEL)
                if pauses:
                    await conn.execute(sql.LISTEN_PAUSE)
                await conn.execute(sql.LISTEN)
                failures = 0
                while not self._stop.is_set():
                    async for note in conn.notifies(timeout=0.5):
                        if note.channel == sql.CANCEL_CHANNEL:
                            if note.payload.isdigit():
                                self._cancel_watch.requested(int(note.payload))
                        elif note.channel == sql.PAUSE_CHANNEL:
                            # The table says what changed: read it on the next turn.
                            self.client.pauses.stale()
                            self._wake.set()
                        elif note.payload in self.queues:
                            self._wake.set()
                await conn.execute(sql.UNLISTEN)
                if cancels:
                    await conn.execute(sql.UNLISTEN_CANCEL)
                if pauses:
                    await conn.execute(sql.UNLISTEN_PAUSE)
                await self._connections.give_back_listener(conn)
                conn = None
            except psycopg.Error as exc:
                failures += 1
                delay = retry_delay(failures, self.interval)
                log_loop_error(logger, self.queues, exc, failures, delay)
                observers.loop_error("listener", exc)
                if conn is not None:
                    await self._connections.drop_listener(conn)
                await wait_event(self._stop, delay)

    # -- the workers ---------------------------------------------------------------

    if ASYNC:

        def _fill_places(self) -> None:
            """Start a task for each waiting job a free place can take. The job runs
            in it (not in a task of its own that a worker task waits on): its
            context is its own, and a cancel request stops it alone."""
            if self._filling:
                # A job that ended inside create_task (an eager task factory):
                # the loop below goes on filling.
                return
            self._filling = True
            try:
                while self._free_places and not self._jobs.empty():
                    item = self._jobs.get_nowait()
                    assert item is not None
                    self._free_places -= 1
                    task = self._context.run(self._loop.create_task, self._job_task(item))
                    self._job_tasks.add(task)
                    task.add_done_callback(self._job_tasks.discard)
            finally:
                self._filling = False

        async def _job_task(self, item: Claimed) -> None:
            cancelled = False
            try:
                await self._run_job(item)
            except Cancelled:
                cancelled = True
                raise
            finally:
                self._free_places += 1
                if not (cancelled or self._torn_down()):
                    self._fill_places()

        def _torn_down(self) -> bool:
            """Whether the engine is being stopped from outside, as when a loop is
            torn down without shutdown(): its locker has ended, or this job's
            task was asked to cancel even though its work swallowed that. No job
            may start then: its lock may go with the locker's session. (Not the
            locker's own cancel count: on Python 3.12 its timed waits cancel it
            for a moment. Python 3.10 does not count cancels: a swallowed one
            goes unseen there.)"""
            task = asyncio.current_task()
            return self._locker[0].done() or (task is not None and cancel_count(task) > 0)

    else:

        async def _worker_loop(self) -> None:
            while True:
                item = await self._jobs.get()
                if item is None:
                    return
                await self._run_job(item)

    async def _run_job(self, item: Claimed) -> None:
        """Run one claimed job and report its outcome to the locker."""
        # Shutting down, its queue paused since the claim, or the session
        # that claimed it lost (its lock with it): give it back unstarted.
        if (
            self._stop.is_set()
            or self.client.pauses.is_paused(item.job.queue)
            or self._unlocked(item)
        ):
            self._cancel_watch.unwatch(item.handle)
            self._book.report(Completion(item.job, item.generation))
            self._wake.set()
            return
        job_id = id(item.job)
        self._running.add(job_id)
        began = time.monotonic()
        error_count = item.job.error_count
        try:
            verdict = await self._perform(item.job, item.handle)
        except Cancelled:
            # The task is being cancelled: the job goes back untouched.
            self._book.report(Completion(item.job, item.generation))
            self._wake.set()
            raise
        finally:
            self._cancel_watch.unwatch(item.handle)
            self._sizer.observe_job(time.monotonic() - began)
            self._running.discard(job_id)
        cancelled = item.handle.cancelled
        verdict = settle(
            verdict,
            item.job.type,
            error_count,
            self.limits,
            cancelled=cancelled,
            extension=self.client.extension_version > 0,
        )
        self._book.report(Completion(item.job, item.generation, verdict, cancelled))
        # Set once: setting a set event still takes its lock (sync face), and
        # the locker collects every report made before it clears the event.
        if not self._wake.is_set() and self._book.worth_waking(self._jobs.qsize()):
            self._wake.set()

    def _unlocked(self, item: Claimed) -> bool:
        """Whether ``item`` was claimed on a locker session since replaced: its
        lock went with it, and another worker may be running it now. (A hold
        behind PgBouncer lives until its jobs are written: not checked.)"""
        return not self._connections.pgbouncer and item.generation != self._book.generation

    async def _perform(self, job: AsyncJob, handle: AsyncJobHandle) -> Verdict:
        func = self.work_map.get(job.type)
        started = time.monotonic()
        try:
            limit = self._timeouts.seconds(job.type)
            return await perform(job, func, limit, self._watchdog, job_task=ASYNC)
        except (KeyboardInterrupt, SystemExit) as exc:
            # From a work function: give the job back untouched (it runs
            # again) and keep this worker alive.
            log_outcome(job, started, f"interrupted: {type(exc).__name__}")
            return UNLOCK
        finally:
            await handle.done()

    async def _give_back(self, handle: AsyncJobHandle) -> None:
        """Return the connection a job borrowed; its lock stays with the locker."""
        conn = handle.detach()
        if conn is not None:
            await self._connections.reset_and_give_back(conn)
