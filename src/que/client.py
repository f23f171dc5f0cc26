"""The sync Client: enqueue jobs, claim one with the advisory-lock walk, read stats."""

from __future__ import annotations

import logging
from collections.abc import Iterable
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
from .job import Job, JobStats, job_fields
from .schema import check_version

logger = logging.getLogger(__name__)

AnyPool = psycopg_pool.ConnectionPool[Any]


class Client(ClientBase[Job]):
    """A Que client: enqueues jobs and claims them for workers.

    ``source`` is a URL or libpq conninfo string, a Connector, or a
    ``psycopg_pool.ConnectionPool`` you own. The database is contacted at
    once: an unreachable database raises DatabaseUnavailableError, a que_jobs
    table of the wrong schema version raises SchemaVersionError.
    """

    def __init__(
        self,
        source: str | Connector | AnyPool,
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
        if isinstance(source, psycopg_pool.AsyncConnectionPool):
            raise TypeError("Client needs a sync psycopg_pool.ConnectionPool; use AsyncClient")
        if isinstance(source, psycopg_pool.ConnectionPool):
            self._pool: AnyPool = source
            self._owns_pool = False
            self._target = describe(pool_conninfo(source))
            self._restore_autocommit = self._check_given_pool(connect_timeout, check_schema)
            return
        connector = as_connector(source, "Client", "psycopg_pool.ConnectionPool")
        self._target = connector.describe()
        with connector.connect(connect_timeout=connect_timeout) as conn:
            if check_schema:
                check_version(conn)
        self._pool = psycopg_pool.ConnectionPool(
            connector.conninfo,
            min_size=min_connections,
            max_size=max_connections,
            kwargs={"autocommit": True, "row_factory": dict_row},
            # A connection killed by a server restart or pg_terminate_backend
            # is replaced on checkout instead of failing the caller's statement.
            check=psycopg_pool.ConnectionPool.check_connection,
            open=False,
            name="que",
        )
        self._owns_pool = True
        self._restore_autocommit = True
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as exc:
            self._pool.close()
            raise DatabaseUnavailableError(
                f"cannot open a connection pool to {self._target}"
            ) from exc

    # -- enqueue ---------------------------------------------------------------

    def enqueue(self, job: AnyJob, *, conn: psycopg.Connection[Any] | None = None) -> AnyJob:
        """Insert ``job`` and return it with ``id`` and ``run_at`` set.

        With ``conn``, the insert runs on that connection inside its current
        transaction and is never committed here: the job exists if and only if
        the caller commits.
        """
        params = job_params(job)
        if conn is not None:
            _check_sync_conn(conn)
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(sql.INSERT_JOB, params.as_params(), prepare=True).fetchone()
        else:
            with self._connection() as own:
                row = own.execute(sql.INSERT_JOB, params.as_params(), prepare=True).fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the row
        set_inserted(job, params, row)
        return job

    def enqueue_in_tx(self, job: AnyJob, conn: psycopg.Connection[Any]) -> AnyJob:
        """Go's EnqueueInTx: ``enqueue(job, conn=conn)``."""
        return self.enqueue(job, conn=conn)

    def enqueue_many(
        self, jobs: Iterable[AnyJob], *, conn: psycopg.Connection[Any] | None = None
    ) -> list[AnyJob]:
        """Insert many jobs in one statement (one round trip); all or none are written.

        Every job is validated before anything is sent. With ``conn`` the rows
        join the caller's transaction, as with ``enqueue``.
        """
        batch = list(jobs)
        if not batch:
            return batch
        params = [job_params(job) for job in batch]
        if conn is not None:
            _check_sync_conn(conn)
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(sql.INSERT_JOBS, bulk_params(params)).fetchall()
        else:
            with self._connection() as own:
                rows = own.execute(sql.INSERT_JOBS, bulk_params(params)).fetchall()
        set_all_inserted(batch, params, rows)
        return batch

    # -- claim -----------------------------------------------------------------

    def lock_job(self, queue: str = "") -> Job | None:
        """Claim the next due job of ``queue``, or return None if there is none.

        The job holds a session advisory lock and a pooled connection until
        ``job.done()``; ``with job:`` makes sure that happens. Raises
        LockAttemptsError if ten walks in a row found only jobs that other
        workers deleted meanwhile.
        """
        check_queue(queue)
        self._check_open()
        conn = self._pool.getconn()
        try:
            conn.autocommit = True
            job = self._claim(conn, queue)
        except BaseException:
            # A session advisory lock may have been taken: closing the
            # session is the one way to be sure it is gone.
            conn.close()
            self._pool.putconn(conn)
            raise
        if job is None:
            self._checkin(conn)
        return job

    def _claim(self, conn: psycopg.Connection[Any], queue: str) -> Job | None:
        with conn.cursor(row_factory=dict_row) as cur:
            for _ in range(MAX_LOCK_ATTEMPTS):
                locked = cur.execute(sql.LOCK_JOB, {"queue": queue}, prepare=True).fetchone()
                if locked is None:
                    return None
                row = cur.execute(sql.RECHECK_JOB, recheck_key(locked, queue), prepare=True)
                found = row.fetchone()
                if found is not None:
                    job = Job(**job_fields(found))
                    job._conn = conn
                    job._release = self._release
                    return self._track(job)
                # Deleted by another worker after our walk's snapshot was taken.
                cur.execute(sql.UNLOCK_JOB, {"job_id": locked["job_id"]}, prepare=True)
        raise lock_attempts_error(queue)

    def _release(self, job: Job) -> None:
        """Undo the job's open transaction, unlock it, and return its connection."""
        conn = job._conn
        job._conn = None
        self._untrack(job)
        if conn is None:
            return
        clean = False
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                conn.rollback()
            conn.autocommit = True
            with conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(sql.UNLOCK_JOB, {"job_id": job.id}, prepare=True).fetchone()
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
                conn.close()
            job._in_tx = False
            self._checkin(conn)

    # -- stats -----------------------------------------------------------------

    def stats(self) -> list[JobStats]:
        """One JobStats per (queue, type) in que_jobs, counting locks of this database only."""
        with self._connection() as conn:
            return stats_rows(conn.execute(sql.JOB_STATS).fetchall())

    # -- lifetime --------------------------------------------------------------

    @property
    def max_connections(self) -> int:
        return self._pool.max_size

    def close(self) -> None:
        """Release every job still claimed and close the pool (if this client made it)."""
        if self._closed:
            return
        self._closed = True
        for job in self._held_jobs():
            job.done()
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- connections -----------------------------------------------------------

    def _connection(self) -> _Borrowed:
        self._check_open()
        return _Borrowed(self)

    def _check_open(self) -> None:
        if self._closed:
            raise QueError("this Client is closed")

    def _checkin(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.closed and conn.autocommit != self._restore_autocommit:
            conn.autocommit = self._restore_autocommit
        self._pool.putconn(conn)

    def _check_given_pool(self, timeout: float, check_schema: bool) -> bool:
        try:
            with self._pool.connection(timeout=timeout) as conn:
                autocommit = bool(conn.autocommit)
                if check_schema:
                    check_version(conn)
                return autocommit
        except psycopg_pool.PoolTimeout as exc:
            raise DatabaseUnavailableError(
                f"no connection from the given pool to {self._target} within {timeout}s"
            ) from exc
        except psycopg.OperationalError as exc:
            message = redact(str(exc), pool_conninfo(self._pool))
            raise DatabaseUnavailableError(f"cannot reach {self._target}: {message}") from exc


class _Borrowed:
    """A pooled connection in autocommit with dict rows, for one short statement."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Cursor[DictRow]:
        conn = self._client._pool.getconn()
        self._conn = conn
        try:
            conn.autocommit = True
            cursor: psycopg.Cursor[DictRow] = conn.cursor(row_factory=dict_row)
            return cursor
        except BaseException:
            self._client._pool.putconn(conn)
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        self._client._checkin(self._conn)


def _check_sync_conn(conn: object) -> None:
    if isinstance(conn, psycopg.AsyncConnection):
        raise TypeError("Client.enqueue needs a sync psycopg.Connection; use AsyncClient")
    if not isinstance(conn, psycopg.Connection):
        raise TypeError(f"conn must be a psycopg.Connection (psycopg 3), not {type(conn).__name__}")


def prepare_statements(conn: psycopg.Connection[Any]) -> None:
    """Go's PrepareStatements: prepare every statement on ``conn`` at first use.

    psycopg 3 prepares statements server-side on its own once they repeat;
    this makes it do so from the first execution, and checks that que_jobs is
    at the schema version this library speaks.
    """
    conn.prepare_threshold = 0
    check_version(conn)
