"""Pausing and resuming queues: the client API, and every Python worker
(Worker, WorkerPool, BatchWorker, on both faces) honouring it."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

import que

from ..helpers import advisory_lock_count
from ..sides import AnyClient, Engines, Side, r, wait_until

ENGINES = ("classic", "pool", "batch")


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def job_ids(conn: psycopg.Connection[Any]) -> set[int]:
    return {row[0] for row in conn.execute("SELECT job_id FROM que_jobs").fetchall()}


async def worked_another_turn(
    side: Side, client: AnyClient, ran: list[int], queue: str = "other"
) -> int:
    """Wait for a job of another queue that the worker also works: the worker
    took turns at the paused queue in the meantime (each claim tries it first
    or beside the other), so a job of it would have been claimed."""
    marker = await r(client.enqueue(side.job_class(type="Quick", queue=queue)))
    await wait_until(lambda: marker.id in ran, 60, "the marker job ran")
    return int(marker.id)


@pytest.fixture
async def run(side: Side) -> AsyncIterator[Engines]:
    """Starts workers on the client each test names, polling every 0.2 s, where
    "classic" is one Worker and a batched engine runs two jobs at once; stops
    each after the test."""
    engines = Engines(side, interval=0.2, classic="worker", concurrency=2)
    yield engines
    await engines.stop_all()


async def test_pause_resume_and_list(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    assert await r(qc.paused_queues()) == {}
    assert await r(qc.pause_queue("mail")) is True
    assert await r(qc.pause_queue("mail")) is False  # already paused
    assert await r(qc.pause_queue("")) is True  # the default queue is a queue like any
    paused = await r(qc.paused_queues())
    assert sorted(paused) == ["", "mail"]
    assert all(isinstance(at, datetime) and at.tzinfo is not None for at in paused.values())
    assert scalar(conn, "SELECT count(*) FROM que_paused_queues") == 2
    assert await r(qc.resume_queue("mail")) is True
    assert await r(qc.resume_queue("mail")) is False  # not paused any more
    assert list(await r(qc.paused_queues())) == [""]
    with pytest.raises(ValueError, match="queue"):
        await r(qc.pause_queue(42))  # type: ignore[arg-type]


async def test_pausing_notifies_in_the_same_transaction(
    side: Side, qc: AnyClient, db_url: str
) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN que_pause")
        await r(qc.pause_queue("mail"))
        await r(qc.pause_queue("mail"))  # no change: no notification
        await r(qc.resume_queue("mail"))
        notes = [(n.channel, n.payload) for n in listener.notifies(timeout=2, stop_after=3)]
    assert notes == [("que_pause", "mail"), ("que_pause", "mail")]


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_paused_queue_is_not_claimed_until_resumed(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    run: Any,
    engine: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Pause while a job runs: it finishes and is deleted, jobs enqueued after the
    pause wait, another queue of the same worker goes on; resume: they run."""
    caplog.set_level(logging.INFO, logger="que")
    started = threading.Event()
    release = threading.Event()
    ran: list[int] = []

    async def slow(job: Any) -> None:
        started.set()
        await asyncio.to_thread(release.wait, 60)

    async def quick(job: Any) -> None:
        ran.append(job.id)

    work = {"Slow": side.handler(slow), "Quick": side.handler(quick)}
    await run(engine, work, client=qc, queue=["mail", "other"])
    running = await r(qc.enqueue(side.job_class(type="Slow", queue="mail")))
    await wait_until(started.is_set, 60, "the slow job started")

    assert await r(qc.pause_queue("mail")) is True
    waiting = [await r(qc.enqueue(side.job_class(type="Quick", queue="mail"))) for _ in range(3)]
    other = await r(qc.enqueue(side.job_class(type="Quick", queue="other")))
    release.set()
    await wait_until(lambda: running.id not in job_ids(conn), 60, "the running job finished")
    await wait_until(lambda: other.id in ran, 60, "the other queue's job ran")
    await wait_until(lambda: "'mail' is paused" in caplog.text, 60, "the worker logged the pause")
    marker = await worked_another_turn(side, qc, ran)
    assert {job.id for job in waiting} <= job_ids(conn)
    assert not set(ran) & {job.id for job in waiting}

    assert await r(qc.resume_queue("mail")) is True
    await wait_until(lambda: not job_ids(conn), 60, "the resumed queue's jobs ran")
    assert set(ran) == {other.id, marker} | {job.id for job in waiting}
    await wait_until(
        lambda: "'mail' was resumed" in caplog.text, 60, "the worker logged the resume"
    )
    assert caplog.text.count("'mail' is paused") == 1  # once per change, not per look


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_pause_outlives_a_restart(
    side: Side, db_url: str, conn: psycopg.Connection[Any], run: Any, engine: str
) -> None:
    """A queue paused by one client stays paused for a new client and worker,
    which start claiming once another client resumes it."""
    async with side.client(db_url) as first:
        await r(first.pause_queue("mail"))
    ran: list[int] = []

    async def quick(job: Any) -> None:
        ran.append(job.id)

    async with side.client(db_url, max_connections=8) as client:
        assert list(await r(client.paused_queues())) == ["mail"]
        job = await r(client.enqueue(side.job_class(type="Quick", queue="mail")))
        other = await r(client.enqueue(side.job_class(type="Quick", queue="")))
        await run(engine, {"Quick": side.handler(quick)}, client=client, queue=["mail", ""])
        await wait_until(lambda: other.id in ran, 60, "the unpaused queue's job ran")
        await worked_another_turn(side, client, ran, queue="")
        assert job.id in job_ids(conn) and job.id not in ran
        async with side.client(db_url) as another:
            assert await r(another.resume_queue("mail")) is True
        await wait_until(lambda: job.id in ran, 60, "the job ran after the resume")


