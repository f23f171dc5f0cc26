"""Periodic jobs: one job per tick from one leader, on both faces, with the
missed-tick policies, and exactly once even when two processes lead."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que
from que import sql

from ..sides import AnyClient, Side, r, wait_until

TICKS = "SELECT run_at FROM que_jobs WHERE job_class = %s ORDER BY run_at"


def ticks(conn: psycopg.Connection[Any], job_type: str) -> list[datetime]:
    return [row[0] for row in conn.execute(TICKS, [job_type]).fetchall()]


def assert_every_tick_once(found: list[datetime], step: timedelta) -> None:
    """One job per tick, and no tick between the first and the last left out."""
    assert len(found) == len(set(found)), f"a tick was enqueued twice: {found}"
    for earlier, later in itertools.pairwise(found):
        assert later - earlier == step, f"ticks missing between {earlier} and {later}"


@pytest.fixture
async def scheduler(side: Side) -> AsyncIterator[Callable[..., Any]]:
    """Makes and starts a scheduler of the side; shuts every one down at the end."""
    started: list[Any] = []

    async def make(client: AnyClient, schedules: list[que.Schedule], **options: Any) -> Any:
        cls = que.AsyncScheduler if side.is_async else que.Scheduler
        made = cls(client, schedules, **options)
        made.start()
        started.append(made)
        return made

    yield make
    for made in started:
        assert await side.call(made.shutdown, 30)


async def test_the_leader_enqueues_one_job_per_tick(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], scheduler: Callable[..., Any]
) -> None:
    every = que.Schedule("Beat", every=1, args=[1, "x"], queue="timers", priority=5, missed="all")
    made = await scheduler(qc, [every])
    await wait_until(lambda: len(ticks(conn, "Beat")) >= 3, 60, "three ticks enqueued")
    assert made.leading
    found = ticks(conn, "Beat")
    assert_every_tick_once(found, timedelta(seconds=1))
    row = conn.execute(
        "SELECT queue, priority, args FROM que_jobs WHERE job_class = 'Beat' LIMIT 1"
    ).fetchone()
    assert row == ("timers", 5, [1, "x"])
    last = conn.execute("SELECT last_tick, last_job_id FROM que_schedules").fetchall()
    assert len(last) == 1 and last[0][0] >= found[-1]
    assert conn.execute("SELECT 1 FROM que_jobs WHERE job_id = %s", [last[0][1]]).fetchone(), (
        "last_job_id names the job of the last tick"
    )


async def test_one_of_two_schedulers_leads_and_the_other_takes_over(
    side: Side,
    qc: AnyClient,
    db_url: str,
    conn: psycopg.Connection[Any],
    scheduler: Callable[..., Any],
) -> None:
    every = que.Schedule("Beat", every=1, missed="all")
    first = await scheduler(qc, [every])
    await wait_until(lambda: first.leading, 30, "the first scheduler leads")
    async with side.client(db_url, max_connections=4) as other_client:
        second = await scheduler(other_client, [every])
        await wait_until(lambda: len(ticks(conn, "Beat")) >= 2, 60, "two ticks")
        assert not second.leading, "two schedulers of one set led at once"
        assert await side.call(first.shutdown, 30)
        await wait_until(lambda: second.leading, 30, "the second scheduler takes over")
        count = len(ticks(conn, "Beat"))
        await wait_until(lambda: len(ticks(conn, "Beat")) >= count + 2, 60, "ticks go on")
        assert_every_tick_once(ticks(conn, "Beat"), timedelta(seconds=1))
        assert await side.call(second.shutdown, 30)


async def test_two_leaders_of_overlapping_sets_still_enqueue_each_tick_once(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], scheduler: Callable[..., Any]
) -> None:
    # Two sets that share a schedule (a deploy that adds one) lead separately.
    shared = que.Schedule("Shared", every=1, missed="all")
    old = await scheduler(qc, [shared])
    new = await scheduler(qc, [shared, que.Schedule("Added", every=60)])
    await wait_until(lambda: old.leading and new.leading, 30, "both sets lead")
    await wait_until(lambda: len(ticks(conn, "Shared")) >= 4, 60, "four ticks")
    assert_every_tick_once(ticks(conn, "Shared"), timedelta(seconds=1))


async def enqueue_due(side: Side, client: AnyClient, schedules: list[que.Schedule]) -> float:
    """One look of a scheduler that is not started, on a connection of its own."""
    cls = que.AsyncScheduler if side.is_async else que.Scheduler
    made = cls(client, schedules)
    conn = await r(client.connections.take())
    try:
        return float(await r(made.enqueue_due(conn)))
    finally:
        await r(client.connections.give_back(conn))


def set_last_tick(conn: psycopg.Connection[Any], name: str, ago: timedelta) -> None:
    conn.execute(
        "UPDATE que_schedules SET last_tick = date_trunc('minute', now()) - %s WHERE name = %s",
        [ago, name],
    )


def minute_now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT date_trunc('minute', clock_timestamp())").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("missed", ["latest", "all", "skip"])
async def test_ticks_missed_while_no_worker_ran_follow_the_policy(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], missed: str
) -> None:
    schedule = que.Schedule("Minutely", cron="* * * * *", missed=missed)  # type: ignore[arg-type]
    await enqueue_due(side, qc, [schedule])
    assert ticks(conn, "Minutely") == [], "a schedule seen the first time enqueues nothing"
    assert conn.execute("SELECT count(*) FROM que_schedules").fetchone() == (1,)
    before = minute_now(conn)
    conn.execute(
        "UPDATE que_schedules SET last_tick = %s WHERE name = 'Minutely'",
        [before - timedelta(hours=1)],
    )
    await enqueue_due(side, qc, [schedule])
    after = minute_now(conn)  # the minute may have turned meanwhile
    found = ticks(conn, "Minutely")
    assert found and before <= found[-1] <= after
    if missed == "all":
        assert found[0] == before - timedelta(minutes=59)
        assert_every_tick_once(found, timedelta(minutes=1))
    else:
        # latest: the most recent missed tick once; skip: only a tick less than
        # a minute late, which for a minutely cron is always the latest one.
        assert len(found) == 1
    # Looking again at once enqueues nothing more.
    await enqueue_due(side, qc, [schedule])
    assert ticks(conn, "Minutely") == found


async def test_a_cron_schedule_in_a_time_zone_ticks_at_local_times(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    daily = que.Schedule("Daily", cron="30 9 * * *", timezone="America/New_York", missed="all")
    await enqueue_due(side, qc, [daily])
    set_last_tick(conn, "Daily", timedelta(days=3))
    await enqueue_due(side, qc, [daily])
    found = ticks(conn, "Daily")
    assert len(found) in (3, 4)
    for tick in found:
        local = tick.astimezone(daily_zone())
        assert (local.hour, local.minute) == (9, 30)


def daily_zone() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/New_York")


async def test_a_scheduler_is_refused_without_the_extension_tables(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    que.migrate_extension(conn, 1)
    async with side.client(db_url) as client:
        cls = que.AsyncScheduler if side.is_async else que.Scheduler
        made = cls(client, [que.Schedule("Beat", every=1)])
        with pytest.raises(
            que.QueError, match=r"needs the que-pg extension \(version 2 or later\)"
        ):
            made.start()


async def test_behind_pgbouncer_a_scheduler_needs_a_direct_connection(
    side: Side, bouncer_url: str
) -> None:
    async with side.client(bouncer_url, pgbouncer=True) as client:
        made = (que.AsyncScheduler if side.is_async else que.Scheduler)(
            client, [que.Schedule("Beat", every=1)]
        )
        with pytest.raises(que.QueError, match="listen_url"):
            made.start()


async def test_status_lists_last_and_next_ticks(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    schedules = [que.Schedule("A", cron="0 * * * *"), que.Schedule("B", every=30)]
    cls = que.AsyncScheduler if side.is_async else que.Scheduler
    made = cls(qc, schedules)
    before = await r(made.status())
    assert [(s.schedule.name, s.last_tick, s.last_job_id) for s in before] == [
        ("A", None, None),
        ("B", None, None),
    ]
    await enqueue_due(side, qc, schedules)
    after = await r(made.status())
    now = datetime.now(timezone.utc)
    for status in after:
        assert status.last_tick is not None and status.last_tick <= now + timedelta(seconds=5)
        assert status.next_tick > status.last_tick


def test_the_tick_statement_writes_a_tick_once(conn: psycopg.Connection[Any]) -> None:
    tick = datetime(2026, 1, 1, tzinfo=timezone.utc)
    params = {
        "name": "S",
        "tick": tick,
        "queue": "",
        "priority": 100,
        "job_class": "S",
        "args": "[]",
    }
    first = conn.execute(sql.ENQUEUE_TICK, params).fetchall()
    again = conn.execute(sql.ENQUEUE_TICK, params).fetchall()
    earlier = conn.execute(sql.ENQUEUE_TICK, {**params, "tick": tick - timedelta(1)}).fetchall()
    assert len(first) == 1 and again == [] and earlier == []
    assert ticks(conn, "S") == [tick]
