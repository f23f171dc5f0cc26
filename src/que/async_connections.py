"""AsyncConnections: where a client's workers and engines get their connections.

This is the one seam between a client and the code that works jobs: take a
connection in autocommit, give it back, or drop it (closing the session is
the one sure way to release every advisory lock it holds). Workers and
engines use it instead of reaching into the client's pool.

Behind PgBouncer in transaction pooling (``pgbouncer``), a session is not
kept between transactions: claims hold transaction-level locks instead,
nothing is prepared server-side, and LISTEN needs a direct connection of
its own (``listen_conninfo``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from .errors import QueError

AnyAsyncPool = psycopg_pool.AsyncConnectionPool[Any]


class AsyncConnections:
    """The connections of one client: its pool, and whether it is open."""

    def __init__(
        self,
        pool: AnyAsyncPool,
        owner: str,
        *,
        owns_pool: bool,
        pgbouncer: bool = False,
        listen_conninfo: str | None = None,
    ) -> None:
        self.pool = pool
        self.owner = owner
        self.owns_pool = owns_pool
        self.pgbouncer = pgbouncer
        self.listen_conninfo = listen_conninfo
        self.reserved = 0
        self.opened = False
        self.closed = False
        # A caller's pool may hand out connections outside autocommit: each
        # goes back the way it came.
        self.restore_autocommit = True

    @property
    def max_connections(self) -> int:
        return self.pool.max_size

    @property
    def limit(self) -> int | None:
        """The most connections workers can count on: the size of a pool the
        caller gave; None for the client's own pool, which grows (``reserve``)."""
        return None if self.owns_pool else self.pool.max_size

    async def reserve(self, count: int) -> None:
        """Count on ``count`` more connections until ``unreserve``: the client's
        own pool grows to hold every worker and engine started on it."""
        self.reserved += count
        if self.owns_pool and self.reserved > self.pool.max_size:
            await self.pool.resize(self.pool.min_size, self.reserved)

    def unreserve(self, count: int) -> None:
        """Give back a reservation; the pool keeps its size, its idle connections close."""
        self.reserved -= count

    def check_open(self) -> None:
        """Raise QueError unless the client is open and not yet closed."""
        if self.closed:
            raise QueError(f"this {self.owner} is closed")
        if not self.opened:
            raise QueError(
                f"this {self.owner} is not open: use `async with {self.owner}(...)` "
                f"or `await {self.owner}.connect(...)`"
            )

    async def take(self) -> psycopg.AsyncConnection[Any]:
        """A pooled connection in autocommit; give it back with ``give_back`` or ``drop``."""
        conn: psycopg.AsyncConnection[Any] = await self.pool.getconn()
        if self.pgbouncer:
            # A statement prepared on one server connection is unknown on the next.
            conn.prepare_threshold = None
        try:
            if not conn.autocommit:
                await conn.set_autocommit(True)
        except BaseException:
            await self.drop(conn)
            raise
        return conn

    async def give_back(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Return a connection to the pool, set back to the caller's autocommit mode."""
        if not conn.closed and conn.autocommit != self.restore_autocommit:
            await conn.set_autocommit(self.restore_autocommit)
        await self.pool.putconn(conn)

    async def drop(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Close a connection's session (releasing its locks) and return it to the pool."""
        await conn.close()
        await self.pool.putconn(conn)

    async def reset(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """Roll back a transaction left open and go back to autocommit.

        False when that failed; the connection is closed then (its session,
        and any lock it held, are gone).
        """
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                await conn.rollback()
            if not conn.autocommit:
                await conn.set_autocommit(True)
        except psycopg.Error:
            await conn.close()
            return False
        return True

    async def reset_and_give_back(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        """``reset`` then ``give_back``: what ends a borrowed connection's use, or
        a claim's transaction (and its transaction-level locks). False when the
        reset failed and the connection was closed (the pool replaces it)."""
        ok = await self.reset(conn)
        await self.give_back(conn)
        return ok

    @property
    def can_listen(self) -> bool:
        """Whether LISTEN works: always on a direct connection; behind
        PgBouncer only through ``listen_conninfo``."""
        return not self.pgbouncer or self.listen_conninfo is not None

    async def take_listener(self) -> psycopg.AsyncConnection[Any]:
        """A connection in autocommit for LISTEN, kept for as long as it listens:
        from the pool, or behind PgBouncer a direct one of its own."""
        if not self.pgbouncer:
            return await self.take()
        if self.listen_conninfo is None:
            raise QueError(
                "LISTEN does not work through PgBouncer in transaction pooling: "
                "give listen_url (a direct connection to PostgreSQL), or poll (listen=False)"
            )
        return await psycopg.AsyncConnection.connect(self.listen_conninfo, autocommit=True)

    async def give_back_listener(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Return (or close) a connection from ``take_listener``."""
        if self.pgbouncer:
            await conn.close()
        else:
            await self.give_back(conn)

    async def drop_listener(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Close a broken connection from ``take_listener``."""
        if self.pgbouncer:
            await conn.close()
        else:
            await self.drop(conn)

    @asynccontextmanager
    async def cursor(self) -> AsyncIterator[psycopg.AsyncCursor[DictRow]]:
        """A dict-row cursor on a pooled connection in autocommit, for short statements."""
        self.check_open()
        conn = await self.take()
        try:
            async with conn.cursor(row_factory=dict_row) as cur:
                yield cur
        finally:
            await self.give_back(conn)
