"""Retry limits, que.Discard, que.Snooze and cancel requests, on the classic
worker and the batched engine, on both faces, and behind PgBouncer."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import que
from que import sql

from ..sides import AnyClient, Side, r, wait_until

ENGINES = ("classic", "batch")

DEAD = "SELECT job_id, error_count, last_error, outcome, reason FROM que_dead_jobs"


def rows(conn: psycopg.Connection[Any], query: str) -> list[tuple[Any, ...]]:
    return conn.execute(query).fetchall()


def job_rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return rows(conn, "SELECT job_id, error_count, last_error, run_at - now() FROM que_jobs")


def insert_failed_before(conn: psycopg.Connection[Any], job_type: str, error_count: int) -> int:
    """A due job that already failed ``error_count`` times (no backoff to wait for)."""
    row = conn.execute(
        "INSERT INTO que_jobs (job_class, error_count, last_error) VALUES (%s, %s, 'before') "
        "RETURNING job_id",
        [job_type, error_count],
    ).fetchone()
    assert row is not None
    return int(row[0])


async def fails(job: Any) -> None:
    raise RuntimeError("still broken")


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_job_past_its_attempts_is_buried(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], run: Any, engine: str
) -> None:
    limited = insert_failed_before(conn, "Broken", 2)
    unlimited = insert_failed_before(conn, "Tolerated", 2)
    handler = side.handler(fails)
    await run(
        engine,
        {"Broken": handler, "Tolerated": handler},
        max_attempts=3,
        max_attempts_per_type={"Tolerated": None},
    )
    await wait_until(lambda: len(rows(conn, DEAD)) == 1, 30, "the job buried")
    await wait_until(lambda: job_rows(conn)[0][1] == 3, 30, "the unlimited job's failure")
    [(job_id, error_count, last_error, outcome, reason)] = rows(conn, DEAD)
    assert (job_id, error_count, outcome) == (limited, 3, "exhausted")
    assert "still broken" in last_error and "RuntimeError" in last_error
    assert "failed 3 time(s)" in reason and "max_attempts 3" in reason
    [(job_id, error_count, last_error, _)] = job_rows(conn)
    assert (job_id, error_count) == (unlimited, 3)  # retried with backoff, as Ruby and Go do


@pytest.mark.parametrize("engine", ENGINES)
async def test_discard_buries_and_snooze_reschedules(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], run: Any, engine: str
) -> None:
    async def discard(job: Any) -> None:
        raise que.Discard("customer deleted")

    async def snooze(job: Any) -> None:
        raise que.Snooze(3600)

    def snooze_returned(job: Any) -> que.Snooze:
        return que.Snooze(7200)

    dropped = await r(qc.enqueue(side.job_class(type="Discard")))
    later = await r(qc.enqueue(side.job_class(type="Snooze")))
    much_later = await r(qc.enqueue(side.job_class(type="SnoozeReturned")))
    work = {
        "Discard": side.handler(discard),
        "Snooze": side.handler(snooze),
        "SnoozeReturned": snooze_returned,
    }
    await run(engine, work)
    await wait_until(
        lambda: (
            len(rows(conn, DEAD)) == 1
            and all(row[3].total_seconds() > 3000 for row in job_rows(conn))
        ),
        30,
        "the discard and both snoozes written",
    )
    [(job_id, error_count, last_error, outcome, reason)] = rows(conn, DEAD)
    assert (job_id, error_count, outcome, reason) == (
        dropped.id,
        1,
        "discarded",
        "customer deleted",
    )
    assert "Discard" in last_error
    snoozed = {row[0]: row for row in job_rows(conn)}
    assert set(snoozed) == {later.id, much_later.id}
    assert snoozed[later.id][1:3] == (0, None)  # no failure counted
    assert 3500 < snoozed[later.id][3].total_seconds() <= 3600
    assert 7100 < snoozed[much_later.id][3].total_seconds() <= 7200


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_running_job_is_cancelled_on_request(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], run: Any, engine: str
) -> None:
    """An async job is cancelled; a job in a thread sees ``job.cancelled`` and
    stops; one that finishes anyway is deleted as usual. The requests go."""
    started: dict[int, threading.Event] = {}

    async def waits(job: Any) -> None:
        started[job.id].set()
        await asyncio.sleep(120)

    def polls(job: Any) -> None:
        started[job.id].set()
        deadline = time.monotonic() + 120
        while not job.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        raise RuntimeError("stopped: cancelled")

    def finishes(job: Any) -> None:
        started[job.id].set()
        while not job.cancelled:
            time.sleep(0.01)

    work: dict[str, Any] = {"Polls": polls, "Finishes": finishes}
    types = ["Polls", "Finishes"]
    if side.is_async:
        work["Waits"] = waits
        types.append("Waits")
    jobs = [await r(qc.enqueue(side.job_class(type=t))) for t in types]
    for job in jobs:
        started[job.id] = threading.Event()
    await run(engine, work, **({"concurrency": 4} if engine == "batch" else {}))
    for job in jobs:
        await wait_until(started[job.id].is_set, 60, f"{job.type} started")
        conn.execute(sql.REQUEST_CANCEL, {"job_id": job.id})
    await wait_until(lambda: not job_rows(conn), 60, "every job finished")
    dead = {row[0]: row for row in rows(conn, DEAD)}
    expected = {job.id for job in jobs if job.type != "Finishes"}
    assert set(dead) == expected
    for row in dead.values():
        assert row[3] == "cancelled" and row[1] == 0
        assert "cancelled while running" in row[4]
    assert rows(conn, "SELECT job_id FROM que_cancel_requests") == []


async def test_retry_limits_need_the_extension(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    que.migrate_extension(conn, 0)
    async with side.client(db_url) as client:
        assert client.extension_version == 0
        engine = side.batch_worker(client, {}, max_attempts=3)
        with pytest.raises(que.QueError, match="que-pg extension"):
            side.start_engine(engine)
        worker = side.worker(client, {}, max_attempts=3)
        with pytest.raises(que.QueError, match="que-pg extension"):
            await side.call(worker.work)


@pytest.mark.parametrize("engine", ENGINES)
async def test_without_the_extension_a_discard_is_a_failure(
    side: Side, db_url: str, conn: psycopg.Connection[Any], engine: str
) -> None:
    que.migrate_extension(conn, 0)

    async def discard(job: Any) -> None:
        raise que.Discard("give up")

    async with side.client(db_url, max_connections=12) as client:
        job = await r(client.enqueue(side.job_class(type="D")))
        if engine == "batch":
            worker = side.batch_worker(client, {"D": side.handler(discard)}, interval=0.05)
            side.start_engine(worker)
        else:
            worker = side.worker_pool(client, {"D": side.handler(discard)}, 1, interval=0.05)
            worker.start()
        try:
            await wait_until(lambda: job_rows(conn)[0][1] == 1, 30, "the failure recorded")
        finally:
            if engine == "batch":
                assert await side.stop_engine(worker, 30)
            else:
                assert await side.call(worker.shutdown, 30)
    [(job_id, _, last_error, _)] = job_rows(conn)
    assert job_id == job.id
    assert "not moved to que_dead_jobs" in last_error and "give up" in last_error


async def test_lock_job_can_snooze_and_discard(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    first = await r(qc.enqueue(side.job_class(type="T", priority=1)))
    await r(qc.enqueue(side.job_class(type="T", priority=2)))
    job = await r(qc.lock_job())
    assert job.id == first.id
    await r(job.snooze(60))
    await r(job.done())
    job = await r(qc.lock_job())
    await r(job.discard("not needed"))
    await r(job.done())
    assert [row[3:] for row in rows(conn, DEAD)] == [("discarded", "not needed")]
    [(job_id, error_count, _, delay)] = job_rows(conn)
    assert job_id == first.id and error_count == 0 and delay.total_seconds() > 50


@pytest.mark.parametrize("engine", ENGINES)
async def test_dead_jobs_past_the_retention_are_purged(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], run: Any, engine: str
) -> None:
    conn.execute(
        "INSERT INTO que_dead_jobs (priority, run_at, job_id, job_class, args, error_count, "
        "queue, died_at, outcome, reason) VALUES "
        "(100, now(), 1001, 'Old', '[]', 5, '', now() - interval '40 days', 'exhausted', 'x'), "
        "(100, now(), 1002, 'Recent', '[]', 5, '', now() - interval '2 days', 'exhausted', 'x')"
    )
    await run(engine, {}, dead_retention=timedelta(days=30))
    await wait_until(lambda: len(rows(conn, DEAD)) == 1, 30, "the old dead job purged")
    assert [row[0] for row in rows(conn, DEAD)] == [1002]
