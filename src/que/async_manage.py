"""AsyncJobs and AsyncDeadJobs: look at jobs and act on them by id, as
``client.jobs`` and ``client.dead``.

Every action on a job in que_jobs runs in one transaction on a pooled
connection and follows the Que protocol: it takes the job's advisory lock with
``pg_try_advisory_xact_lock`` (a job a Python, Ruby or Go worker is running
holds it, so the action is refused instead of racing the worker's outcome),
re-reads the row, writes it by its full key and commits, which unlocks.
Transaction-level locks also work behind PgBouncer in transaction pooling.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from . import sql
from ._extension_base import missing_extension_message
from ._jobs import check_priority, check_run_at
from ._manage_base import (
    CANCELLED_BEFORE_RUN,
    DEFAULT_LIMIT,
    CancelResult,
    DeadJobRecord,
    JobRecord,
    Page,
    check_job_id,
    check_wait,
    dead_cursor,
    dead_filter_params,
    dead_list_params,
    dead_not_found_error,
    dead_record,
    job_cursor,
    job_record,
    key_batches,
    list_params,
    lock_timeout,
    locked_error,
    names_extension_table,
    not_found_error,
    only_ids,
    page,
    purge_params,
    retry_failed_params,
)
from .async_connections import AsyncConnections
from .errors import InvalidJobError, JobLockedError, QueError, SchemaVersionError

Cursor = psycopg.AsyncCursor[DictRow]


@asynccontextmanager
async def _missing_extension(feature: str) -> AsyncIterator[None]:
    """Turn "relation que_dead_jobs does not exist" into a message that says what to do."""
    try:
        yield
    except psycopg.errors.UndefinedTable as exc:
        if names_extension_table(str(exc)):
            raise SchemaVersionError(missing_extension_message(feature)) from exc
        raise


@asynccontextmanager
async def _transaction(connections: AsyncConnections, feature: str) -> AsyncIterator[Cursor]:
    """A cursor in a transaction of its own; commits at the end, rolls back on an error.
    Its transaction-level advisory locks end with it."""
    connections.check_open()
    conn = await connections.take()
    try:
        async with (
            _missing_extension(feature),
            conn.transaction(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            yield cur
    finally:
        await connections.give_back(conn)


@asynccontextmanager
async def _autocommit(connections: AsyncConnections, feature: str) -> AsyncIterator[Cursor]:
    async with _missing_extension(feature), connections.cursor() as cur:
        yield cur


async def _fetch(cur: Cursor, query: str, params: dict[str, Any]) -> DictRow | None:
    # Never prepared: a listing's plan depends on which filters are set, and
    # behind PgBouncer nothing may be prepared at all.
    await cur.execute(query, params, prepare=False)
    return await cur.fetchone()


async def _read(cur: Cursor, job_id: int) -> DictRow | None:
    return await _fetch(cur, sql.GET_JOB, {"job_id": job_id})


async def _dead_row(cur: Cursor, job_id: int) -> DictRow | None:
    """The job's que_dead_jobs row, for a message; None also without the extension."""
    present = await _fetch(cur, sql.EXTENSION_TABLE_EXISTS, {})
    if present is None or not present["present"]:
        return None
    return await _fetch(cur, sql.GET_DEAD_JOB, {"job_id": job_id})


async def _locked_row(cur: Cursor, job_id: int, action: str, hint: str = "") -> DictRow:
    """Lock the job for this transaction and re-read it; refuse it when it is gone or
    a worker holds it."""
    got = await _fetch(cur, sql.TRY_LOCK_JOB_XACT, {"job_id": job_id})
    row = await _read(cur, job_id)
    if row is None:
        raise not_found_error(job_id, await _dead_row(cur, job_id))
    if got is None or not got["locked"]:
        raise locked_error(job_id, action, hint)
    return row


def _key(row: DictRow) -> dict[str, Any]:
    return {name: row[name] for name in ("queue", "priority", "run_at", "job_id")}


def _changed(job_id: int, action: str) -> QueError:
    return QueError(
        f"job {job_id} changed while it was being {action} (something wrote it without "
        "taking its lock); nothing was changed, try again"
    )


