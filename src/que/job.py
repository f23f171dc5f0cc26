"""Job and JobStats records, and the sync Job's finish operations."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row

from . import sql
from ._jobs import DEFAULT_PRIORITY
from .backoff import DEFAULT_BACKOFF, Backoff
from .errors import QueError

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class BaseJob:
    """The fields of a Que job; what the sync Job and AsyncJob share.

    To enqueue, only ``type`` is required: ``Job(type="SendEmail", args=[42])``.
    ``id``, ``error_count`` and ``last_error`` are filled in by the database.
    """

    type: str = ""
    args: Any = field(default_factory=list)
    queue: str = ""
    priority: int = DEFAULT_PRIORITY
    run_at: datetime | None = None
    id: int | None = None
    error_count: int = 0
    last_error: str | None = None

    _backoff: Backoff = field(default=DEFAULT_BACKOFF, init=False, repr=False)
    _in_tx: bool = field(default=False, init=False, repr=False)
    _deleted: bool = field(default=False, init=False, repr=False)
    _finished: bool = field(default=False, init=False, repr=False)
    _error_written: bool = field(default=False, init=False, repr=False)

    @property
    def deleted(self) -> bool:
        """True once delete() has removed the row."""
        return self._deleted

    def _key(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "priority": self.priority,
            "run_at": self.run_at,
            "job_id": self.id,
        }

    def _error_params(self, message: str, retry_in: float | None) -> dict[str, Any]:
        if retry_in is None:
            delay = self._backoff.delay(self.type, self.error_count + 1)
        else:
            delay = retry_in
        return {**self._key(), "delay": float(delay), "last_error": message.replace("\x00", "\\0")}

    def _apply_error(self, row: Mapping[str, Any] | None, message: str) -> None:
        if row is None:
            raise QueError(f"job {self.id} is no longer in que_jobs; its error was not recorded")
        self.error_count = row["error_count"]
        self.run_at = row["run_at"]
        self.last_error = message
        self._error_written = True

    def _log_lost_row(self) -> None:
        logger.warning(
            "job %s id=%s was already finished by another worker (this one lost its lock); "
            "its transaction is rolled back",
            self.type,
            self.id,
        )

    def _set_claimed(self, backoff: Backoff) -> None:
        self._backoff = backoff


def job_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of a job read from a que_jobs row."""
    return {
        "type": row["job_class"],
        "args": row["args"],
        "queue": row["queue"],
        "priority": row["priority"],
        "run_at": row["run_at"],
        "id": row["job_id"],
        "error_count": row["error_count"],
        "last_error": row["last_error"],
    }


