"""AsyncClient: the asyncio twin of Client, on psycopg_pool.AsyncConnectionPool.

Every statement, check and row conversion is shared with Client; only the
IO differs. ``async with AsyncClient(url) as client`` opens it (or
``await AsyncClient.connect(url)``), and raises if the database is
unreachable or has the wrong schema version.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Generator, Iterable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from . import sql
from ._client_base import (
    MAX_LOCK_ATTEMPTS,
    AnyJob,
    ClientBase,
    as_connector,
    bulk_params,
    job_params,
    lock_attempts_error,
    pool_conninfo,
    recheck_key,
    set_all_inserted,
    set_inserted,
    stats_rows,
    unlocked,
)
from ._jobs import check_queue
from .backoff import RetryInterval
from .connect import Connector, describe, redact
from .errors import DatabaseUnavailableError, QueError
from .job import AsyncJob, JobStats, job_fields
from .schema import check_version_async

logger = logging.getLogger(__name__)

AnyAsyncPool = psycopg_pool.AsyncConnectionPool[Any]


class AsyncClient(ClientBase[AsyncJob]):
    """A Que client for asyncio code; the same methods as Client, awaited."""

    def __init__(
        self,
        source: str | Connector | AnyAsyncPool,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        retry_intervals: dict[str, RetryInterval] | None = None,
        connect_timeout: float = 10.0,
        check_schema: bool = True,
    ) -> None:
        super().__init__(
            min_connections=min_connections,
            max_connections=max_connections,
            retry_intervals=retry_intervals,
        )
        self._connect_timeout = connect_timeout
        self._check_schema = check_schema
        self._opened = False
        self._connector: Connector | None = None
        if isinstance(source, psycopg_pool.ConnectionPool):
            raise TypeError(
                "AsyncClient needs a psycopg_pool.AsyncConnectionPool; use Client for a sync pool"
            )
        if isinstance(source, psycopg_pool.AsyncConnectionPool):
            self._pool: AnyAsyncPool = source
            self._owns_pool = False
            self._target = describe(pool_conninfo(source))
            self._restore_autocommit = True
            return
        connector = as_connector(source, "AsyncClient", "psycopg_pool.AsyncConnectionPool")
        self._connector = connector
        self._target = connector.describe()
        self._pool = psycopg_pool.AsyncConnectionPool(
            connector.conninfo,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True, "row_factory": dict_row},
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            open=False,
            name="que-async",
        )
        self._owns_pool = True
        self._restore_autocommit = True

    @classmethod
    async def connect(cls, source: str | Connector | AnyAsyncPool, **options: Any) -> AsyncClient:
        """Create and open a client (Go's MustNewClient): raises if the database is unusable."""
        client = cls(source, **options)
        await client.open()
        return client

    async def open(self) -> None:
        """Contact the database: check it is reachable and at the right schema version."""
        if self._opened:
            return
        timeout = self._connect_timeout
        if self._owns_pool:
            assert self._connector is not None
            await self._check_direct(self._connector)
            try:
                await self._pool.open(wait=True, timeout=timeout)
            except psycopg_pool.PoolTimeout as exc:
                await self._pool.close()
                raise DatabaseUnavailableError(
                    f"cannot open a connection pool to {self._target}"
                ) from exc
        else:
            await self._check_given_pool(timeout)
        self._opened = True

    async def _check_direct(self, connector: Connector) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(
                connector.conninfo,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout)),
            )
        except psycopg.OperationalError as exc:
            message = redact(str(exc), connector.conninfo)
            raise DatabaseUnavailableError(f"cannot connect to {self._target}: {message}") from exc
        async with conn:
            if self._check_schema:
                await check_version_async(conn)

    async def _check_given_pool(self, timeout: float) -> None:
        try:
            async with self._pool.connection(timeout=timeout) as conn:
                self._restore_autocommit = bool(conn.autocommit)
                if self._check_schema:
                    await check_version_async(conn)
        except psycopg_pool.PoolTimeout as exc:
            raise DatabaseUnavailableError(
                f"no connection from the given pool to {self._target} within {timeout}s"
            ) from exc
        except psycopg.OperationalError as exc:
            message = redact(str(exc), pool_conninfo(self._pool))
            raise DatabaseUnavailableError(f"cannot reach {self._target}: {message}") from exc

    # -- enqueue ---------------------------------------------------------------

    async def enqueue(
        self, job: AnyJob, *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> AnyJob:
        """Insert ``job`` and return it with ``id`` and ``run_at`` set.

        With ``conn``, the insert joins that connection's transaction and is
        never committed here.
        """
        params = job_params(job)
        if conn is not None:
            _check_async_conn(conn)
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.INSERT_JOB, params.as_params(), prepare=True)
                row = await cur.fetchone()
        else:
            async with self._connection() as cur:
                await cur.execute(sql.INSERT_JOB, params.as_params(), prepare=True)
                row = await cur.fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        set_inserted(job, params, row)
        return job

    async def enqueue_in_tx(self, job: AnyJob, conn: psycopg.AsyncConnection[Any]) -> AnyJob:
        """``enqueue(job, conn=conn)``."""
        return await self.enqueue(job, conn=conn)

    async def enqueue_many(
        self, jobs: Iterable[AnyJob], *, conn: psycopg.AsyncConnection[Any] | None = None
    ) -> list[AnyJob]:
        """Insert many jobs in one statement (one round trip); all or none are written."""
        batch = list(jobs)
        if not batch:
            return batch
        params = [job_params(job) for job in batch]
        if conn is not None:
            _check_async_conn(conn)
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.INSERT_JOBS, bulk_params(params))
                rows = await cur.fetchall()
        else:
            async with self._connection() as cur:
                await cur.execute(sql.INSERT_JOBS, bulk_params(params))
                rows = await cur.fetchall()
        set_all_inserted(batch, params, rows)
        return batch

    # -- claim -----------------------------------------------------------------

    def lock_job(self, queue: str = "") -> LockJobCall:
        """Claim the next due job of ``queue``: ``await`` it for an AsyncJob or None,
        or ``async with client.lock_job() as job:`` to have ``done()`` run at the end."""
        return LockJobCall(self, queue)

    async def _lock_job(self, queue: str) -> AsyncJob | None:
        check_queue(queue)
        self._check_open()
        conn = await self._pool.getconn()
        try:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            job = await self._claim(conn, queue)
        except BaseException:
            # A session advisory lock may have been taken: closing the
            # session is the one way to be sure it is gone.
            await conn.close()
            await self._pool.putconn(conn)
            raise
        if job is None:
            await self._checkin(conn)
        return job

    async def _claim(self, conn: psycopg.AsyncConnection[Any], queue: str) -> AsyncJob | None:
        async with conn.cursor(row_factory=dict_row) as cur:
            for _ in range(MAX_LOCK_ATTEMPTS):
                await cur.execute(sql.LOCK_JOB, {"queue": queue}, prepare=True)
                locked = await cur.fetchone()
                if locked is None:
                    return None
                await cur.execute(sql.RECHECK_JOB, recheck_key(locked, queue), prepare=True)
                found = await cur.fetchone()
                if found is not None:
                    job = AsyncJob(**job_fields(found))
                    job._conn = conn
                    job._release = self._release
                    return self._track(job)
                # Deleted by another worker after our walk's snapshot was taken.
                await cur.execute(sql.UNLOCK_JOB, {"job_id": locked["job_id"]}, prepare=True)
        raise lock_attempts_error(queue)

    async def _release(self, job: AsyncJob) -> None:
        """Undo the job's open transaction, unlock it, and return its connection."""
        conn = job._conn
        job._conn = None
        self._untrack(job)
        if conn is None:
            return
        clean = False
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
            if not conn.autocommit:
                await conn.set_autocommit(True)
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.UNLOCK_JOB, {"job_id": job.id}, prepare=True)
                row = await cur.fetchone()
            if not unlocked(row):
                logger.warning("job %s was not locked by its session at done()", job.id)
            clean = True
        except psycopg.Error as exc:
            logger.warning(
                "could not unlock job %s (%s); dropping its connection, which releases the lock",
                job.id,
                exc,
            )
        finally:
            if not clean:
                await conn.close()
            job._in_tx = False
            await self._checkin(conn)

    # -- stats -----------------------------------------------------------------

    async def stats(self) -> list[JobStats]:
        """One JobStats per (queue, type) in que_jobs, counting locks of this database only."""
        async with self._connection() as cur:
            await cur.execute(sql.JOB_STATS)
            return stats_rows(await cur.fetchall())

    # -- lifetime --------------------------------------------------------------

    @property
    def max_connections(self) -> int:
        return self._pool.max_size

    async def close(self) -> None:
        """Release every job still claimed and close the pool (if this client made it)."""
        if self._closed:
            return
        self._closed = True
        for job in self._held_jobs():
            await job.done()
        if self._owns_pool:
            await self._pool.close()

    async def __aenter__(self) -> AsyncClient:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- connections -----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise QueError("this AsyncClient is closed")
        if not self._opened:
            raise QueError(
                "this AsyncClient is not open: use `async with AsyncClient(...)` "
                "or `await AsyncClient.connect(...)`"
            )

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncCursor[DictRow]]:
        self._check_open()
        conn = await self._pool.getconn()
        try:
            if not conn.autocommit:
                await conn.set_autocommit(True)
            async with conn.cursor(row_factory=dict_row) as cur:
                yield cur
        finally:
            await self._checkin(conn)

    async def _checkin(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if not conn.closed and conn.autocommit != self._restore_autocommit:
            await conn.set_autocommit(self._restore_autocommit)
        await self._pool.putconn(conn)


class LockJobCall:
    """What ``AsyncClient.lock_job`` returns: awaitable, and an async context manager."""

    def __init__(self, client: AsyncClient, queue: str) -> None:
        self._client = client
        self._queue = queue
        self._job: AsyncJob | None = None

    def __await__(self) -> Generator[Any, None, AsyncJob | None]:
        return self._client._lock_job(self._queue).__await__()

    async def __aenter__(self) -> AsyncJob | None:
        self._job = await self._client._lock_job(self._queue)
        return self._job

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._job is not None:
            await self._job.done()


def _check_async_conn(conn: object) -> None:
    if isinstance(conn, psycopg.Connection):
        raise TypeError(
            "AsyncClient.enqueue needs a psycopg.AsyncConnection; for a sync connection use Client"
        )
    if not isinstance(conn, psycopg.AsyncConnection):
        raise TypeError(
            f"conn must be a psycopg.AsyncConnection (psycopg 3), not {type(conn).__name__}"
        )