class AsyncJobs:
    """Jobs in que_jobs: list, show, retry, reschedule, reprioritise, delete, cancel."""

    def __init__(self, connections: AsyncConnections) -> None:
        self._connections = connections

    async def list(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        state: str | None = None,
        older_than: timedelta | None = None,
        args_contain: Any = None,
        after: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[JobRecord]:
        """One page of jobs in primary-key order (queue, priority, run_at, id).

        ``state``: 'ready' (due, not running), 'scheduled' (due later),
        'failed' (failed at least once) or 'locked' (running: a worker holds
        its lock). ``older_than``: due longer ago than that. ``args_contain``:
        a JSON value the args contain (jsonb ``@>``). ``after``: the ``next``
        of the previous page. Jobs that move while you page (retried,
        finished) may be skipped or seen twice, as with any keyset paging.
        """
        params = list_params(
            queue=queue,
            type=type,
            state=state,
            older_than=older_than,
            args_contain=args_contain,
            after=after,
            limit=limit,
        )
        async with _autocommit(self._connections, "listing jobs") as cur:
            await cur.execute(sql.LIST_JOBS, params, prepare=False)
            rows = await cur.fetchall()
        return page([job_record(row) for row in rows], limit, job_cursor)

    async def get(self, job_id: int) -> JobRecord | None:
        """The job with its whole last_error and whether it is running; None if it
        is not in que_jobs."""
        job_id = check_job_id(job_id)
        async with _autocommit(self._connections, "reading a job") as cur:
            row = await _read(cur, job_id)
        return None if row is None else job_record(row)

    async def retry(self, job_id: int) -> JobRecord:
        """Make the job due now, keeping its error count.

        Raises JobLockedError while a worker runs it, JobNotFoundError when it
        is not in que_jobs.
        """
        return await self._update(job_id, "retried", sql.RETRY_JOB, {})

    async def reschedule(self, job_id: int, run_at: datetime) -> JobRecord:
        """Move the job to ``run_at`` (timezone-aware), as retry() refuses."""
        try:
            new_run_at = check_run_at(run_at)
        except InvalidJobError as exc:
            raise ValueError(str(exc)) from None
        return await self._update(
            job_id, "rescheduled", sql.RESCHEDULE_JOB, {"new_run_at": new_run_at}
        )

    async def set_priority(self, job_id: int, priority: int) -> JobRecord:
        """Give the job another priority (lower runs sooner), as retry() refuses."""
        try:
            new_priority = check_priority(priority)
        except InvalidJobError as exc:
            raise ValueError(str(exc)) from None
        return await self._update(
            job_id, "given a new priority", sql.SET_JOB_PRIORITY, {"new_priority": new_priority}
        )

    async def _update(
        self, job_id: int, action: str, statement: str, values: dict[str, Any]
    ) -> JobRecord:
        job_id = check_job_id(job_id)
        async with _transaction(self._connections, "changing a job") as cur:
            row = await _locked_row(cur, job_id, action)
            updated = await _fetch(cur, statement, {**_key(row), **values})
            if updated is None:
                raise _changed(job_id, action)
        return job_record(updated, locked=False)

    async def retry_failed(self, *, type: str | None = None, queue: str | None = None) -> int:
        """Make every failed job (of ``type`` and ``queue``) due now; how many were.

        Running jobs, and jobs a worker finishes meanwhile, are skipped. The
        jobs are locked and written a few hundred per transaction.
        """
        params = retry_failed_params(queue=queue, type=type)
        async with _autocommit(self._connections, "retrying jobs") as cur:
            await cur.execute(sql.FAILED_JOB_KEYS, params, prepare=False)
            rows = await cur.fetchall()
        retried = 0
        for batch in key_batches(rows):
            async with _transaction(self._connections, "retrying jobs") as cur:
                await cur.execute(sql.TRY_LOCK_JOBS_XACT, {"ids": batch["ids"]}, prepare=False)
                got = {row["job_id"] for row in await cur.fetchall()}
                if got:
                    await cur.execute(sql.RETRY_JOBS_BY_KEY, only_ids(batch, got), prepare=False)
                    retried += max(cur.rowcount, 0)
        return retried

    async def delete(self, job_id: int, *, wait: float | None = None) -> bool:
        """Delete the job; whether this call deleted it.

        A running job is refused (JobLockedError), unless ``wait`` gives
        seconds to wait for its worker's outcome: then, if the worker deleted
        it meanwhile, this returns False; if it failed or let go of it, it is
        deleted here. JobLockedError too when the wait runs out.
        """
        job_id = check_job_id(job_id)
        seconds = check_wait(wait)
        async with _transaction(self._connections, "deleting a job") as cur:
            if seconds is None:
                row = await _locked_row(
                    cur, job_id, "deleted", " (or give delete() wait=SECONDS to wait for it)"
                )
            else:
                if await _read(cur, job_id) is None:
                    raise not_found_error(job_id, await _dead_row(cur, job_id))
                await _fetch(cur, sql.SET_LOCAL_LOCK_TIMEOUT, {"timeout": lock_timeout(seconds)})
                try:
                    await _fetch(cur, sql.WAIT_LOCK_JOB_XACT, {"job_id": job_id})
                except psycopg.errors.LockNotAvailable:
                    raise JobLockedError(
                        f"job {job_id} was still being worked after {seconds:g}s, so it was "
                        "not deleted; try again when it finishes, or wait longer",
                        job_id,
                    ) from None
                found = await _read(cur, job_id)
                if found is None:
                    return False  # its worker finished it while we waited
                row = found
            if await _fetch(cur, sql.DELETE_JOB_BY_KEY, _key(row)) is None:
                raise _changed(job_id, "deleted")
        return True

    async def cancel(self, job_id: int) -> CancelResult:
        """Stop the job from running: 'removed' when it was not running (it is moved
        to que_dead_jobs as 'cancelled'), 'requested' when it is (its worker is
        asked to stop it; Python workers act on the request, Ruby and Go
        workers ignore it). Needs the que-pg extension.
        """
        job_id = check_job_id(job_id)
        async with _transaction(self._connections, "cancelling a job") as cur:
            got = await _fetch(cur, sql.TRY_LOCK_JOB_XACT, {"job_id": job_id})
            row = await _read(cur, job_id)
            if row is None:
                raise not_found_error(job_id, await _dead_row(cur, job_id))
            if got is None or not got["locked"]:
                await cur.execute(sql.REQUEST_CANCEL, {"job_id": job_id}, prepare=False)
                return "requested"
            params = {
                **_key(row),
                "failed": 0,
                "last_error": None,
                "outcome": "cancelled",
                "reason": CANCELLED_BEFORE_RUN,
            }
            if await _fetch(cur, sql.MOVE_JOB_TO_DEAD, params) is None:
                raise _changed(job_id, "cancelled")
        return "removed"


class AsyncDeadJobs:
    """Jobs in que_dead_jobs (the que-pg extension): list, show, retry, purge.

    Dead jobs are no worker's, so they need no lock; each action is one statement.
    """

    def __init__(self, connections: AsyncConnections) -> None:
        self._connections = connections

    async def list(
        self,
        *,
        queue: str | None = None,
        type: str | None = None,
        outcome: str | None = None,
        after: str | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page[DeadJobRecord]:
        """One page of dead jobs, newest first (by died_at, then id, descending).

        ``outcome``: 'exhausted', 'discarded' or 'cancelled'. ``after``: the
        ``next`` of the previous page.
        """
        params = dead_list_params(queue=queue, type=type, outcome=outcome, after=after, limit=limit)
        async with _autocommit(self._connections, "listing dead jobs") as cur:
            await cur.execute(sql.LIST_DEAD_JOBS, params, prepare=False)
            rows = await cur.fetchall()
        return page([dead_record(row) for row in rows], limit, dead_cursor)

    async def get(self, job_id: int) -> DeadJobRecord | None:
        job_id = check_job_id(job_id)
        async with _autocommit(self._connections, "reading a dead job") as cur:
            row = await _fetch(cur, sql.GET_DEAD_JOB, {"job_id": job_id})
        return None if row is None else dead_record(row)

    async def retry(self, job_id: int) -> JobRecord:
        """Move the job back to que_jobs, due now, with the same id and its attempts
        given back (error_count 0; last_error kept)."""
        job_id = check_job_id(job_id)
        async with _autocommit(self._connections, "retrying a dead job") as cur:
            row = await _fetch(cur, sql.RETRY_DEAD_JOB, {"job_id": job_id})
            if row is None:
                in_queue = await _read(cur, job_id) is not None
                raise dead_not_found_error(job_id, in_queue)
        return job_record(row, locked=False)

    async def retry_all(
        self, *, type: str | None = None, queue: str | None = None, outcome: str | None = None
    ) -> int:
        """retry() every dead job (of ``type``, ``queue``, ``outcome``); how many."""
        params = dead_filter_params(queue=queue, type=type, outcome=outcome)
        async with _autocommit(self._connections, "retrying dead jobs") as cur:
            await cur.execute(sql.RETRY_DEAD_JOBS, params, prepare=False)
            return max(cur.rowcount, 0)

    async def purge(
        self,
        older_than: timedelta | None = None,
        *,
        type: str | None = None,
        queue: str | None = None,
        outcome: str | None = None,
    ) -> int:
        """Delete dead jobs for good: those that died longer than ``older_than`` ago
        (None: all), of ``type``, ``queue``, ``outcome``; how many."""
        params = purge_params(older_than=older_than, queue=queue, type=type, outcome=outcome)
        async with _autocommit(self._connections, "purging dead jobs") as cur:
            await cur.execute(sql.PURGE_DEAD_JOBS, params, prepare=False)
            return max(cur.rowcount, 0)
