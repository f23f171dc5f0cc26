"""AsyncScheduler: enqueues the jobs of periodic schedules.

Start one in every worker process that declares the schedules. They elect a
leader with a session advisory lock (two int4 keys: a key space apart from
the bigint job locks), and only the leader enqueues. A leader that dies loses
its session and its lock with it; the others try for the lock every second.

Each tick's job is inserted by the statement that records the tick in
que_schedules, and only when the tick is later than the one recorded: a tick
is enqueued once even when two processes lead at the same time (a deploy
that changes the set of schedules, a leader cut off from its network).
Ticks are computed on the database's clock, so hosts whose clocks differ
agree on what is due.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import sql
from ._acompat import Background, Event, check_can_start, join, spawn, wait_event
from ._extension_base import missing_extension_message
from ._schedule import (
    LEADER_LOCK_SPACE,
    Schedule,
    ScheduleStatus,
    check_schedules,
    leader_lock_key,
    schedule_status,
)
from .async_client import AsyncClient
from .errors import QueError, SchemaVersionError

logger = logging.getLogger(__name__)

# How often followers try to lead, and the longest a leader sleeps between looks.
SCHEDULER_INTERVAL = 1.0


class AsyncScheduler:
    """Enqueues one job per tick of each schedule, from whichever process leads."""

    def __init__(
        self,
        client: AsyncClient,
        schedules: Iterable[Schedule],
        *,
        interval: float = SCHEDULER_INTERVAL,
    ) -> None:
        self.client = client
        self.schedules = check_schedules(schedules)
        if not self.schedules:
            raise ValueError("AsyncScheduler needs at least one que.Schedule")
        if not interval > 0:
            raise ValueError(f"interval must be more than 0 seconds, not {interval!r}")
        self.interval = interval
        self._lock = {"space": LEADER_LOCK_SPACE, "key": leader_lock_key(self.schedules)}
        self._leading = False
        self._stop = Event()
        self._task: list[Background] = []

    @property
    def leading(self) -> bool:
        """Whether this scheduler leads (enqueues) right now."""
        return self._leading

    def start(self) -> None:
        """Start taking part in the election, in the background."""
        if self._task:
            raise QueError("this AsyncScheduler was already started")
        self.client.connections.check_open()
        if self.client.extension_version < 2:
            raise SchemaVersionError(missing_extension_message("schedules", 2))
        if not self.client.connections.can_listen:
            raise QueError(
                "schedules behind PgBouncer need listen_url: the leader holds a "
                "session lock, on a direct connection to PostgreSQL"
            )
        check_can_start("AsyncScheduler.start()")
        self._stop = Event()
        self._task.append(spawn(self._loop, "que-scheduler"))

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop, and give up leading; False if ``timeout`` ran out first."""
        self._stop.set()
        if await join(self._task, timeout):
            return False
        self._task.clear()
        return True

    async def _loop(self) -> None:
        await self.client.connections.reserve(1)
        try:
            while not self._stop.is_set():
                try:
                    await self._take_part()
                except psycopg.Error as exc:  # logged; a new connection tries again
                    logger.warning("scheduler: %s; trying again", exc)
                    await wait_event(self._stop, self.interval)
                except Exception:  # a bug must not end the schedules in silence
                    logger.exception("scheduler failed; trying again")
                    await wait_event(self._stop, self.interval)
        finally:
            self.client.connections.unreserve(1)

    async def _take_part(self) -> None:
        """Lead or follow on one connection until stopped or the connection fails."""
        connections = self.client.connections
        conn = await connections.take_listener()
        try:
            while True:
                if not self._leading:
                    self._leading = await self._try_to_lead(conn)
                wait = await self.enqueue_due(conn) if self._leading else self.interval
                if await wait_event(self._stop, wait):
                    break
            if self._leading:
                await conn.execute(sql.STOP_LEADING_SCHEDULES, self._lock)
                self._step_down("stopped")
        except BaseException:
            self._step_down("its connection failed")
            await connections.drop_listener(conn)
            raise
        await connections.give_back_listener(conn)

    async def _try_to_lead(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.TRY_LEAD_SCHEDULES, self._lock)
            row = await cur.fetchone()
        leading = bool(row and row["leading"])
        if leading:
            logger.info(
                "scheduler: leading %d schedule(s): %s",
                len(self.schedules),
                ", ".join(s.name for s in self.schedules),
            )
        return leading

    def _step_down(self, why: str) -> None:
        if self._leading:
            logger.info("scheduler: no longer leading (%s)", why)
        self._leading = False

    async def enqueue_due(self, conn: psycopg.AsyncConnection[Any]) -> float:
        """Enqueue every due tick; the seconds until the next one (at most ``interval``)."""
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.DATABASE_NOW)
            now_row = await cur.fetchone()
            assert now_row is not None
            now: datetime = now_row["now"]
            await cur.execute(sql.SCHEDULE_TICKS, {"names": [s.name for s in self.schedules]})
            last = {row["name"]: row["last_tick"] for row in await cur.fetchall()}
            for schedule in self.schedules:
                if schedule.name not in last:
                    tick = schedule.latest_tick(now)
                    await cur.execute(sql.START_SCHEDULE, {"name": schedule.name, "tick": tick})
                    continue
                for tick in schedule.due(last[schedule.name], now):
                    await cur.execute(sql.ENQUEUE_TICK, _tick_params(schedule, tick))
                    row = await cur.fetchone()
                    if row is not None:
                        logger.info(
                            "scheduler: enqueued job %d (%s) for %s's tick at %s",
                            row["job_id"],
                            schedule.type,
                            schedule.name,
                            tick.isoformat(),
                        )
        upcoming = min(schedule.next_tick(now) for schedule in self.schedules)
        return max(0.0, min(self.interval, (upcoming - now) / timedelta(seconds=1)))

    async def status(self) -> list[ScheduleStatus]:
        """Each schedule with its last enqueued tick (None before its first) and next tick."""
        async with self.client.connections.cursor() as cur:
            await cur.execute(sql.DATABASE_NOW)
            now_row = await cur.fetchone()
            assert now_row is not None
            now: datetime = now_row["now"]
            await cur.execute(sql.SCHEDULE_TICKS, {"names": [s.name for s in self.schedules]})
            rows = {row["name"]: row for row in await cur.fetchall()}
        return [schedule_status(s, rows.get(s.name), now) for s in self.schedules]

    async def leader(self) -> dict[str, Any] | None:
        """The database session leading this set of schedules (pid, client_addr,
        application_name), from any process or host; None when none leads."""
        async with self.client.connections.cursor() as cur:
            await cur.execute(sql.SCHEDULE_LEADER, self._lock)
            return await cur.fetchone()

    async def __aenter__(self) -> AsyncScheduler:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()


def _tick_params(schedule: Schedule, tick: datetime) -> dict[str, Any]:
    params = schedule.params
    return {
        "name": schedule.name,
        "tick": tick,
        "queue": params.queue,
        "priority": params.priority,
        "job_class": params.job_class,
        "args": params.args,
    }


async def recorded_ticks(client: AsyncClient) -> list[dict[str, Any]]:
    """Every schedule que_schedules knows (name, last_tick, last_job_id,
    updated_at), declared here or not."""
    async with client.connections.cursor() as cur:
        await cur.execute(sql.SCHEDULE_TICKS, {"names": None})
        return await cur.fetchall()
