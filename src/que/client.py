# Generated from async_client.py by scripts/generate_sync.py: edit that file, not this one.
"""Client: enqueue jobs, claim one with the advisory-lock walk, read stats.

``with Client(url)`` opens it (or ``Client.connect(url)``);
the sync Client opens in its constructor. Opening raises if the database is
unreachable or que_jobs is at the wrong schema version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from . import sql
from ._client_base import (
    MAX_LOCK_ATTEMPTS,
    AnyJob,
    ClientBase,
    as_connector,
    batch_params,
    bulk_insert,
    job_params,
    lock_attempts_error,
    pool_conninfo,
    recheck_key,
    set_all_inserted,
    set_found,
    set_inserted,
    stats_rows,
    unlocked,
)
from ._compat import OTHER_CLIENT, OtherPool
from ._extension_base import missing_extension_message
from ._jobs import InsertParams, check_queue
from ._last_error import headline, undecodable_message
from ._socket import socket_quiet
from ._tracing import enqueue_span
from ._unique import Unique, as_unique, check_extension, key_for
from .backoff import RetryInterval
from .connect import Connector, describe, redact
from .connections import AnyPool, Connections
from .drivers import PsycopgStatements, Statements, caller_statements
from .errors import DatabaseUnavailableError, QueError, SchemaVersionError
from .health import QueueStats, TableHealth, queue_stats_rows, table_health_from_row
from .job import JobStats, job_from_row
from .job_handle import Job, JobHandle
from .manage import DeadJobs, Jobs
from .pause import Pauses
from .schema import check_version, extension_version
from .unique import insert_unique

logger = logging.getLogger(__name__)


class Client(ClientBase[Job]):
    """A Que client: enqueues jobs and claims them for workers.

    ``source`` is a URL or libpq conninfo string, a Connector, or a
    ``psycopg_pool.ConnectionPool`` you own.

    ``pgbouncer=True`` is for a ``source`` behind PgBouncer in transaction
    pooling: each claim holds its jobs with transaction-level advisory locks
    in a transaction open until their outcomes are written, and no statement
    is prepared server-side. LISTEN needs ``listen_url``, a direct connection
    to PostgreSQL; without it workers poll. See docs/deploy.md.
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
        pgbouncer: bool = False,
        listen_url: str | Connector | None = None,
    ) -> None:
        super().__init__(
            min_connections=min_connections,
            max_connections=max_connections,
            retry_intervals=retry_intervals,
        )
        self._connect_timeout = connect_timeout
        self._check_schema = check_schema
        self._connector: Connector | None = None
        if listen_url is not None and not pgbouncer:
            raise ValueError(
                "listen_url is for pgbouncer=True: otherwise workers listen on the pool"
            )
        listen_conninfo = None
        if listen_url is not None:
            listen_conninfo = as_connector(listen_url, "listen_url", "a URL").conninfo
        self.pgbouncer = pgbouncer
        # The que-pg extension's version, read when the client opens.
        self.extension_version = 0
        if isinstance(source, OtherPool):
            raise TypeError(
                "Client needs a psycopg_pool.ConnectionPool, not a "
                f"{type(source).__name__} (that pool belongs with {OTHER_CLIENT})"
            )
        if isinstance(source, psycopg_pool.ConnectionPool):
            pool: AnyPool = source
            self._owns_pool = False
            self._target = describe(pool_conninfo(source))
        else:
            connector = as_connector(source, "Client", "psycopg_pool.ConnectionPool")
            self._connector = connector
            self._target = connector.describe()
            pool = psycopg_pool.ConnectionPool(
                connector.conninfo,
                min_size=min_connections,
                max_size=max_connections,
                kwargs={"autocommit": True, "row_factory": dict_row, **_prepare_kwargs(pgbouncer)},
                # A connection killed by a server restart or pg_terminate_backend
                # is replaced on checkout instead of failing the caller's statement.
                check=_check_on_checkout,
                open=False,
                name="que",
            )
            self._owns_pool = True
        self.connections = Connections(
            pool,
            type(self).__name__,
            owns_pool=self._owns_pool,
            pgbouncer=pgbouncer,
            listen_conninfo=listen_conninfo,
        )
        self.jobs = Jobs(self.connections)
        self.dead = DeadJobs(self.connections)
        # The paused queues, as this client's workers see them.
        self.pauses = Pauses(self.connections)
        self.open()

    @classmethod
    def connect(cls, source: str | Connector | AnyPool, **options: Any) -> Client:
        """Create and open a client (Go's MustNewClient): raises if the database is unusable."""
        client = cls(source, **options)
        client.open()
        return client

    def open(self) -> None:
        """Contact the database: check it is reachable and at the right schema version."""
        if self.connections.opened:
            return
        timeout = self._connect_timeout
        pool = self.connections.pool
        if self._connector is not None:
            self._check_direct(self._connector)
            try:
                pool.open(wait=True, timeout=timeout)
            except psycopg_pool.PoolTimeout as exc:
                pool.close()
                raise DatabaseUnavailableError(
                    f"cannot open a connection pool to {self._target}"
                ) from exc
        else:
            self._check_given_pool(timeout)
        self.pauses.enabled = self.extension_version >= 2
        self.connections.opened = True

    def _check_direct(self, connector: Connector) -> None:
        try:
            conn = psycopg.Connection.connect(
                connector.conninfo,
                autocommit=True,
                connect_timeout=max(1, round(self._connect_timeout)),
                **_prepare_kwargs(self.pgbouncer),
            )
        except psycopg.OperationalError as exc:
            message = redact(str(exc), connector.conninfo)
            raise DatabaseUnavailableError(f"cannot connect to {self._target}: {message}") from exc
        with conn:
            if self._check_schema:
                check_version(conn)
            self.extension_version = extension_version(conn)

    def _check_given_pool(self, timeout: float) -> None:
        pool = self.connections.pool
        try:
            with pool.connection(timeout=timeout) as conn:
                self.connections.restore_autocommit = bool(conn.autocommit)
                if self._check_schema:
                    check_version(conn)
                self.extension_version = extension_version(conn)
        except psycopg_pool.PoolTimeout as exc:
            raise DatabaseUnavailableError(
                f"no connection from the given pool to {self._target} within {timeout}s"
            ) from exc
        except psycopg.OperationalError as exc:
            message = redact(str(exc), pool_conninfo(pool))
            raise DatabaseUnavailableError(f"cannot reach {self._target}: {message}") from exc

    # -- enqueue ---------------------------------------------------------------

    def enqueue(
        self,
        job: AnyJob,
        *,
        conn: object | None = None,
        unique: Unique | bool | None = None,
    ) -> AnyJob:
        """Insert ``job`` and return it with ``id`` and ``run_at`` set.

        With ``conn``, the insert runs on that connection inside its current
        transaction and is never committed here: the job exists if and only if
        the caller commits. ``conn`` may be a psycopg 3 connection, or one of
        another driver or framework (docs/integrations.md).

        With ``unique`` (a ``que.Unique``, or True for ``que.Unique()``), no
        job is inserted while a live job holds the same key: ``job.id`` is
        then that job's id and ``job.inserted`` is False. See
        docs/unique-jobs.md. Needs version 2 of the que-pg extension.
        """
        with enqueue_span("enqueue", [job]):
            self._enqueue(job, conn, as_unique(unique))
        return job

    def _enqueue(self, job: AnyJob, conn: object | None, spec: Unique | None) -> None:
        params = job_params(job)
        if spec is not None:
            check_extension(self.extension_version)
            self._enqueue_unique([(key_for(spec, params), job, params)], spec, conn)
            return
        if conn is not None:
            with self._caller(conn, "enqueue") as statements:
                rows = statements.fetch(sql.INSERT_JOB, params.as_params())
        else:
            with self.connections.cursor() as cur:
                cur.execute(sql.INSERT_JOB, params.as_params(), prepare=True)
                rows = cur.fetchall()
        set_inserted(job, params, rows[0])  # INSERT ... RETURNING always returns the row

    def enqueue_in_tx(self, job: AnyJob, conn: object) -> AnyJob:
        """Go's EnqueueInTx: ``enqueue(job, conn=conn)``."""
        return self.enqueue(job, conn=conn)

    def enqueue_many(
        self,
        jobs: Iterable[AnyJob],
        *,
        conn: object | None = None,
        unique: Unique | bool | None = None,
    ) -> list[AnyJob]:
        """Insert many jobs in one statement (one round trip); all or none are written.

        Every job is validated before anything is sent. With ``conn`` the rows
        join the caller's transaction, as with ``enqueue``. With ``unique``
        each job is kept unique as ``enqueue`` keeps one (the default key
        comes from each job's own type and args; jobs of one batch with the
        same key make one job), in one transaction and one statement or more
        per job.
        """
        spec = as_unique(unique)
        batch = list(jobs)
        if not batch:
            return batch
        with enqueue_span("enqueue_many", batch):
            self._enqueue_many(batch, conn, spec)
        return batch

    def _enqueue_many(self, batch: list[AnyJob], conn: object | None, spec: Unique | None) -> None:
        if spec is not None:
            params = batch_params(batch)
            check_extension(self.extension_version)
            keyed = [(key_for(spec, p), job, p) for job, p in zip(batch, params, strict=True)]
            self._enqueue_unique(keyed, spec, conn)
            return
        bulk = bulk_insert(batch)
        if conn is not None:
            with self._caller(conn, "enqueue_many") as statements:
                rows = statements.fetch(bulk.statement, bulk.params)
        else:
            with self.connections.cursor() as cur:
                cur.execute(bulk.statement, bulk.params)
                rows = cur.fetchall()
        set_all_inserted(batch, bulk, rows[0])  # one row: the ids and now()

    def _enqueue_unique(
        self,
        keyed: list[tuple[str, AnyJob, InsertParams]],
        spec: Unique,
        conn: object | None,
    ) -> None:
        """Insert unique jobs in one transaction: the client's own on a pooled
        connection, else the caller's (one of our own when ``conn`` is in
        autocommit, so a batch is still all or none). Keys are taken in key
        order, so two batches that share keys cannot deadlock on them."""
        keyed = sorted(keyed, key=lambda item: item[0])
        if conn is None:
            with self.connections.cursor() as cur, cur.connection.transaction():
                _insert_keyed(PsycopgStatements(cur, prepare=True), keyed, spec)
            return
        with self._caller(conn, "enqueue") as statements, statements.atomic():
            _insert_keyed(statements, keyed, spec)

    def _caller(self, conn: object, method: str) -> AbstractContextManager[Statements]:
        """The caller's connection, of any driver this face takes, for our statements."""
        # Behind PgBouncer a statement prepared on the caller's psycopg
        # connection may be unknown to its next server connection.
        return caller_statements(
            conn, f"{type(self).__name__}.{method}", prepare=not self.pgbouncer
        )

    # -- claim -----------------------------------------------------------------

    def lock_job(self, queue: str = "") -> Job | None:
        """Claim the next due job of ``queue``, or return None if there is none.

        The job holds an advisory lock and a pooled connection until
        ``job.done()``; ``with job:`` makes sure that happens. Raises
        LockAttemptsError if ten walks in a row found only jobs that other
        workers deleted meanwhile.
        """
        return self._lock_job(queue)

    def _lock_job(self, queue: str) -> Job | None:
        check_queue(queue)
        self.connections.check_open()
        conn = self.connections.take()
        try:
            if self.pgbouncer:
                # The claim's transaction holds the lock (see _claim).
                conn.set_autocommit(False)
            job = self._claim(conn, queue)
        except BaseException:
            # An advisory lock may have been taken: closing the session
            # (or, behind PgBouncer, its transaction) is the one way to be
            # sure it is gone.
            self.connections.drop(conn)
            raise
        if job is None:
            self.connections.reset_and_give_back(conn)
        return job

    def _claim(self, conn: psycopg.Connection[Any], queue: str) -> Job | None:
        """The Que walk and re-check. Behind PgBouncer ``conn`` is in a
        transaction, whose transaction-level lock lasts until it ends: a lock
        on a row found gone stays until then, harmlessly."""
        xact = self.pgbouncer
        lock_job = sql.LOCK_JOB_XACT if xact else sql.LOCK_JOB
        with conn.cursor(row_factory=dict_row) as cur:
            for _ in range(MAX_LOCK_ATTEMPTS):
                cur.execute(lock_job, {"queue": queue}, prepare=True)
                locked = cur.fetchone()
                if locked is None:
                    return None
                cur.execute(sql.RECHECK_JOB, recheck_key(locked, queue), prepare=True)
                found = cur.fetchone()
                if found is not None:
                    if xact:
                        # Everything the job writes nests here: error() rolls
                        # it back to this point and keeps the lock.
                        cur.execute(sql.JOB_SAVEPOINT)
                    job, problem = job_from_row(Job, found)
                    handle = JobHandle(job, self.backoff, self._release, conn=conn, xact=xact)
                    if problem is None:
                        return self._track(job)
                    # Args no worker can decode: recorded as this job's failure
                    # (it moves to its retry time), and the walk goes on.
                    handle.error(headline(QueError(undecodable_message(problem))))
                # Gone (another worker deleted it after our walk's snapshot was
                # taken), or failed above: unlock it and walk again.
                if not xact:
                    cur.execute(sql.UNLOCK_JOB, {"job_id": locked["job_id"]}, prepare=True)
        raise lock_attempts_error(queue)

    def _release(self, handle: JobHandle) -> None:
        """Undo the job's open transaction, unlock it, and return its connection."""
        job = handle.job
        self._untrack(job)
        conn = handle.detach()
        if conn is None:
            return
        if self.pgbouncer:
            # Ending the claim's transaction releases the lock, and rolls back
            # what the job wrote without a delete() or error().
            if not self.connections.reset_and_give_back(conn):
                logger.warning("could not end job %s's claim; closed its connection", job.id)
            return
        if not self.connections.reset(conn):
            logger.warning("could not reset job %s's connection; dropped it, and its lock", job.id)
            self.connections.give_back(conn)
            return
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(sql.UNLOCK_JOB, {"job_id": job.id}, prepare=True)
                row = cur.fetchone()
        except psycopg.Error as exc:
            logger.warning(
                "could not unlock job %s (%s); dropping its connection, which releases the lock",
                job.id,
                exc,
            )
            self.connections.drop(conn)
            return
        if not unlocked(row):
            logger.warning("job %s was not locked by its session at done()", job.id)
        self.connections.give_back(conn)

    # -- paused queues ---------------------------------------------------------

    def pause_queue(self, queue: str) -> bool:
        """Pause ``queue`` for every Python worker on every host; True if it was
        not paused before.

        Workers stop claiming from it within about a second (at once when they
        listen); jobs already running finish and are written as usual. The
        pause lasts until ``resume_queue``, across restarts. Ruby que 0.x and
        Go workers ignore it. ``lock_job`` does not look at pauses: it is the
        low-level call. Needs version 2 of the que-pg extension.
        """
        self._check_pauses(queue)
        return self.pauses.pause(queue)

    def resume_queue(self, queue: str) -> bool:
        """Let workers claim from ``queue`` again; True if it was paused."""
        self._check_pauses(queue)
        return self.pauses.resume(queue)

    def paused_queues(self) -> dict[str, datetime]:
        """The paused queues and when each was paused."""
        self._check_pauses()
        return self.pauses.list()

    def _check_pauses(self, queue: str | None = None) -> None:
        if queue is not None:
            check_queue(queue)
        self.connections.check_open()
        if self.extension_version < 2:
            raise SchemaVersionError(missing_extension_message("pausing queues", 2))

    # -- stats -----------------------------------------------------------------

    def stats(self) -> list[JobStats]:
        """One JobStats per (queue, type) in que_jobs, counting locks of this database only."""
        with self.connections.cursor() as cur:
            cur.execute(sql.JOB_STATS)
            return stats_rows(cur.fetchall())

    def queue_stats(self) -> list[QueueStats]:
        """Is it healthy? One QueueStats per (queue, type): ready, scheduled, locked
        (by any worker of this database) and failed jobs, dead ones (None without
        the que-pg extension), and how long the oldest due job has waited.

        ``stats()`` stays as Go's Stats() has it; ``que.queue_totals`` sums these
        per queue.
        """
        with self.connections.cursor() as cur:
            cur.execute(sql.QUEUE_STATS)
            rows = cur.fetchall()
            cur.execute(sql.EXTENSION_TABLE_EXISTS)
            extension = cur.fetchone()
            dead = None
            if extension is not None and extension["present"]:
                cur.execute(sql.DEAD_JOB_COUNTS)
                dead = cur.fetchall()
        return queue_stats_rows(rows, dead)

    def table_health(self) -> TableHealth:
        """The state of que_jobs (dead rows, size, vacuum, autovacuum settings)
        and warnings in plain words when dead rows pile up or cannot be removed."""
        with self.connections.cursor() as cur:
            cur.execute(sql.TABLE_HEALTH)
            row = cur.fetchone()
        assert row is not None  # que_jobs exists: the client checked its version
        return table_health_from_row(row)

    # -- lifetime --------------------------------------------------------------

    @property
    def max_connections(self) -> int:
        return self.connections.max_connections

    def close(self) -> None:
        """Release every job still claimed and close the pool (if this client made it)."""
        if self.connections.closed:
            return
        self.connections.closed = True
        for job in self._held_jobs():
            job.done()
        if self._owns_pool:
            self.connections.pool.close()

    def __enter__(self) -> Client:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _insert_keyed(
    statements: Statements, keyed: list[tuple[str, AnyJob, InsertParams]], spec: Unique
) -> None:
    for key, job, params in keyed:
        set_found(job, params, insert_unique(statements, params, spec, key))


def _check_on_checkout(conn: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection it hands out: a round trip (which
    raises, so the pool replaces the connection) only when the server has
    written to the idle session, as it does when it ends one; a quiet one is
    handed out at once, so an enqueue costs one round trip, not two."""
    if not socket_quiet(conn):
        psycopg_pool.ConnectionPool.check_connection(conn)


def _prepare_kwargs(pgbouncer: bool) -> dict[str, Any]:
    """Connection options: behind PgBouncer nothing is prepared server-side,
    as the next transaction may run on another server connection."""
    return {"prepare_threshold": None} if pgbouncer else {}


def prepare_statements(conn: psycopg.Connection[Any]) -> None:
    """Go's PrepareStatements: prepare every statement on ``conn`` at first use.

    psycopg 3 prepares statements server-side on its own once they repeat;
    this makes it do so from the first execution, and checks that que_jobs is
    at the schema version this library speaks.
    """
    conn.prepare_threshold = 0
    check_version(conn)
