import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import que

from ..helpers import advisory_lock_count


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def remaining(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


def test_successful_job_is_deleted(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    seen: list[Any] = []
    client.enqueue(que.Job(type="Ok", args=[1, 2]))
    worker = que.Worker(client, {"Ok": lambda job: seen.append(job.args)}, interval=0.05)
    assert worker.work_one() is True
    assert seen == [[1, 2]]
    assert remaining(conn) == 0
    assert worker.work_one() is False


def test_failing_job_keeps_its_row_with_the_traceback(
    client: que.Client, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def charge(job: que.Job) -> None:
        raise RuntimeError(f"card declined for {job.args[0]}")

    client.enqueue(que.Job(type="Charge", args=["acct-9"]))
    worker = que.Worker(client, {"Charge": charge}, interval=0.05)
    with caplog.at_level(logging.WARNING, logger="que.worker"):
        assert worker.work_one() is True
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == 1
    assert "RuntimeError: card declined for acct-9" in row[1]
    assert "Traceback (most recent call last)" in row[1] and "in charge" in row[1]
    assert "Charge" in caplog.text and "failed" in caplog.text


def test_unknown_type_is_an_error_like_any_other(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    client.enqueue(que.Job(type="Nobody::Knows"))
    worker = que.Worker(client, {"Other": print}, interval=0.05)
    assert worker.work_one() is True
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row == (1, "unknown job type: 'Nobody::Knows' is not in this worker's work map")


def test_job_that_deletes_itself_in_its_transaction(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    def effect(job: que.Job) -> None:
        job.tx.execute("INSERT INTO effects VALUES (%s)", [job.args[0]])
        job.delete()

    client.enqueue(que.Job(type="E", args=[5]))
    assert que.Worker(client, {"E": effect}).work_one()
    assert conn.execute("SELECT n FROM effects").fetchall() == [(5,)]
    assert remaining(conn) == 0


def test_handler_returning_normally_commits_its_open_transaction(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (n int)")
    client.enqueue(que.Job(type="E", args=[6]))
    worker = que.Worker(client, {"E": lambda job: job.tx.execute("INSERT INTO effects VALUES (6)")})
    assert worker.work_one()
    assert conn.execute("SELECT n FROM effects").fetchall() == [(6,)]
    assert remaining(conn) == 0


def test_async_function_is_refused_at_once(client: que.Client) -> None:
    async def handler(job: que.Job) -> None:
        return None

    with pytest.raises(TypeError, match="async function"):
        que.Worker(client, {"A": handler})


def test_a_returned_coroutine_fails_the_job_without_warning(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    async def handler(job: que.Job) -> None:
        return None

    client.enqueue(que.Job(type="A"))

    def returns_a_coroutine(job: que.Job) -> Any:
        return handler(job)

    worker = que.Worker(client, {"A": returns_a_coroutine})
    assert worker.work_one()
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == 1 and "returned an awaitable" in row[1]


def test_keyboard_interrupt_releases_the_job_and_propagates(
    client: que.Client, conn: psycopg.Connection[Any], db_url: str
) -> None:
    def interrupted(job: que.Job) -> None:
        raise KeyboardInterrupt

    client.enqueue(que.Job(type="K"))
    worker = que.Worker(client, {"K": interrupted})
    with pytest.raises(KeyboardInterrupt):
        worker.work_one()
    assert advisory_lock_count(db_url) == 0
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (0,)


def test_environment_sets_queue_and_interval(
    client: que.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUE_QUEUE", "mail")
    monkeypatch.setenv("QUE_WAKE_INTERVAL", "0.125")
    worker = que.Worker(client, {})
    assert (worker.queue, worker.interval) == ("mail", 0.125)
    pool = que.WorkerPool(client, {}, 2)
    assert [(w.queue, w.interval) for w in pool.workers] == [("mail", 0.125)] * 2
    explicit = que.Worker(client, {}, queue="", interval=1)
    assert (explicit.queue, explicit.interval) == ("", 1.0)


def test_shutdown_of_a_worker_that_never_started_returns_at_once(client: que.Client) -> None:
    worker = que.Worker(client, {}, interval=60)
    started = time.monotonic()
    assert worker.shutdown() is True
    assert time.monotonic() - started < 1
    pool = que.WorkerPool(client, {}, 3, interval=60)
    assert pool.shutdown() is True


def test_shutdown_lets_the_running_job_finish(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    running = threading.Event()
    release = threading.Event()

    def slow(job: que.Job) -> None:
        running.set()
        release.wait(30)

    client.enqueue_many([que.Job(type="Slow"), que.Job(type="Slow")])
    worker = que.Worker(client, {"Slow": slow}, interval=0.05)
    thread = threading.Thread(target=worker.work)
    thread.start()
    assert running.wait(30)
    assert worker.shutdown(timeout=0.2) is False  # still working
    release.set()
    assert worker.shutdown(timeout=30) is True
    thread.join(30)
    assert remaining(conn) == 1  # the running one finished; the next was never claimed


def test_database_errors_in_the_loop_are_logged_and_survived(
    client: que.Client, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    runs: list[int] = []

    def killed_mid_job(job: que.Job) -> None:
        runs.append(job.conn.info.backend_pid)
        if len(runs) == 1:  # the first run loses its session before it can finish
            conn.execute("SELECT pg_terminate_backend(%s)", [runs[0]])

    client.enqueue(que.Job(type="T"))
    worker = que.Worker(client, {"T": killed_mid_job}, interval=0.05)
    thread = threading.Thread(target=worker.work)
    with caplog.at_level(logging.ERROR, logger="que.worker"):
        thread.start()
        try:
            wait_for(lambda: remaining(conn) == 0)
        finally:
            assert worker.shutdown(timeout=30)
            thread.join(30)
    assert len(runs) == 2 and runs[0] != runs[1]  # worked again on a fresh connection
    assert "terminating connection" in caplog.text and "retrying in" in caplog.text


def test_pool_count_must_fit_the_connections(client: que.Client) -> None:
    with pytest.raises(ValueError, match="exceeds the client's 12 connections"):
        que.WorkerPool(client, {}, 13)
    with pytest.raises(ValueError, match="positive int"):
        que.WorkerPool(client, {}, 0)


def test_pool_of_8_works_2000_jobs_exactly_once(
    client: que.Client, conn: psycopg.Connection[Any], db_url: str
) -> None:
    executions: Counter[int] = Counter()
    lock = threading.Lock()

    def count(job: que.Job) -> None:
        with lock:
            executions[job.args[0]] += 1

    client.enqueue_many([que.Job(type="Count", args=[i]) for i in range(2000)])
    pool = que.WorkerPool(client, {"Count": count}, 8, interval=0.05)
    pool.start()
    try:
        wait_for(lambda: remaining(conn) == 0, timeout=120)
    finally:
        assert pool.shutdown(timeout=30) is True
    assert len(executions) == 2000
    assert set(executions.values()) == {1}
    assert advisory_lock_count(db_url) == 0
