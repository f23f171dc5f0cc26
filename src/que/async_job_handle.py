"""AsyncJob, and the handle that finishes a claimed job: its connection,
its transaction and its state (deleted, error written, done).

A job's fields are a plain record (``BaseJob``); a job returned by a claim
also carries a handle, made here by the code that claimed it (the client,
or an engine), which says how the handle gets a connection and how it gives
the job back. Nothing outside this module touches a handle's connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import sql
from ._acompat import ASYNC, Cancelled, being_cancelled, run_work
from ._last_error import failure_message, headline, storable, undecodable_message
from ._timeouts import Watchdog
from ._work import Outcome, log_outcome
from .backoff import Backoff
from .errors import QueError, UnknownJobTypeError
from .job import BaseJob, job_key

logger = logging.getLogger(__name__)

AnyConnection = psycopg.AsyncConnection[Any]


@dataclass(eq=False)
class AsyncJob(BaseJob):
    """A Que job. One returned by ``AsyncClient.lock_job`` (or
    given to a work function) holds an advisory lock until ``done()``; use
    ``async with`` so that ``done()`` always runs.

    Behind PgBouncer (a client with ``pgbouncer=True``) a job claimed by
    ``lock_job`` lives in its claim's transaction: whatever it writes on
    ``conn`` commits with ``delete()``, and ``error()`` or a bare ``done()``
    rolls it back.
    """

    _handle: AsyncJobHandle | None = field(default=None, init=False, repr=False)

    def _claimed(self) -> AsyncJobHandle:
        if self._handle is None:
            raise QueError("this job holds no connection: it was not locked, or done() ran")
        return self._handle

    @property
    def deleted(self) -> bool:
        """True once delete() has removed the row."""
        return self._handle is not None and self._handle.deleted

    @property
    def conn(self) -> AnyConnection:
        """The connection the job holds: the claiming one (autocommit unless a
        transaction was opened), or one lent by the engine."""
        return self._claimed().conn

    async def connection(self) -> AnyConnection:
        """The job's connection; a job worked by a batched engine borrows one here."""
        return await self._claimed().connection()

    async def transaction(self) -> AnyConnection:
        """The job's connection inside a transaction, opened on first call.

        The job's own writes through it commit together with ``delete()``;
        ``error()`` and ``done()`` roll them back.
        """
        return await self._claimed().transaction()

    if ASYNC:
        pass
    else:

        @property
        def tx(self) -> AnyConnection:
            """The same as ``transaction()``: Go's ``Job.Tx()``."""
            return self.transaction()

    async def delete(self) -> None:
        """Delete the job's row; commits the job's transaction if it opened one.

        If the row was already gone (another worker finished the job after
        this one lost its lock), the job's transaction is rolled back instead,
        so its effects are recorded once.
        """
        await self._claimed().delete()

    async def error(self, message: str, *, retry_in: float | None = None) -> None:
        """Record a failure: error_count + 1, last_error, run_at = now() + backoff
        (or ``retry_in`` seconds). Rolls back the job's own transaction first."""
        await self._claimed().error(message, retry_in=retry_in)

    async def done(self) -> None:
        """Release the advisory lock and return the connection. Safe to call twice."""
        if self._handle is not None:
            await self._handle.done()

    async def __aenter__(self) -> AsyncJob:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.done()


if ASYNC:
    Release = Callable[["AsyncJobHandle"], Awaitable[None]]
    Lend = Callable[[], Awaitable[AnyConnection]]
else:
    Release = Callable[["AsyncJobHandle"], None]
    Lend = Callable[[], AnyConnection]


