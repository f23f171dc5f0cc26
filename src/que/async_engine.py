"""AsyncBatchWorker: the batched engine's asyncio face; see engine.py.

One locker session claims batches and holds their locks, worker tasks run
the work functions (sync ones in threads), and outcomes are written in
batches before the locks are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

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
from ._timeouts import OverdueCallback, Timeouts, Watchdog, run_with_timeout
from ._work import (
    check_work_map,
    failure_message,
    is_async_callable,
    log_loop_error,
    log_outcome,
    queue_name,
    retry_delay,
    unknown_type_message,
    wake_interval,
)
from .async_client import AsyncClient
from .engine import check_engine_options
from .errors import QueError
from .job import AsyncJob, job_fields

logger = logging.getLogger(__name__)

AsyncWorkFunc = Callable[[AsyncJob], Any]


@dataclass(eq=False)
class AsyncEngineJob(AsyncJob):
    """An AsyncJob claimed by the engine: its lock belongs to the locker session;
    it borrows a pooled connection only for ``transaction()``, ``delete()`` or
    ``error()`` called by the work function."""

    _borrow: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]] | None = field(
        default=None, init=False, repr=False
    )
    _generation: int = field(default=0, init=False, repr=False)

    async def _ensure_conn(self) -> None:
        if self._conn is None:
            if self._borrow is None or self._finished:
                raise QueError("this job holds no connection: its work has finished")
            self._conn = await self._borrow()

    async def transaction(self) -> psycopg.AsyncConnection[DictRow]:
        await self._ensure_conn()
        return await super().transaction()

    async def delete(self) -> None:
        await self._ensure_conn()
        await super().delete()

    async def error(self, message: str, *, retry_in: float | None = None) -> None:
        await self._ensure_conn()
        await super().error(message, retry_in=retry_in)


class AsyncBatchWorker:
    """Works one queue with ``concurrency`` tasks fed by one locker session.

    An async work function past its timeout (``timeout`` for all types,
    ``timeouts`` per type) is cancelled and fails with JobTimeoutError, so the
    job is retried after the backoff; a sync one, run in a thread, is reported
    as BatchWorker reports it.
    """

    def __init__(
        self,
        client: AsyncClient,
        work_map: dict[str, AsyncWorkFunc],
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
        if not isinstance(client, AsyncClient):
            raise TypeError(
                f"AsyncBatchWorker needs a que.AsyncClient, not {type(client).__name__}"
            )
        extra = check_engine_options(concurrency, buffer, listen, client.max_connections)
        self.client = client
        self.work_map = check_work_map(work_map, worker="AsyncBatchWorker", allow_async=True)
        self.queue = queue_name(queue)
        self.interval = wake_interval(interval)
        self.concurrency = concurrency
        self.listen = listen
        self._sizer = BufferSizer(concurrency, extra)
        self._book = EngineBook(capacity=concurrency + self._sizer.buffer(), backoff=client.backoff)
        self._jobs: asyncio.Queue[AsyncEngineJob | None] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._locker: asyncio.Task[None] | None = None
        self._timeouts = Timeouts(timeout, dict(timeouts or {}))
        self._watchdog = Watchdog(self._timeouts, on_overdue)
        self.running = 0

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        """Start the locker, listener and worker tasks on the running loop."""
        if self._locker is not None:
            raise QueError("this AsyncBatchWorker was already started")
        self.client._check_open()
        self._watchdog.start()
        self._locker = asyncio.create_task(self._locker_loop(), name="que-batch-locker")
        if self.listen:
            self._tasks.append(
                asyncio.create_task(self._listener_loop(), name="que-batch-listener")
            )
        for number in range(self.concurrency):
            self._tasks.append(
                asyncio.create_task(self._worker_loop(), name=f"que-batch-worker-{number}")
            )

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop claiming, hand back jobs not yet started, let running jobs finish,
        write their outcomes and release every lock. False if ``timeout`` ran out."""
        self._stop.set()
        self._wake.set()
        if self._locker is None:
            return True
        done, _ = await asyncio.wait([self._locker], timeout=timeout)
        if not done:
            logger.warning(
                "AsyncBatchWorker shutdown timed out with %d job(s) running", self.running
            )
            return False
        for _ in range(self.concurrency):
            self._jobs.put_nowait(None)
        await asyncio.wait(self._tasks, timeout=timeout)
        return True

    @property
    def overdue_total(self) -> int:
        """Sync work functions (in threads) that ran past their timeout since start."""
        return self._watchdog.overdue_total

    # -- the locker --------------------------------------------------------------

    async def _locker_loop(self) -> None:
        conn: psycopg.AsyncConnection[Any] | None = None
        failures = 0
        try:
            while True:
                try:
                    if conn is None:
                        conn = await self._open_locker()
                    if await self._step(conn):
                        return
                    failures = 0
                except Exception as exc:  # logged; the session is dropped and reopened
                    failures += 1
                    delay = retry_delay(failures, self.interval)
                    log_loop_error(logger, self.queue, exc, failures, delay)
                    if conn is not None:
                        await self._drop(conn)
                        conn = None
                    await self._wait(delay)
        finally:
            self._watchdog.stop()
            if conn is not None:
                if self._book.in_flight:
                    await self._drop(conn)
                else:
                    await self.client._checkin(conn)

    async def _step(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        book = self._book
        book.collect()
        if self._stop.is_set():
            # Jobs not started go back with this turn's writes, not a turn later.
            self._hand_back_unstarted()
            book.collect()
            await self._write_and_claim(conn, 0)
            if book.idle():
                return True
            await self._wait(self.interval)
            return False
        linger = book.linger_left(self.running, self._jobs.qsize(), time.monotonic())
        if linger > 0:
            await self._wait(linger)
            return False
        book.capacity = self.concurrency + self._sizer.buffer()
        limit = book.claim_limit()
        began = time.monotonic()
        claimed = await self._write_and_claim(conn, limit)
        if claimed:
            self._sizer.observe_cycle(time.monotonic() - began)
        if limit == 0:
            await self._wait(min(self.interval, SATURATED_WAIT))
        elif claimed < limit:
            await self._wait(await self._idle_wait(conn))
        return False

    async def _write_and_claim(self, conn: psycopg.AsyncConnection[Any], limit: int) -> int:
        """Outcomes, unlocks and the next claim in one round trip; see BatchWorker."""
        book = self._book
        if not book.has_writes() and limit == 0:
            return 0
        claim = conn.cursor(row_factory=dict_row)
        # One round trip: the writes commit in their own transaction before
        # the unlocks run (unlocking first would let another worker re-check
        # and run a job whose delete is not committed yet), then the claim,
        # which sees those commits.
        async with conn.pipeline():
            if book.to_delete or book.to_fail:
                await conn.execute(sql.BEGIN)
                if book.to_delete:
                    await conn.execute(
                        sql.DELETE_JOBS, book.delete_params(self.queue), prepare=True
                    )
                if book.to_fail:
                    await conn.execute(
                        sql.SET_JOBS_ERROR, book.fail_params(self.queue), prepare=True
                    )
                await conn.execute(sql.COMMIT)
            unlock = book.unlock_ids()
            if unlock:
                await conn.execute(sql.UNLOCK_JOBS, {"ids": id_array(unlock)}, prepare=True)
            if limit > 0:
                params = {"queue": self.queue, "limit": limit, "held": id_array(book.held_ids())}
                await claim.execute(sql.LOCK_JOBS, params, prepare=True)
        book.written()
        if limit == 0:
            return 0
        locked = await claim.fetchall()
        return await self._recheck(conn, locked) if locked else 0

    async def _recheck(
        self, conn: psycopg.AsyncConnection[Any], locked: list[dict[str, Any]]
    ) -> int:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.RECHECK_JOBS, key_params(locked, self.queue), prepare=True)
            found = await cur.fetchall()
            gone = vanished_ids(locked, found)
            if gone:
                await cur.execute(sql.UNLOCK_JOBS, {"ids": id_array(gone)}, prepare=True)
        for row in found:
            job = AsyncEngineJob(**job_fields(row))
            job._set_claimed(self.client.backoff)
            job._borrow = self._borrow
            job._release = self._give_back
            job._generation = self._book.generation
            self._book.claimed(job)
            self._jobs.put_nowait(job)
        return len(found)

    async def _idle_wait(self, conn: psycopg.AsyncConnection[Any]) -> float:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.NEXT_RUN_AT, {"queue": self.queue}, prepare=True)
            row = await cur.fetchone()
        next_run_at = None if row is None else row["next_run_at"]
        return wait_seconds(self.interval, next_run_at, datetime.now(timezone.utc))

    async def _wait(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(asyncio.TimeoutError):  # TimeoutError from 3.11
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _hand_back_unstarted(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except asyncio.QueueEmpty:
                return
            if job is None:
                self._jobs.put_nowait(None)
                return
            self._book.report(Completion(job, job._generation, Outcome.UNLOCK))

    async def _open_locker(self) -> psycopg.AsyncConnection[Any]:
        conn: psycopg.AsyncConnection[Any] = await self.client._pool.getconn()
        try:
            if not conn.autocommit:
                await conn.set_autocommit(True)
        except BaseException:
            await self._drop(conn)
            raise
        self._book.new_session()
        return conn

    async def _drop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.close()  # closing the session releases every lock it held
        await self.client._pool.putconn(conn)

    # -- the listener ------------------------------------------------------------

    async def _listener_loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self.client._pool.getconn()
                if not conn.autocommit:
                    await conn.set_autocommit(True)
                await conn.execute(sql.LISTEN)
                failures = 0
                while not self._stop.is_set():
                    async for note in conn.notifies(timeout=0.5):
                        if note.payload == self.queue:
                            self._wake.set()
                await conn.execute(sql.UNLISTEN)
                await self.client._checkin(conn)
                conn = None
            except psycopg.Error as exc:
                failures += 1
                delay = retry_delay(failures, self.interval)
                log_loop_error(logger, self.queue, exc, failures, delay)
                if conn is not None:
                    await self._drop(conn)
                with contextlib.suppress(asyncio.TimeoutError):  # TimeoutError from 3.11
                    await asyncio.wait_for(self._stop.wait(), delay)

    # -- the workers ---------------------------------------------------------------

    async def _worker_loop(self) -> None:
        while True:
            job = await self._jobs.get()
            if job is None:
                return
            if self._stop.is_set():
                self._book.report(Completion(job, job._generation, Outcome.UNLOCK))
                self._wake.set()
                continue
            self.running += 1
            began = time.monotonic()
            try:
                outcome, message = await self._perform(job)
            except asyncio.CancelledError:
                # The task is being cancelled: the job goes back untouched.
                self._book.report(Completion(job, job._generation, Outcome.UNLOCK))
                self._wake.set()
                raise
            finally:
                self._sizer.observe_job(time.monotonic() - began)
                self.running -= 1
            self._book.report(Completion(job, job._generation, outcome, message))
            if self._book.worth_waking(self._jobs.qsize()):
                self._wake.set()

    async def _perform(self, job: AsyncEngineJob) -> tuple[Outcome, str]:
        started = time.monotonic()
        func = self.work_map.get(job.type)
        try:
            if func is None:
                log_outcome(job, started, "unknown type")
                return Outcome.FAIL, unknown_type_message(job.type)
            try:
                limit = self._timeouts.seconds(job.type)
                if is_async_callable(func):
                    result = await run_with_timeout(func(job), job, limit)
                else:
                    self._watchdog.started(job)
                    try:
                        result = await asyncio.to_thread(func, job)
                    finally:
                        self._watchdog.finished(job)
                if hasattr(result, "__await__"):
                    await run_with_timeout(result, job, limit)
                if job._in_tx and not job.deleted:
                    await job.delete()
            except Exception as exc:
                log_outcome(job, started, f"failed: {type(exc).__name__}: {exc}")
                if job._error_written:
                    return Outcome.UNLOCK, ""
                return Outcome.FAIL, failure_message(exc)
            except (KeyboardInterrupt, SystemExit) as exc:
                log_outcome(job, started, f"interrupted: {type(exc).__name__}")
                return Outcome.UNLOCK, ""
            log_outcome(job, started, "done")
            if job.deleted or job._error_written:
                return Outcome.UNLOCK, ""
            return Outcome.DELETE, ""
        finally:
            await job.done()

    async def _borrow(self) -> psycopg.AsyncConnection[Any]:
        conn: psycopg.AsyncConnection[Any] = await self.client._pool.getconn()
        if not conn.autocommit:
            await conn.set_autocommit(True)
        return conn

    async def _give_back(self, job: AsyncJob) -> None:
        conn = job._conn
        job._conn = None
        if conn is None:
            return
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
        except psycopg.Error:
            await conn.close()
        job._in_tx = False
        await self.client._checkin(conn)
