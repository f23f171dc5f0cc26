"""A classic worker keeps its session between jobs: the last job's delete goes
with the next claim and its unlock with the next re-check, and nothing is
owed once the worker sleeps or stops. On both sides."""

import asyncio
import logging
import threading
from typing import Any

import psycopg
import pytest

import que
import que.testing

from ..helpers import advisory_lock_count, held_locks
from ..sides import AnyClient, Side, r, wait_event, wait_until


def rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT job_id, error_count FROM que_jobs ORDER BY job_id").fetchall()


def checked_out(client: AnyClient) -> int:
    """Connections of the client's pool in use now."""
    stats = client.connections.pool.get_stats()
    return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))


async def test_the_last_jobs_delete_and_unlock_are_written_before_the_next_job_runs(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    seen: list[tuple[int, list[tuple[Any, ...]], list[int]]] = []

    def look(job: Any) -> None:
        # What other sessions see while this job runs.
        with psycopg.connect(db_url, autocommit=True) as other:
            seen.append((job.id, rows(other), held_locks(other)))

    first, second, third = [
        (await r(qc.enqueue(que.Job(type="Look", priority=p)))).id for p in (1, 2, 3)
    ]
    worker = side.worker(qc, {"Look": look}, interval=0.05)
    loop = side.start(worker.work)
    try:
        await wait_until(lambda: len(seen) == 3, what="three jobs worked")
        await wait_until(lambda: advisory_lock_count(db_url) == 0, what="the last unlock")
    finally:
        assert await side.call(worker.shutdown, 30)
        await asyncio.wait_for(loop, 30)
    assert seen == [
        (first, [(first, 0), (second, 0), (third, 0)], [first]),
        (second, [(second, 0), (third, 0)], [second]),  # the first gone, and unlocked
        (third, [(third, 0)], [third]),
    ]
    assert rows(conn) == []


async def test_an_idle_worker_owes_nothing_and_holds_no_connection(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    done = threading.Event()

    def fail_then_succeed(job: Any) -> None:
        if job.args == ["fail"]:
            raise RuntimeError("declined")
        done.set()

    failing = (await r(qc.enqueue(que.Job(type="J", args=["fail"], priority=1)))).id
    await r(qc.enqueue(que.Job(type="J", args=["ok"], priority=2)))
    worker = side.worker(qc, {"J": fail_then_succeed}, interval=30)
    loop = side.start(worker.work)
    try:
        assert await wait_event(done)
        # The worker sleeps for 30 s now: the ok job's delete and both
        # unlocks are written, and its connection is back in the pool.
        await wait_until(lambda: advisory_lock_count(db_url) == 0, what="no lock left")
        await wait_until(lambda: len(rows(conn)) == 1, what="the ok job deleted")
        assert rows(conn) == [(failing, 1)]
        # The connection goes back to the pool just after its unlock has run.
        await wait_until(lambda: checked_out(qc) == 0, what="the connection back in the pool")
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", [failing]).fetchone() == (True,)
        conn.execute("SELECT pg_advisory_unlock(%s)", [failing])
    finally:
        assert await side.call(worker.shutdown, 30)
        await asyncio.wait_for(loop, 30)


async def test_a_job_due_again_at_once_is_claimed_again_under_one_lock(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    runs: list[int] = []
    locks: list[int] = []

    def snooze_once(job: Any) -> Any:
        runs.append(job.id)
        locks.append(advisory_lock_count(db_url))
        if len(runs) == 1:
            return que.Snooze(0)  # due again at once, while this session holds its lock
        return None

    job_id = (await r(qc.enqueue(que.Job(type="S")))).id
    worker = side.worker(qc, {"S": snooze_once}, interval=0.05)
    loop = side.start(worker.work)
    try:
        await wait_until(lambda: len(runs) == 2, what="the job run twice")
        await wait_until(lambda: rows(conn) == [], what="the job deleted")
        await wait_until(lambda: advisory_lock_count(db_url) == 0, what="no lock left")
    finally:
        assert await side.call(worker.shutdown, 30)
        await asyncio.wait_for(loop, 30)
    assert runs == [job_id, job_id]
    assert locks == [1, 1]  # never locked twice: one unlock frees it


async def test_shutdown_writes_the_last_jobs_delete_and_unlock(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    ran = threading.Event()
    await r(qc.enqueue(que.Job(type="One")))
    worker = side.worker(qc, {"One": lambda job: ran.set()}, interval=0.05)
    loop = side.start(worker.work)
    assert await wait_event(ran)
    assert await side.call(worker.shutdown, 30)
    await asyncio.wait_for(loop, 30)
    assert rows(conn) == []
    assert advisory_lock_count(db_url) == 0


async def test_a_session_lost_before_the_delete_is_written_runs_the_job_again(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pids: list[int] = []

    def lose_session_after_working(job: Any) -> None:
        pids.append(job.conn.info.backend_pid)
        if len(pids) == 1:
            # The job works; its session dies before the next claim, which
            # carries the delete.
            conn.execute("SELECT pg_terminate_backend(%s)", [pids[0]])
            wait_gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
            for _ in range(500):
                if conn.execute(wait_gone, [pids[0]]).fetchone() == (0,):
                    break
                threading.Event().wait(0.01)

    job_id = (await r(qc.enqueue(que.Job(type="L")))).id
    worker = side.worker(qc, {"L": lose_session_after_working}, interval=0.05)
    claimer_logger = "que.async_claimer" if side.is_async else "que.claimer"
    with caplog.at_level(logging.WARNING, logger=claimer_logger):
        loop = side.start(worker.work)
        try:
            await wait_until(lambda: rows(conn) == [], what="the job worked again")
        finally:
            assert await side.call(worker.shutdown, 30)
            await asyncio.wait_for(loop, 30)
    assert len(pids) == 2 and pids[0] != pids[1]
    assert f"id={job_id} worked, but its session was lost" in caplog.text
    assert advisory_lock_count(db_url) == 0


async def test_work_one_leaves_nothing_owed(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    await r(qc.enqueue(que.Job(type="W")))
    worker = side.worker(qc, {"W": lambda job: None})
    assert await side.call(worker.work_one) is True
    assert rows(conn) == []
    assert advisory_lock_count(db_url) == 0
    assert checked_out(qc) == 0


# The statements of a classic worker's job cycle (the pause check and the
# periodic purges are not counted).
CYCLE = {
    que.sql.LOCK_JOB,
    que.sql.RECHECK_JOB,
    que.sql.DELETE_JOB,
    que.sql.UNLOCK_JOB,
    que.sql.CLAIM_AFTER_JOB,
    que.sql.RECHECK_JOB_AND_UNLOCK,
}


class CountingCursor(psycopg.Cursor[Any]):
    """Counts the job-cycle statements sent through it (every cursor of a
    connection made with it)."""

    sent = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        CountingCursor.sent += args[0] in CYCLE
        return super().execute(*args, **kwargs)


class AsyncCountingCursor(psycopg.AsyncCursor[Any]):
    sent = 0

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        AsyncCountingCursor.sent += args[0] in CYCLE
        return await super().execute(*args, **kwargs)


async def test_a_worker_sends_two_statements_a_job(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    counter = AsyncCountingCursor if side.is_async else CountingCursor
    jobs = 50
    async with (
        side.pool(db_url, kwargs={"cursor_factory": counter}) as pool,
        side.client(pool) as client,
    ):
        await r(client.enqueue_many([que.Job(type="N") for _ in range(jobs)]))
        finished = threading.Event()
        worked: list[int] = []

        def work(job: Any) -> None:
            worked.append(job.id)
            if len(worked) == jobs:
                finished.set()

        worker = side.worker(client, {"N": work}, interval=30)
        counter.sent = 0
        loop = side.start(worker.work)
        try:
            assert await wait_event(finished)
            await wait_until(lambda: rows(conn) == [], what="every job deleted")
        finally:
            assert await side.call(worker.shutdown, 30)
            await asyncio.wait_for(loop, 30)
        sent = counter.sent
    assert len(set(worked)) == jobs
    # A claim and a re-check a job; then one claim that finds nothing, and the
    # last unlock, before the worker sleeps. Que's own cycle would be 4 a job.
    assert sent == 2 * jobs + 2


async def test_a_drain_sends_two_statements_a_job_and_leaves_nothing_owed(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    counter = AsyncCountingCursor if side.is_async else CountingCursor
    jobs = 20
    worked: list[int] = []
    async with (
        side.pool(db_url, kwargs={"cursor_factory": counter}) as pool,
        side.client(pool) as client,
    ):
        await r(client.enqueue_many([que.Job(type="N") for _ in range(jobs)]))
        counter.sent = 0
        drain = que.testing.drain_async if side.is_async else que.testing.drain
        assert await r(drain(client, {"N": lambda job: worked.append(job.id)})) == jobs
        sent = counter.sent
        assert checked_out(client) == 0
    assert len(set(worked)) == jobs
    assert rows(conn) == [] and advisory_lock_count(db_url) == 0
    # A claim and a re-check a job; one claim that finds nothing, the last
    # unlock, and one more claim after it (a job due again at once is only
    # claimable once unlocked).
    assert sent == 2 * jobs + 3


async def test_a_drain_stopped_by_max_jobs_writes_the_last_jobs_delete(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    await r(qc.enqueue_many([que.Job(type="N") for _ in range(3)]))
    drain = que.testing.drain_async if side.is_async else que.testing.drain
    with pytest.raises(que.QueError, match="max_jobs=1"):
        await r(drain(qc, {"N": lambda job: None}, max_jobs=1))
    # Two jobs ran (the second went past the limit): both deleted, none locked.
    assert len(rows(conn)) == 1
    assert advisory_lock_count(db_url) == 0
