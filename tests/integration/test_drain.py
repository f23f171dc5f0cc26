"""que.testing.drain on a real database, on both faces: due jobs worked by
the real worker, retries and scheduled jobs as time passes, and the limits."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import que
from que import sql
from que.testing import advance, advance_async, drain, drain_async

from ..sides import AnyClient, Side, claimed, r


async def run_drain(side: Side, client: AnyClient, *args: Any, **options: Any) -> int:
    if side.is_async:
        return await drain_async(client, *args, **options)
    return drain(client, *args, **options)


async def run_advance(side: Side, client: AnyClient, by: Any) -> None:
    if side.is_async:
        await advance_async(client, by)
    else:
        advance(client, by)


def count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


async def enqueue(side: Side, client: AnyClient, job: Any) -> Any:
    if side.is_async:
        return await client.enqueue(job)
    return client.enqueue(job)


async def test_drain_works_due_jobs_of_every_queue_and_leaves_later_ones(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    seen: list[Any] = []
    work_map = {"T": lambda job: seen.append(job.args[0])}
    for n, queue in enumerate(["", "mail", "billing"]):
        await enqueue(side, qc, side.job_class(type="T", args=[n], queue=queue))
    await enqueue(side, qc, side.job_class(type="T", args=["later"]))
    conn.execute(
        "UPDATE que_jobs SET run_at = now() + interval '1 hour' WHERE args::text = '[\"later\"]'"
    )
    assert await run_drain(side, qc, work_map) == 3
    assert sorted(seen) == [0, 1, 2] and count(conn) == 1
    # Time passes: the later job comes due.
    assert await run_drain(side, qc, work_map, until=timedelta(minutes=59)) == 0
    assert await run_drain(side, qc, work_map, until=timedelta(minutes=2)) == 1
    assert seen[-1] == "later" and count(conn) == 0


async def test_retries_run_as_time_passes_until_the_limit(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    reg = que.Registry()
    runs: list[int] = []

    @que.job(name="Flaky", max_attempts=3, registry=reg)
    def flaky(n: int) -> None:
        runs.append(que.current_job().error_count)
        raise RuntimeError("down")

    await enqueue(side, qc, side.job_class(type="Flaky", args=[1]))
    assert await run_drain(side, qc, reg.work_map()) == 1  # the retry is 4 s away
    assert runs == [0]
    # Default backoff: 4 s, then 19 s; both within a minute.
    assert await run_drain(side, qc, reg.work_map(), until=60) == 2
    assert runs == [0, 1, 2] and count(conn) == 0
    assert conn.execute("SELECT outcome FROM que_dead_jobs").fetchall() == [("exhausted",)]


async def test_advance_moves_every_job(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("INSERT INTO que_jobs (job_class, run_at) VALUES ('T', now() + interval '10 min')")
    await run_advance(side, qc, timedelta(minutes=9))
    row = conn.execute(
        "SELECT run_at - now() BETWEEN interval '50 s' AND interval '61 s' FROM que_jobs"
    ).fetchone()
    assert row == (True,)
    with pytest.raises(ValueError, match="non-negative"):
        await run_advance(side, qc, -1)


async def test_a_drain_that_never_ends_is_stopped(side: Side, qc: AnyClient) -> None:
    def again(job: Any) -> None:
        raise que.Snooze(0)

    await enqueue(side, qc, side.job_class(type="Again"))
    with pytest.raises(que.QueError, match="more than max_jobs=5"):
        await run_drain(side, qc, {"Again": again}, max_jobs=5)


async def guarded_drain(side: Side, client: AnyClient, *args: Any, **options: Any) -> int:
    """A drain that fails the test instead of running forever."""
    if side.is_async:
        return await asyncio.wait_for(drain_async(client, *args, **options), timeout=60)
    return await asyncio.wait_for(asyncio.to_thread(drain, client, *args, **options), 60)


async def test_a_due_job_of_another_queue_does_not_stall_the_drain(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    seen: list[Any] = []
    work_map = {"T": lambda job: seen.append(job.args[0])}
    await enqueue(side, qc, side.job_class(type="T", args=["b"], queue="b"))
    assert await guarded_drain(side, qc, work_map, queues=["a"]) == 0
    # Time passes for queue "a" only: its later job runs, "b"'s job waits.
    await enqueue(side, qc, side.job_class(type="T", args=["a"], queue="a"))
    conn.execute("UPDATE que_jobs SET run_at = now() + interval '10 s' WHERE queue = 'a'")
    assert await guarded_drain(side, qc, work_map, queues="a", until=60) == 1
    assert seen == ["a"] and count(conn) == 1


async def test_a_due_job_of_a_paused_queue_does_not_stall_the_drain(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    work_map = {"T": lambda job: None}
    await enqueue(side, qc, side.job_class(type="T", queue="mail"))
    await r(qc.pause_queue("mail"))
    assert await guarded_drain(side, qc, work_map) == 0
    assert await guarded_drain(side, qc, work_map, until=30) == 0
    assert count(conn) == 1


async def test_a_due_job_another_session_holds_does_not_stall_the_drain(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    work_map = {"T": lambda job: None}
    await enqueue(side, qc, side.job_class(type="T", args=[1]))
    async with claimed(qc):
        assert await guarded_drain(side, qc, work_map) == 0
        assert await guarded_drain(side, qc, work_map, until=30) == 0
    assert await guarded_drain(side, qc, work_map) == 1
    assert count(conn) == 0


async def test_a_due_job_the_drain_cannot_claim_raises_instead_of_looping(
    side: Side, qc: AnyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The safety net behind the query: were a held job taken for workable,
    # the drain would say so rather than let time pass a millisecond at a time.
    blind = """
        SELECT EXTRACT(epoch FROM run_at - now())::float8 AS wait, job_id, queue
        FROM que_jobs WHERE queue = ANY(%(queues)s::text[]) ORDER BY run_at LIMIT 1
    """
    monkeypatch.setattr(sql, "TESTING_NEXT_DUE", blind)
    job = await enqueue(side, qc, side.job_class(type="T"))
    async with claimed(qc):
        with pytest.raises(que.QueError, match=f"cannot work job {job.id} of queue ''"):
            await guarded_drain(side, qc, {"T": lambda job: None})
