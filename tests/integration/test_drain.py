"""que.testing.drain on a real database, on both faces: due jobs worked by
the real worker, retries and scheduled jobs as time passes, and the limits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg
import pytest

import que
from que.testing import advance, advance_async, drain, drain_async

from ..sides import AnyClient, Side


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