class AsyncJobHandle:
    """Finishes one claimed job. ``conn`` is the claiming connection (the
    client's ``lock_job``), or ``lend`` borrows one on demand (an engine,
    whose locker session holds the lock). ``release`` gives the job back.

    ``xact``: ``conn`` is in the transaction whose transaction-level lock
    holds the job (PgBouncer mode), with a savepoint taken after the claim.
    Everything the job writes on it is then one transaction with its
    outcome: delete() commits it, error() rolls back to the savepoint and
    commits the error, and done() without either rolls it all back. Ending
    that transaction is what releases the lock.
    """

    # An engine makes one per job: slots keep that cheap.
    __slots__ = (
        "_conn",
        "_lend",
        "_release",
        "backoff",
        "deleted",
        "error_written",
        "finished",
        "in_tx",
        "job",
        "problem",
        "xact",
    )

    def __init__(
        self,
        job: AsyncJob,
        backoff: Backoff,
        release: Release,
        *,
        conn: AnyConnection | None = None,
        lend: Lend | None = None,
        problem: str | None = None,
        xact: bool = False,
    ) -> None:
        self.job = job
        self.xact = xact
        self.problem = problem
        self.backoff = backoff
        self.deleted = False
        self.error_written = False
        self.finished = False
        self.in_tx = False
        self._conn = conn
        self._lend = lend
        self._release = release
        job._handle = self

    @property
    def conn(self) -> AnyConnection:
        if self._conn is None:
            if ASYNC:
                hint = " (call `await job.connection()` first)" if self._lend else ""
                raise QueError(f"this job holds no connection{hint}")
            else:
                return self.connection()
        return self._conn

    async def connection(self) -> AnyConnection:
        if self._conn is None:
            if self._lend is None or self.finished:
                raise QueError("this job holds no connection: its work has finished")
            self._conn = await self._lend()
        return self._conn

    async def transaction(self) -> AnyConnection:
        conn = await self.connection()
        if not self.in_tx:
            if not self.xact:  # with xact, the claim's transaction is already open
                await conn.set_autocommit(False)
            self.in_tx = True
        return conn

    async def delete(self) -> None:
        conn = await self.connection()
        cur = await conn.execute(sql.DELETE_JOB, job_key(self.job), prepare=True)
        if self.xact:
            if cur.rowcount == 0:
                self._warn_finished_elsewhere()
                await conn.rollback()
            else:
                await conn.commit()  # the job's writes, its delete, and the lock's end
            self.in_tx = False
        elif self.in_tx:
            if cur.rowcount == 0:
                self._warn_finished_elsewhere()
                await conn.rollback()
            else:
                await conn.commit()
            await self._end_tx(conn)
        self.deleted = True

    async def error(self, message: str, *, retry_in: float | None = None) -> None:
        conn = await self.connection()
        if self.xact:
            await conn.execute(sql.ROLLBACK_TO_JOB_SAVEPOINT)
            self.in_tx = False
        elif self.in_tx:
            await conn.rollback()
            await self._end_tx(conn)
        job = self.job
        if retry_in is None:
            delay = self.backoff.delay_for_failure(job.type, job.error_count + 1)
        else:
            delay = retry_in
        params = error_params(job, message, delay)
        # A dict_row cursor: the connection may come from a caller's pool with tuple rows.
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.SET_JOB_ERROR, params, prepare=True)
            row = await cur.fetchone()
        if self.xact:
            await conn.commit()  # the error, and the lock's end
        if row is None:
            raise QueError(f"job {job.id} is no longer in que_jobs; its error was not recorded")
        job.error_count = row["error_count"]
        job.run_at = row["run_at"]
        job.last_error = message
        self.error_written = True

    async def done(self) -> None:
        if self.finished:
            return
        self.finished = True
        await self._release(self)

    def detach(self) -> AnyConnection | None:
        """Take the connection away from the job, for its release; None if it had none."""
        conn, self._conn = self._conn, None
        self.in_tx = False
        return conn

    def _warn_finished_elsewhere(self) -> None:
        logger.warning(
            "job %s id=%s was already finished by another worker (this one lost its "
            "lock); its transaction is rolled back",
            self.job.type,
            self.job.id,
        )

    async def _end_tx(self, conn: AnyConnection) -> None:
        await conn.set_autocommit(True)
        self.in_tx = False


async def perform(
    job: AsyncJob, func: Callable[[Any], Any] | None, limit: float | None, watchdog: Watchdog | None
) -> tuple[Outcome, str]:
    """Run a claimed job's work function, and say what is left to write: DELETE
    (it worked), FAIL with its last_error (it raised; an unknown type fails too),
    or UNLOCK (the job wrote its own outcome). What every worker and engine runs."""
    handle = job._claimed()
    started = time.monotonic()
    try:
        if handle.problem is not None:
            raise QueError(undecodable_message(handle.problem))
        if func is None:
            raise UnknownJobTypeError(job.type)
        await run_work(func, job, limit, watchdog)
        if handle.in_tx and not handle.deleted:
            await handle.delete()  # commits the job's own writes with its delete
    except (Exception, Cancelled) as exc:
        if isinstance(exc, Cancelled) and being_cancelled():
            raise  # the worker itself is being stopped: the job goes back untouched
        log_outcome(job, started, f"failed: {headline(exc)}", exc)
        if handle.error_written:
            return Outcome.UNLOCK, ""
        return Outcome.FAIL, failure_message(exc)
    log_outcome(job, started, "done")
    if handle.deleted or handle.error_written:
        return Outcome.UNLOCK, ""
    return Outcome.DELETE, ""


def error_params(job: BaseJob, message: str, delay: float) -> dict[str, Any]:
    """SET_JOB_ERROR parameters: the job's key, its backoff and its message."""
    return {**job_key(job), "delay": float(delay), "last_error": storable(message)}
