"""AsyncPauses: pause and resume queues, and what a client's workers know of it.

A pause is a row of que_paused_queues (the que-pg extension, version 2), so
every Python worker on every host sees it, and it outlives restarts. Workers
ask ``paused()`` before they claim; the answer is read from the table at
most once a second and shared by every worker of the client, and a NOTIFY
on que_pause (sent with each change) makes it stale at once for engines that
listen. Ruby que 0.x and Go workers never read the table: they ignore pauses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import sql
from ._pause_base import PauseBook, PauseChanges
from .async_connections import AsyncConnections

logger = logging.getLogger(__name__)


class AsyncPauses:
    """One client's view of the paused queues (``client.pauses``), shared by its workers.

    ``enabled`` is set when the client opens: only with version 2 or later of
    the que-pg extension is there a table to read.
    """

    def __init__(self, connections: AsyncConnections) -> None:
        self._connections = connections
        self.book = PauseBook()
        self.enabled = False

    @property
    def period(self) -> float:
        """How old an answer of ``paused()`` may be, in seconds."""
        return self.book.period

    def watch(self, queues: Iterable[str]) -> None:
        """A worker works ``queues``: log when one is paused or resumed."""
        self.book.watch(queues)

    def stale(self) -> None:
        """A change was announced: the next ``paused()`` reads the table."""
        self.book.stale()

    def is_paused(self, queue: str) -> bool:
        """Whether ``queue`` was paused at the last read (no IO)."""
        return self.enabled and queue in self.book.paused

    async def paused(self, conn: psycopg.AsyncConnection[Any] | None = None) -> frozenset[str]:
        """The paused queues, read again (on ``conn``, else a pooled connection)
        when the last read is a period old; empty without the extension."""
        if not self.enabled:
            return frozenset()
        now = time.monotonic()
        if self.book.due(now):
            began = self.book.begin()
            if conn is None:
                async with self._connections.cursor() as cur:
                    await cur.execute(sql.PAUSED_QUEUE_NAMES)
                    rows = await cur.fetchall()
            else:
                async with conn.cursor(row_factory=dict_row) as cur:
                    await cur.execute(sql.PAUSED_QUEUE_NAMES)
                    rows = await cur.fetchall()
            _log(self.book.update([row["queue"] for row in rows], now, began))
        return self.book.paused

    async def pause(self, queue: str) -> bool:
        """Record the pause (and NOTIFY, in the same statement); False if it was paused."""
        async with self._connections.cursor() as cur:
            await cur.execute(sql.PAUSE_QUEUE, {"queue": queue})
            changed = await cur.fetchone() is not None
        self.stale()
        return changed

    async def resume(self, queue: str) -> bool:
        """Remove the pause (and NOTIFY); False if the queue was not paused."""
        async with self._connections.cursor() as cur:
            await cur.execute(sql.RESUME_QUEUE, {"queue": queue})
            changed = await cur.fetchone() is not None
        self.stale()
        return changed

    async def list(self) -> dict[str, datetime]:
        """Every paused queue and when it was paused, by name."""
        async with self._connections.cursor() as cur:
            await cur.execute(sql.PAUSED_QUEUES)
            rows = await cur.fetchall()
        return {row["queue"]: row["paused_at"] for row in rows}


def _log(changes: PauseChanges) -> None:
    for queue in changes.paused:
        logger.info(
            "queue %r is paused: claiming no new jobs from it until it is resumed",
            queue,
            extra={"queue": queue, "paused": True},
        )
    for queue in changes.resumed:
        logger.info(
            "queue %r was resumed: claiming jobs from it again",
            queue,
            extra={"queue": queue, "paused": False},
        )