@dataclass(eq=False)
class Job(BaseJob):
    """A Que job. A job returned by ``Client.lock_job`` holds an advisory lock
    and a pooled connection until ``done()``; use it as a context manager so
    that ``done()`` always runs."""

    _conn: psycopg.Connection[DictRow] | None = field(default=None, init=False, repr=False)
    _release: Callable[[Job], None] | None = field(default=None, init=False, repr=False)

    @property
    def conn(self) -> psycopg.Connection[DictRow]:
        """The claiming connection (autocommit unless ``tx`` was opened)."""
        if self._conn is None:
            raise QueError("this job holds no connection: it was not locked, or done() ran")
        return self._conn

    @property
    def tx(self) -> psycopg.Connection[DictRow]:
        """The claiming connection inside a transaction, opened on first use.

        The job's own writes through it commit together with ``delete()``;
        ``error()`` and ``done()`` roll them back.
        """
        conn = self.conn
        if not self._in_tx:
            conn.autocommit = False
            self._in_tx = True
        return conn

    def delete(self) -> None:
        """Delete the job's row; commits the job's transaction if it opened one.

        If the row was already gone (another worker finished the job after
        this one lost its lock), the job's transaction is rolled back instead,
        so its effects are recorded once.
        """
        conn = self.conn
        cur = conn.execute(sql.DELETE_JOB, self._key(), prepare=True)
        if self._in_tx:
            if cur.rowcount == 0:
                self._log_lost_row()
                conn.rollback()
            else:
                conn.commit()
            self._end_tx()
        self._deleted = True

    def transaction(self) -> psycopg.Connection[DictRow]:
        """The same as ``tx``; the spelling the asyncio twin shares."""
        return self.tx

    def error(self, message: str, *, retry_in: float | None = None) -> None:
        """Record a failure: error_count + 1, last_error, run_at = now() + backoff.

        Rolls back the job's own transaction first, if it opened one.
        """
        conn = self.conn
        if self._in_tx:
            conn.rollback()
            self._end_tx()
        params = self._error_params(message, retry_in)
        # A dict_row cursor: the connection may come from a caller's pool with tuple rows.
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(sql.SET_JOB_ERROR, params, prepare=True).fetchone()
        self._apply_error(row, message)

    def done(self) -> None:
        """Release the advisory lock and return the connection. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        if self._release is not None:
            self._release(self)

    def _end_tx(self) -> None:
        if self._conn is not None:
            self._conn.autocommit = True
        self._in_tx = False

    def __enter__(self) -> Job:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done()


@dataclass(eq=False)
class AsyncJob(BaseJob):
    """The asyncio twin of Job, returned by ``AsyncClient.lock_job``.

    Use ``async with`` so that ``done()`` always runs.
    """

    _conn: psycopg.AsyncConnection[DictRow] | None = field(default=None, init=False, repr=False)
    _release: Callable[[AsyncJob], Awaitable[None]] | None = field(
        default=None, init=False, repr=False
    )

    @property
    def conn(self) -> psycopg.AsyncConnection[DictRow]:
        """The claiming connection (autocommit unless ``transaction()`` was opened)."""
        if self._conn is None:
            raise QueError("this job holds no connection: it was not locked, or done() ran")
        return self._conn

    async def transaction(self) -> psycopg.AsyncConnection[DictRow]:
        """The claiming connection inside a transaction, opened on first call.

        The job's own writes through it commit together with ``delete()``;
        ``error()`` and ``done()`` roll them back.
        """
        conn = self.conn
        if not self._in_tx:
            await conn.set_autocommit(False)
            self._in_tx = True
        return conn

    async def delete(self) -> None:
        """Delete the job's row; commits the job's transaction if it opened one,
        or rolls it back if the row was already gone (see Job.delete)."""
        conn = self.conn
        cur = await conn.execute(sql.DELETE_JOB, self._key(), prepare=True)
        if self._in_tx:
            if cur.rowcount == 0:
                self._log_lost_row()
                await conn.rollback()
            else:
                await conn.commit()
            await self._end_tx()
        self._deleted = True

    async def error(self, message: str, *, retry_in: float | None = None) -> None:
        """Record a failure: error_count + 1, last_error, run_at = now() + backoff."""
        conn = self.conn
        if self._in_tx:
            await conn.rollback()
            await self._end_tx()
        params = self._error_params(message, retry_in)
        # A dict_row cursor: the connection may come from a caller's pool with tuple rows.
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.SET_JOB_ERROR, params, prepare=True)
            row = await cur.fetchone()
        self._apply_error(row, message)

    async def done(self) -> None:
        """Release the advisory lock and return the connection. Safe to call twice."""
        if self._finished:
            return
        self._finished = True
        if self._release is not None:
            await self._release(self)

    async def _end_tx(self) -> None:
        if self._conn is not None:
            await self._conn.set_autocommit(True)
        self._in_tx = False

    async def __aenter__(self) -> AsyncJob:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.done()


@dataclass(frozen=True)
class JobStats:
    """Counts for one (queue, type) pair of que_jobs."""

    queue: str
    type: str
    count: int
    count_working: int
    count_errored: int
    highest_error_count: int
    oldest_run_at: datetime


def stats_from_row(row: Mapping[str, Any]) -> JobStats:
    return JobStats(
        queue=row["queue"],
        type=row["job_class"],
        count=row["count"],
        count_working=row["count_working"],
        count_errored=row["count_errored"],
        highest_error_count=row["highest_error_count"],
        oldest_run_at=row["oldest_run_at"],
    )


__all__ = ["AsyncJob", "BaseJob", "Job", "JobStats", "job_fields", "stats_from_row"]
