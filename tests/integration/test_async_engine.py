"""The batched engine's asyncio face: the same guarantees as BatchWorker."""

import asyncio
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

import que
from que.async_engine import AsyncBatchWorker
from que.schema import install_notify

from ..helpers import advisory_lock_count, assert_clean


async def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def remaining(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
async def aclient(db_url: str) -> AsyncIterator[que.AsyncClient]:
    async with que.AsyncClient(db_url, max_connections=12) as client:
        yield client
        assert_clean(client, db_url)  # type: ignore[arg-type]


async def test_async_engine_works_every_job_exactly_once(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    counts: Counter[int] = Counter()

    async def count(job: que.AsyncJob) -> None:
        assert job.id is not None
        counts[job.id] += 1
        await asyncio.sleep(0)

    await aclient.enqueue_many([que.Job(type="Count", args=[i]) for i in range(3000)])
    engine = AsyncBatchWorker(aclient, {"Count": count}, concurrency=20, interval=0.05)
    engine.start()
    await eventually(lambda: remaining(conn) == 0)
    assert await engine.shutdown(timeout=30)
    assert len(counts) == 3000 and set(counts.values()) == {1}
    assert advisory_lock_count(db_url) == 0


async def test_async_engine_runs_sync_functions_in_threads(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def blocking(job: que.AsyncJob) -> None:
        threads.append(threading.get_ident())

    await aclient.enqueue_many([que.Job(type="B") for _ in range(5)])
    engine = AsyncBatchWorker(aclient, {"B": blocking}, concurrency=2, interval=0.05)
    engine.start()
    await eventually(lambda: remaining(conn) == 0)
    assert await engine.shutdown(timeout=30)
    assert len(threads) == 5 and loop_thread not in threads


async def test_async_engine_records_failures_and_commits_transactions(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    async def effect(job: que.AsyncJob) -> None:
        tx = await job.transaction()
        await tx.execute("INSERT INTO effects VALUES (%s)", [job.args[0]])
        if job.args[0] % 2:
            raise RuntimeError("odd")

    await aclient.enqueue_many([que.Job(type="E", args=[i]) for i in range(10)])
    await aclient.enqueue(que.Job(type="Nobody"))
    engine = AsyncBatchWorker(aclient, {"E": effect}, concurrency=3, interval=0.05)
    engine.start()
    await eventually(
        lambda: (
            conn.execute("SELECT count(*) FROM que_jobs WHERE error_count = 1").fetchone() == (6,)
        )
    )
    assert await engine.shutdown(timeout=30)
    assert remaining(conn) == 6
    assert sorted(r[0] for r in conn.execute("SELECT n FROM effects").fetchall()) == [0, 2, 4, 6, 8]
    errors = [
        r[0] for r in conn.execute("SELECT last_error FROM que_jobs ORDER BY job_id").fetchall()
    ]
    assert all("RuntimeError: odd" in e for e in errors[:5])
    assert "unknown job type" in errors[5]


async def test_async_engine_wakes_on_notify(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any]
) -> None:
    install_notify(conn)
    done = asyncio.Event()

    async def wake(job: que.AsyncJob) -> None:
        done.set()

    engine = AsyncBatchWorker(aclient, {"Wake": wake}, concurrency=1, interval=600)
    engine.start()
    await eventually(
        lambda: (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND query = 'LISTEN que_jobs'"
            ).fetchone()
            == (1,)
        )
    )
    await aclient.enqueue(que.Job(type="Wake"))
    await asyncio.wait_for(done.wait(), 60)
    assert await engine.shutdown(timeout=30)


async def test_async_engine_shutdown_hands_back_unstarted_jobs(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    running = asyncio.Event()
    release = asyncio.Event()

    async def slow(job: que.AsyncJob) -> None:
        running.set()
        await release.wait()

    await aclient.enqueue_many([que.Job(type="Slow") for _ in range(5)])
    engine = AsyncBatchWorker(aclient, {"Slow": slow}, concurrency=1, buffer=4, interval=0.05)
    engine.start()
    await asyncio.wait_for(running.wait(), 30)
    await eventually(lambda: advisory_lock_count(db_url) == 5)
    stopping = asyncio.create_task(engine.shutdown(timeout=30))
    await eventually(lambda: advisory_lock_count(db_url) == 1)
    release.set()
    assert await stopping
    assert remaining(conn) == 4
    assert advisory_lock_count(db_url) == 0


async def test_async_engine_refuses_a_sync_client(db_url: str) -> None:
    with que.Client(db_url) as client, pytest.raises(TypeError, match="AsyncClient"):
        AsyncBatchWorker(client, {})  # type: ignore[arg-type]


async def test_async_job_past_its_timeout_is_cancelled_and_retried(
    aclient: que.AsyncClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    cancelled = asyncio.Event()

    async def hang(job: que.AsyncJob) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await aclient.enqueue(que.Job(type="Hang"))
    engine = AsyncBatchWorker(aclient, {"Hang": hang}, concurrency=1, interval=0.05, timeout=0.2)
    engine.start()
    await eventually(lambda: conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,))
    assert await engine.shutdown(timeout=30)
    assert cancelled.is_set()
    row = conn.execute(
        "SELECT last_error, extract(epoch FROM run_at - now())::float FROM que_jobs"
    ).fetchone()
    assert row is not None
    assert "JobTimeoutError: job Hang id=" in row[0] and "timeout of 0.2s" in row[0]
    assert 2 < row[1] <= 4  # retried after the backoff
    assert advisory_lock_count(db_url) == 0
