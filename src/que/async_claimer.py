"""AsyncClaimer: a classic worker's claims on a session it keeps between jobs.

Que's cycle costs four statements a job: walk, re-check, delete, unlock.
A worker that claims again at once carries the last job's delete in its
next walk (``sql.CLAIM_AFTER_JOB``: one statement, whose commit is the
delete's) and that job's unlock in the re-check after it
(``sql.RECHECK_JOB_AND_UNLOCK``: a later statement, so the unlock still
follows the committed delete, as Que requires). Two statements a job, and
no pool checkout between jobs. ``settle()`` writes whatever is still owed
before the worker sleeps or stops, so no lock outlives the work.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg.rows import TupleRow, tuple_row

from . import sql
from ._client_base import MAX_LOCK_ATTEMPTS, lock_attempts_error
from ._last_error import headline, undecodable_message
from .async_client import AsyncClient
from .async_job_handle import AsyncJob, AsyncJobHandle
from .errors import QueError
from .job import job_from_values, job_key

logger = logging.getLogger(__name__)

AnyConnection = psycopg.AsyncConnection[Any]
Cursor = psycopg.AsyncCursor[TupleRow]

# CLAIM_AFTER_JOB's delete parameters when no delete is owed.
_NO_DELETE: dict[str, Any] = {
    "done_queue": None,
    "done_priority": None,
    "done_run_at": None,
    "done_id": None,
}


class AsyncClaimer:
    """One classic worker's session, and what its last job still owes: its
    delete (when it worked) and its unlock (always)."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._conn: AnyConnection | None = None
        # One cursor for the session's statements, with tuple rows: a cursor and
        # a dict per statement were a measurable share of a job's CPU.
        self._cur: Cursor | None = None
        # The last job: the session still holds its lock ...
        self._held: int | None = None
        # ... and, when it worked, its delete is still to be written.
        self._owed: AsyncJob | None = None

    def owe_delete(self, job: AsyncJob) -> None:
        """``job`` worked: its delete goes with the next claim, or ``settle()``."""
        self._owed = job

    async def claim(self, queue: str) -> AsyncJob | None:
        """The next due job of ``queue`` on this session, or None; any error
        closes the session (releasing its locks) before it is raised."""
        if self._conn is None:
            self._conn = await self._client.connections.take()
            self._cur = self._conn.cursor(row_factory=tuple_row)
        assert self._cur is not None
        try:
            return await self._claim(self._conn, self._cur, queue)
        except BaseException:
            await self.drop()
            raise

    async def _claim(self, conn: AnyConnection, cur: Cursor, queue: str) -> AsyncJob | None:
        for _ in range(MAX_LOCK_ATTEMPTS):
            owed = self._owed
            done = _NO_DELETE if owed is None else _delete_params(owed)
            params = {"queue": queue, "skip": self._held, **done}
            await cur.execute(sql.CLAIM_AFTER_JOB, params, prepare=True)
            locked = await cur.fetchone()
            assert locked is not None  # the statement always returns one row
            deleted, priority, run_at, job_id = locked
            self._owed = None
            if owed is not None and not deleted:
                _log_gone(owed)
            if job_id is None:
                await self._unlock_held(cur)
                return None
            key = {"queue": queue, "priority": priority, "run_at": run_at, "job_id": job_id}
            await cur.execute(
                sql.RECHECK_JOB_AND_UNLOCK, {"unlock": self._held, **key}, prepare=True
            )
            found = await cur.fetchone()
            assert found is not None  # the statement always returns one row
            _check_unlocked(self._held, found[0])
            # The new job's lock is held now, whether or not its row is still there.
            self._held = job_id
            if found[4] is not None:  # its job_id: the row is still there
                job, problem = job_from_values(AsyncJob, found[1:])
                handle = AsyncJobHandle(job, self._client.backoff, self._release, conn=conn)
                if problem is None:
                    return self._client._track(job)
                # Args no worker can decode: recorded as this job's failure
                # (it moves to its retry time), and the walk goes on.
                await handle.error(headline(QueError(undecodable_message(problem))))
            # Gone (another worker finished it after the walk's snapshot), or
            # failed above: the next walk steps over it and its re-check
            # unlocks it.
        raise lock_attempts_error(queue)

    async def _unlock_held(self, cur: Cursor) -> None:
        if self._held is not None:
            await cur.execute(sql.UNLOCK_JOB, {"job_id": self._held}, prepare=True)
            row = await cur.fetchone()
            _check_unlocked(self._held, None if row is None else row[0])
            self._held = None

    async def _release(self, handle: AsyncJobHandle) -> None:
        """The job is done: keep its lock (and the session) for the next claim."""
        job = handle.job
        self._client._untrack(job)
        self._held = job.id
        conn = handle.detach()
        if conn is not None and not await self._client.connections.reset(conn):
            logger.warning("could not reset job %s's connection; dropped it, and its lock", job.id)
            await self.drop()

    async def settle(self) -> None:
        """Write what the last job owes (its delete, then its unlock) and give
        the session back to the pool."""
        conn, cur = self._conn, self._cur
        if conn is None or cur is None:
            return
        try:
            owed = self._owed
            if owed is not None:
                await cur.execute(sql.DELETE_JOB, job_key(owed), prepare=True)
                self._owed = None
                if cur.rowcount == 0:
                    _log_gone(owed)
            await self._unlock_held(cur)
        except BaseException:
            await self.drop()
            raise
        self._conn = self._cur = None
        await cur.close()
        await self._client.connections.give_back(conn)

    async def drop(self) -> None:
        """Close the session, which releases its locks. A delete still owed is
        lost with it: that job runs again."""
        conn, cur = self._conn, self._cur
        self._conn = self._cur = None
        if cur is not None:
            await cur.close()
        if self._owed is not None:
            logger.warning(
                "job %s id=%s worked, but its session was lost before its delete was "
                "written; it will run again",
                self._owed.type,
                self._owed.id,
            )
        self._owed = None
        self._held = None
        if conn is not None:
            await self._client.connections.drop(conn)


def _delete_params(job: AsyncJob) -> dict[str, Any]:
    return {
        "done_queue": job.queue,
        "done_priority": job.priority,
        "done_run_at": job.run_at,
        "done_id": job.id,
    }


def _log_gone(job: AsyncJob) -> None:
    logger.warning(
        "job %s id=%s was already gone at its delete (another worker finished it "
        "after this one lost its lock)",
        job.type,
        job.id,
    )


def _check_unlocked(job_id: int | None, unlocked: object) -> None:
    if job_id is not None and not unlocked:
        logger.warning("job %s was not locked by its session at its unlock", job_id)
