"""AsyncCancelWatch: finds the cancel requests of the jobs a worker is running.

A request (``client.jobs.cancel``, ``que jobs cancel``) is a row in
que_cancel_requests, so a worker on any host sees it; the watch looks for
the jobs it is given once a second, and an engine that listens also acts on
the NOTIFY that comes with each request at once. A job found there is
flagged (``job.cancelled``) and, if it is async, cancelled. Only with the
que-pg extension installed: without it there is nothing to watch.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import sql
from ._acompat import Background, Event, join, spawn, wait_event
from ._jobs import id_array
from ._outcomes import DeadPurge
from .async_connections import AsyncConnections
from .async_job_handle import AsyncJobHandle

logger = logging.getLogger(__name__)

# How often the watch looks for requests (while it has jobs to watch).
CANCEL_CHECK_PERIOD = 1.0


class AsyncCancelWatch:
    """Watches the jobs of one or more workers; started once per worker that uses it."""

    def __init__(self, connections: AsyncConnections, period: float = CANCEL_CHECK_PERIOD) -> None:
        self._connections = connections
        self.period = period
        self._handles: dict[int, AsyncJobHandle] = {}
        self._users = 0
        self._stop = Event()
        self._task: list[Background] = []

    def watch(self, handle: AsyncJobHandle) -> None:
        if handle.job.id is not None:
            self._handles[handle.job.id] = handle

    def unwatch(self, handle: AsyncJobHandle) -> None:
        if handle.job.id is not None:
            self._handles.pop(handle.job.id, None)

    def requested(self, job_id: int) -> None:
        """A request for ``job_id`` arrived (a NOTIFY): act on it if it is watched."""
        handle = self._handles.get(job_id)
        if handle is not None:
            handle.request_cancel()

    async def start(self) -> None:
        """Start looking (the first user starts the loop, and counts on one more connection)."""
        self._users += 1
        if not self._task:
            await self._connections.reserve(1)
            self._stop = Event()
            self._task.append(spawn(self._loop, "que-cancel-watch"))

    async def stop(self) -> None:
        """Stop looking once the last user stops."""
        self._users -= 1
        if self._users == 0 and self._task:
            self._stop.set()
            await join(self._task, None)
            self._task.clear()
            self._connections.unreserve(1)

    async def check(self, conn: psycopg.AsyncConnection[Any] | None = None) -> None:
        """Look once for requests for the watched jobs (on ``conn``, else a pooled one)."""
        handles = dict(self._handles)
        if not handles:
            return
        params = {"ids": id_array(list(handles))}
        if conn is None:
            async with self._connections.cursor() as cur:
                await cur.execute(sql.CANCEL_REQUESTED, params)
                rows = await cur.fetchall()
        else:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(sql.CANCEL_REQUESTED, params)
                rows = await cur.fetchall()
        for row in rows:
            handle = handles.get(row["job_id"])
            if handle is not None:
                handle.request_cancel()

    async def _loop(self) -> None:
        while not await wait_event(self._stop, self.period):
            try:
                await self.check()
            except psycopg.Error as exc:  # logged; the next look tries again
                logger.warning("could not look for cancel requests: %s", exc)


async def purge_expired_dead_jobs(conn: psycopg.AsyncConnection[Any], purge: DeadPurge) -> None:
    """Delete the dead jobs older than a worker's retention (logged, never fatal)."""
    try:
        cur = await conn.execute(sql.PURGE_EXPIRED_DEAD_JOBS, {"retention": purge.retention})
    except psycopg.Error as exc:
        logger.warning("could not purge expired dead jobs: %s", exc)
        return
    if cur.rowcount:
        logger.info("purged %d dead job(s) past the retention", cur.rowcount)