async def test_a_listening_engine_reacts_to_the_notification(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """With a wake interval and a pause check period of five minutes, only the
    NOTIFY of a resume by another client can make the engine look again within
    the test's (generous) wait."""

    ran: list[int] = []

    async def quick(job: Any) -> None:
        ran.append(job.id)

    async with side.client(db_url, max_connections=8) as client:
        await r(client.pause_queue("mail"))
        job = await r(client.enqueue(side.job_class(type="Quick", queue="mail")))
        client.pauses.book.period = 300.0
        engine = side.batch_worker(
            client, {"Quick": side.handler(quick)}, queue="mail", interval=300
        )
        assert engine.listen
        side.start_engine(engine)
        try:
            await wait_until(
                lambda: client.pauses.book.read_at is not None, 60, "the engine read the pause"
            )
            async with side.client(db_url) as another:
                await r(another.resume_queue("mail"))
            await wait_until(lambda: job.id in ran, 60, "the job ran after the resume")
        finally:
            assert await side.stop_engine(engine, 30)


async def test_lock_job_does_not_look_at_pauses(side: Side, qc: AnyClient) -> None:
    """lock_job is the low-level claim: pauses are for workers."""
    await r(qc.pause_queue("mail"))
    job = await r(qc.enqueue(side.job_class(type="T", queue="mail")))
    claimed = await r(qc.lock_job("mail"))
    assert claimed is not None and claimed.id == job.id
    await r(claimed.delete())
    await r(claimed.done())


async def test_pausing_needs_extension_version_2(
    side: Side, db_url: str, conn: psycopg.Connection[Any], run: Any
) -> None:
    """Refused with a clear error on extension version 1; workers do not look."""
    que.migrate_extension(conn, 1)
    ran: list[int] = []

    async def quick(job: Any) -> None:
        ran.append(job.id)

    async with side.client(db_url, max_connections=8) as client:
        assert client.extension_version == 1
        for call in (
            lambda: client.pause_queue("mail"),
            lambda: client.resume_queue("mail"),
            client.paused_queues,
        ):
            with pytest.raises(
                que.SchemaVersionError, match=r"needs the que-pg extension \(version 2"
            ):
                await r(call())
        job = await r(client.enqueue(side.job_class(type="Quick", queue="mail")))
        await run("batch", {"Quick": side.handler(quick)}, client=client, queue="mail")
        classic = await run("classic", {"Quick": side.handler(quick)}, client=client, queue="mail")
        await wait_until(lambda: job.id in ran, 60, "the job ran")
        # The classic worker's loop must have begun before its client closes
        # (on a loaded machine its thread can start after the job ran).
        await wait_until(lambda: classic.working, 60, "the classic worker runs")


async def test_an_engine_hands_back_claimed_jobs_of_a_paused_queue(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    """Jobs the engine claimed ahead (its buffer) do not start once their queue
    is paused: they go back unlocked and run after the resume."""
    started: list[int] = []
    release = threading.Event()

    async def slow(job: Any) -> None:
        started.append(job.id)
        await asyncio.to_thread(release.wait, 60)

    jobs = await r(qc.enqueue_many([side.job_class(type="Slow", queue="mail") for _ in range(4)]))
    engine = side.batch_worker(
        qc, {"Slow": side.handler(slow)}, queue="mail", concurrency=1, buffer=3, interval=0.2
    )
    side.start_engine(engine)
    try:
        await wait_until(lambda: advisory_lock_count(db_url) == 4, 60, "one running, 3 ahead")
        assert await r(qc.pause_queue("mail"))
        await wait_until(lambda: qc.pauses.is_paused("mail"), 60, "the engine read the pause")
        release.set()
        await wait_until(lambda: advisory_lock_count(db_url) == 0, 60, "the others handed back")
        assert len(started) == 1
        assert job_ids(conn) == {job.id for job in jobs} - set(started)
        assert await r(qc.resume_queue("mail"))
        await wait_until(lambda: not job_ids(conn), 60, "the rest ran after the resume")
        assert sorted(started) == sorted(job.id for job in jobs)
    finally:
        release.set()
        assert await side.stop_engine(engine, 30)
