"""Workers and worker pools: run, fail, retry, shut down, survive; on both sides.

Work functions are written once as ``async def`` and adapted to the sync
worker by ``side.handler``; tests marked so use plain sync functions on both
sides (the async worker runs those in a thread).
"""

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any

import psycopg
import pytest

import que

from ..helpers import advisory_lock_count, assert_clean_either, no_unawaited_coroutine
from ..sides import AnyClient, Side, r, wait_event, wait_until

KINDS = ("sync-def", "async-def")


def remaining(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", KINDS)
async def test_successful_job_is_deleted(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], kind: str
) -> None:
    seen: list[Any] = []

    async def record(job: Any) -> None:
        seen.append(job.args)

    func = side.handler(record) if kind == "async-def" else (lambda job: seen.append(job.args))
    await r(qc.enqueue(que.Job(type="Ok", args=[1, 2])))
    worker = side.worker(qc, {"Ok": func}, interval=0.05)
    assert await side.call(worker.work_one) is True
    assert seen == [[1, 2]]
    assert remaining(conn) == 0
    assert await side.call(worker.work_one) is False


@pytest.mark.parametrize("kind", KINDS)
async def test_failing_job_keeps_its_row_with_the_traceback(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    async def charge(job: Any) -> None:
        raise RuntimeError(f"card declined for {job.args[0]}")

    def charge_sync(job: Any) -> None:
        raise RuntimeError(f"card declined for {job.args[0]}")

    func = side.handler(charge) if kind == "async-def" else charge_sync
    await r(qc.enqueue(que.Job(type="Charge", args=["acct-9"])))
    worker = side.worker(qc, {"Charge": func}, interval=0.05)
    with caplog.at_level(logging.WARNING, logger=side.worker_logger):
        assert await side.call(worker.work_one) is True
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == 1
    assert "RuntimeError: card declined for acct-9" in row[1]
    assert "Traceback (most recent call last)" in row[1]
    assert ("in charge" if kind == "async-def" else "in charge_sync") in row[1]
    assert "Charge" in caplog.text and "failed" in caplog.text


async def test_unknown_type_is_an_error_like_any_other(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await r(qc.enqueue(que.Job(type="Nobody::Knows")))
    worker = side.worker(qc, {"Other": print}, interval=0.05)
    assert await side.call(worker.work_one) is True
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row == (1, 'unknown job type: "Nobody::Knows"')  # as Go's qg writes it


async def test_job_that_deletes_itself_in_its_transaction(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    async def effect(job: Any) -> None:
        tx = await r(job.transaction())
        await r(tx.execute("INSERT INTO effects VALUES (%s)", [job.args[0]]))
        await r(job.delete())

    await r(qc.enqueue(que.Job(type="E", args=[5])))
    assert await side.call(side.worker(qc, {"E": side.handler(effect)}).work_one)
    assert conn.execute("SELECT n FROM effects").fetchall() == [(5,)]
    assert remaining(conn) == 0


async def test_handler_returning_normally_commits_its_open_transaction(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    async def effect(job: Any) -> None:
        tx = await r(job.transaction())
        await r(tx.execute("INSERT INTO effects VALUES (6)"))

    await r(qc.enqueue(que.Job(type="E", args=[6])))
    worker = side.worker(qc, {"E": side.handler(effect)})
    assert await side.call(worker.work_one)
    assert conn.execute("SELECT n FROM effects").fetchall() == [(6,)]
    assert remaining(conn) == 0


async def test_handler_failing_in_its_transaction_rolls_it_back(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    async def half_done(job: Any) -> None:
        tx = await r(job.transaction())
        await r(tx.execute("INSERT INTO effects VALUES (7)"))
        raise ValueError("half done")

    await r(qc.enqueue(que.Job(type="E")))
    worker = side.worker(qc, {"E": side.handler(half_done)})
    assert await side.call(worker.work_one)
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == 1 and "ValueError: half done" in row[1]


def test_async_function_is_refused_at_once(client: que.Client) -> None:
    async def handler(job: que.Job) -> None:
        return None

    class AsyncCallable:
        async def __call__(self, job: que.Job) -> None:
            return None

    with pytest.raises(TypeError, match="async function"):
        que.Worker(client, {"A": handler})
    with pytest.raises(TypeError, match="async function"):
        que.WorkerPool(client, {"A": handler}, 2)
    with pytest.raises(TypeError, match="async function"):
        que.Worker(client, {"A": AsyncCallable()})


def test_a_returned_coroutine_fails_the_job_without_warning(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    async def handler(job: que.Job) -> None:
        return None

    client.enqueue(que.Job(type="A"))

    def returns_a_coroutine(job: que.Job) -> Any:
        return handler(job)

    worker = que.Worker(client, {"A": returns_a_coroutine})
    with no_unawaited_coroutine():
        assert worker.work_one()
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == 1 and "returned an awaitable" in row[1]


@pytest.mark.parametrize("kind", KINDS)
async def test_keyboard_interrupt_releases_the_job_and_propagates(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str, kind: str
) -> None:
    async def interrupted(job: Any) -> None:
        raise KeyboardInterrupt

    def interrupted_sync(job: Any) -> None:
        raise KeyboardInterrupt

    func = side.handler(interrupted) if kind == "async-def" else interrupted_sync
    await r(qc.enqueue(que.Job(type="K")))
    worker = side.worker(qc, {"K": func})
    with pytest.raises(KeyboardInterrupt):
        await side.call(worker.work_one)
    assert advisory_lock_count(db_url) == 0
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (0,)


async def test_environment_sets_queue_and_interval(
    side: Side, qc: AnyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUE_QUEUE", "mail")
    monkeypatch.setenv("QUE_WAKE_INTERVAL", "0.125")
    worker = side.worker(qc, {})
    assert (worker.queue, worker.interval) == ("mail", 0.125)
    pool = side.worker_pool(qc, {}, 2)
    assert [(w.queue, w.interval) for w in pool.workers] == [("mail", 0.125)] * 2
    explicit = side.worker(qc, {}, queue="", interval=1)
    assert (explicit.queue, explicit.interval) == ("", 1.0)


async def test_shutdown_of_a_worker_that_never_started_returns_at_once(
    side: Side, qc: AnyClient
) -> None:
    worker = side.worker(qc, {}, interval=60)
    started = time.monotonic()
    assert await side.call(worker.shutdown) is True
    assert time.monotonic() - started < 1
    pool = side.worker_pool(qc, {}, 3, interval=60)
    assert await side.call(pool.shutdown) is True


async def test_a_worker_works_in_one_loop_at_a_time(side: Side, qc: AnyClient) -> None:
    worker = side.worker(qc, {}, interval=0.05)
    loop = side.start(worker.work)
    try:
        await wait_until(lambda: worker.working, what="the worker started")
        with pytest.raises(que.QueError, match="already working"):
            await side.call(worker.work)
    finally:
        assert await side.call(worker.shutdown, 30) is True
        await asyncio.wait_for(loop, 30)


async def test_shutdown_lets_the_running_job_finish(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    running = threading.Event()
    release = threading.Event()

    async def slow(job: Any) -> None:
        running.set()
        await wait_event(release)

    await r(qc.enqueue_many([que.Job(type="Slow"), que.Job(type="Slow")]))
    worker = side.worker(qc, {"Slow": side.handler(slow)}, interval=0.05)
    loop = side.start(worker.work)
    try:
        assert await wait_event(running)
        assert await side.call(worker.shutdown, 0.2) is False  # still working
        assert worker.stopping
        release.set()
        assert await side.call(worker.shutdown, 30) is True
        await asyncio.wait_for(loop, 30)
    finally:
        release.set()
    assert remaining(conn) == 1  # the running one finished; the next was never claimed


async def test_pool_shutdown_lets_running_jobs_finish(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    started: list[int] = []
    release = threading.Event()

    async def slow(job: Any) -> None:
        started.append(job.id)
        await wait_event(release)

    await r(qc.enqueue_many([que.Job(type="Slow") for _ in range(5)]))
    pool = side.worker_pool(qc, {"Slow": side.handler(slow)}, 3, interval=0.05)
    pool.start()
    try:
        await wait_until(lambda: len(started) == 3, what="three jobs running")
        assert advisory_lock_count(db_url) == 3
        with pytest.raises(que.QueError, match="already started"):
            pool.start()
        assert await side.call(pool.shutdown, 0.2) is False  # three jobs still running
        release.set()
        assert await side.call(pool.shutdown, 30) is True
    finally:
        release.set()
    assert len(started) == 3  # no worker claimed again once asked to stop
    assert remaining(conn) == 2


async def test_database_errors_in_the_loop_are_logged_and_survived(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[int] = []

    async def killed_mid_job(job: Any) -> None:
        runs.append(job.conn.info.backend_pid)
        if len(runs) == 1:  # the first run loses its session before it can finish
            conn.execute("SELECT pg_terminate_backend(%s)", [runs[0]])

    await r(qc.enqueue(que.Job(type="T")))
    worker = side.worker(qc, {"T": side.handler(killed_mid_job)}, interval=0.05)
    with caplog.at_level(logging.ERROR, logger=side.worker_logger):
        loop = side.start(worker.work)
        try:
            await wait_until(lambda: remaining(conn) == 0, what="the job was worked")
        finally:
            assert await side.call(worker.shutdown, 30)
            await asyncio.wait_for(loop, 30)
    assert len(runs) == 2 and runs[0] != runs[1]  # worked again on a fresh connection
    assert "terminating connection" in caplog.text and "retrying in" in caplog.text


async def test_pool_count_must_fit_a_pool_the_caller_gave(side: Side, db_url: str) -> None:
    async with (
        side.pool(db_url, min_size=1, max_size=3) as given,
        side.client(given) as client,
    ):
        with pytest.raises(ValueError, match="exceeds the 3 connections of the pool given"):
            side.worker_pool(client, {}, 4)
    async with side.client(db_url) as client:
        with pytest.raises(ValueError, match="positive int"):
            side.worker_pool(client, {}, 0)


async def test_a_pool_larger_than_a_default_client_works(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """50 workers on a default client (10 connections): the client's pool grows,
    and all 50 hold a job at the same time."""
    holding: list[int] = []
    release = threading.Event()

    async def hold(job: Any) -> None:
        holding.append(job.id)
        while not release.is_set():  # polls: 50 waits must not take 50 threads
            await asyncio.sleep(0.01)

    async with side.client(db_url) as client:
        assert client.max_connections == 10
        await r(client.enqueue_many([que.Job(type="Hold") for _ in range(50)]))
        pool = side.worker_pool(client, {"Hold": side.handler(hold)}, 50, interval=0.05)
        pool.start()
        try:
            await wait_until(lambda: len(holding) == 50, 60, "50 jobs held at once")
            assert client.max_connections >= 50
        finally:
            release.set()
            assert await side.call(pool.shutdown, 60) is True
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


async def exactly_once(side: Side, db_url: str, workers: int, jobs: int) -> None:
    """``workers`` workers of one pool work ``jobs`` jobs: each exactly once, no lock left."""
    executions: Counter[int] = Counter()
    lock = threading.Lock()

    def count_sync(job: que.Job) -> None:
        with lock:
            executions[job.args[0]] += 1

    async def count_async(job: que.AsyncJob) -> None:
        executions[job.args[0]] += 1  # one event loop: no lock needed

    func = count_async if side.is_async else count_sync
    with side.active(), psycopg.connect(db_url, autocommit=True) as conn:
        async with side.client(db_url, max_connections=workers) as client:
            await r(client.enqueue_many([que.Job(type="Count", args=[i]) for i in range(jobs)]))
            pool = side.worker_pool(client, {"Count": func}, workers, interval=0.05)
            pool.start()
            try:
                # the cheap condition first: it needs no query that would hold up the loop
                await wait_until(lambda: executions.total() >= jobs, timeout=120, what="all run")
                await wait_until(lambda: remaining(conn) == 0, what="all deleted")
            finally:
                assert await side.call(pool.shutdown, 30) is True
            await assert_clean_either(client, db_url)
    assert len(executions) == jobs
    assert set(executions.values()) == {1}
    assert advisory_lock_count(db_url) == 0


async def test_pool_of_8_works_2000_jobs_exactly_once(side: Side, db_url: str) -> None:
    await exactly_once(side, db_url, workers=8, jobs=2000)


@pytest.mark.slow
async def test_pool_of_50_tasks_works_5000_jobs_exactly_once(db_url: str) -> None:
    """The async pool at 50 tasks on one event loop (the sync pool's threads are proven
    at 8 above, and beside the async pool in the test below)."""
    await exactly_once(Side("async"), db_url, workers=50, jobs=5000)


async def test_sync_and_async_pools_on_one_queue_work_each_job_once(db_url: str) -> None:
    """A WorkerPool and an AsyncWorkerPool drain one queue together, as processes of
    either kind (or Ruby and Go workers) would."""
    executions: Counter[int] = Counter()
    by_side: Counter[str] = Counter()
    lock = threading.Lock()

    def count_sync(job: que.Job) -> None:
        with lock:
            executions[job.args[0]] += 1
            by_side["sync"] += 1

    async def count_async(job: que.AsyncJob) -> None:
        with lock:
            executions[job.args[0]] += 1
            by_side["async"] += 1

    with (
        psycopg.connect(db_url, autocommit=True) as conn,
        que.Client(db_url, max_connections=4) as sync_client,
    ):
        async with que.AsyncClient(db_url, max_connections=4) as async_client:
            sync_client.enqueue_many([que.Job(type="Count", args=[i]) for i in range(1000)])
            sync_pool = que.WorkerPool(sync_client, {"Count": count_sync}, 4, interval=0.05)
            async_pool = que.AsyncWorkerPool(async_client, {"Count": count_async}, 4, interval=0.05)
            sync_pool.start()
            async_pool.start()
            try:
                await wait_until(lambda: executions.total() >= 1000, what="all run")
                await wait_until(lambda: remaining(conn) == 0, what="all deleted")
            finally:
                assert await asyncio.to_thread(sync_pool.shutdown, 30) is True
                assert await async_pool.shutdown(30) is True
            await assert_clean_either(async_client, db_url)
        await assert_clean_either(sync_client, db_url)
    assert len(executions) == 1000
    assert set(executions.values()) == {1}
    assert by_side["sync"] > 0 and by_side["async"] > 0


async def test_pool_thread_survives_a_work_function_raising_system_exit(
    db_url: str, conn: psycopg.Connection[Any]
) -> None:
    calls: list[int] = []

    def exits_once(job: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit(3)

    with que.Client(db_url) as client:
        client.enqueue(que.Job(type="X"))
        pool = que.WorkerPool(client, {"X": exits_once}, 1, interval=0.05)
        pool.start()
        try:
            await wait_until(lambda: remaining(conn) == 0)
        finally:
            assert pool.shutdown(timeout=30)
    assert len(calls) == 2  # given back once, then worked by the same, living thread
