"""PgBouncer mode against a real PgBouncer in transaction pooling.

Every client here is made with ``pgbouncer=True`` on ``bouncer_url`` (the
test's database through PgBouncer); ``conn`` is a direct connection to the
same database, standing in for a Ruby or Go worker that holds session locks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

import que

from .. import helpers
from ..sides import AnyClient, Side, claimed, r, wait_until

pytestmark = pytest.mark.usefixtures("effects_table")

EFFECTS = "CREATE TABLE effects (job_id bigint NOT NULL, note text)"


@pytest.fixture
def effects_table(conn: psycopg.Connection[Any]) -> None:
    conn.execute(EFFECTS)


@pytest.fixture
async def bc(side: Side, bouncer_url: str, db_url: str) -> AsyncIterator[AnyClient]:
    """The side's client through PgBouncer, checked for leaks before it closes."""
    async with side.client(bouncer_url, pgbouncer=True, max_connections=12) as client:
        yield client
        await helpers.assert_clean_either(client, db_url)


def effects(conn: psycopg.Connection[Any]) -> dict[int, int]:
    rows = conn.execute("SELECT job_id, count(*) FROM effects GROUP BY job_id").fetchall()
    return {int(job_id): int(n) for job_id, n in rows}


def job_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


def try_session_lock(conn: psycopg.Connection[Any], job_id: int) -> bool:
    """What a Ruby or Go worker's claim does on its own session."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", [job_id]).fetchone()
    assert row is not None
    if row[0]:
        conn.execute("SELECT pg_advisory_unlock(%s)", [job_id])
    return bool(row[0])


async def record(job: Any) -> None:
    """A job whose effect commits with its delete (through the job's transaction)."""
    tx = await r(job.transaction())
    await r(tx.execute("INSERT INTO effects (job_id) VALUES (%s)", [job.id]))


async def test_a_claim_holds_a_transaction_lock_that_session_locks_respect(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    job = await r(bc.enqueue(side.job_class(type="T")))
    async with claimed(bc) as locked:
        assert locked.id == job.id
        assert not try_session_lock(conn, job.id)
        holder = conn.execute(
            "SELECT a.state FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted",
            [job.id],
        ).fetchone()
        # Held by a server connection inside the claim's open transaction.
        assert holder is not None and holder[0].startswith("idle in transaction")
        await r(locked.delete())
    assert job_count(conn) == 0


async def test_a_job_under_a_session_lock_is_skipped(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    first = await r(bc.enqueue(side.job_class(type="T", priority=1)))
    second = await r(bc.enqueue(side.job_class(type="T", priority=2)))
    conn.execute("SELECT pg_advisory_lock(%s)", [first.id])
    try:
        async with claimed(bc) as job:
            assert job.id == second.id
            await r(job.delete())
        assert await r(bc.lock_job()) is None
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [first.id])
    async with claimed(bc) as job:
        assert job.id == first.id


async def test_delete_commits_the_jobs_writes_and_error_rolls_them_back(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    kept = await r(bc.enqueue(side.job_class(type="T", priority=1)))
    undone = await r(bc.enqueue(side.job_class(type="T", priority=2)))
    async with claimed(bc) as job:
        assert job.id == kept.id
        await record(job)
        await r(job.delete())
    async with claimed(bc) as job:
        assert job.id == undone.id
        await r(job.conn.execute("INSERT INTO effects (job_id) VALUES (%s)", [job.id]))
        with pytest.raises(psycopg.errors.UndefinedTable):
            # A failed statement aborts the claim's transaction; error() still works.
            await r(job.conn.execute("SELECT * FROM no_such_table"))
        await r(job.error("boom"))
        # The error is committed and the lock released at once.
        assert try_session_lock(conn, job.id)
    assert effects(conn) == {kept.id: 1}
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row == (1, "boom")


async def test_done_without_an_outcome_rolls_back_and_releases(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    job = await r(bc.enqueue(side.job_class(type="T")))
    async with claimed(bc) as locked:
        await record(locked)
    assert effects(conn) == {}
    assert try_session_lock(conn, job.id)
    assert job_count(conn) == 1


@pytest.mark.parametrize("engine", ["worker", "pool", "batch"])
async def test_every_engine_works_each_job_once(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any], engine: str
) -> None:
    jobs = await r(bc.enqueue_many([side.job_class(type="Record") for _ in range(300)]))
    fails = await r(bc.enqueue(side.job_class(type="Fail")))

    async def fail(job: Any) -> None:
        await record(job)
        raise RuntimeError("always fails")

    work_map = {"Record": side.handler(record), "Fail": side.handler(fail)}
    if engine == "batch":
        worker = side.batch_worker(bc, work_map, concurrency=4, interval=0.05)
        side.start_engine(worker)
    elif engine == "pool":
        worker = side.worker_pool(bc, work_map, 4, interval=0.05)
        worker.start()
    else:
        worker = side.worker(bc, work_map, interval=0.05)
        task = side.start(worker.work)
    try:
        await wait_until(lambda: job_count(conn) == 1, 60, "every Record job done")
        await wait_until(
            lambda: conn.execute("SELECT error_count FROM que_jobs").fetchone() != (0,),
            30,
            "the failing job's error recorded",
        )
    finally:
        if engine == "batch":
            assert await side.stop_engine(worker)
        else:
            assert await side.call(worker.shutdown, 30)
        if engine == "worker":
            await task
    assert effects(conn) == {job.id: 1 for job in jobs}
    row = conn.execute("SELECT job_id, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == fails.id and "always fails" in row[1]


async def test_the_batched_engine_steps_over_session_locked_jobs(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    jobs = await r(bc.enqueue_many([side.job_class(type="Record") for _ in range(50)]))
    held = jobs[10].id
    conn.execute("SELECT pg_advisory_lock(%s)", [held])
    engine = side.batch_worker(bc, {"Record": side.handler(record)}, concurrency=3, interval=0.05)
    side.start_engine(engine)
    try:
        await wait_until(lambda: job_count(conn) == 1, 60, "every free job done")
        assert held not in effects(conn)
        conn.execute("SELECT pg_advisory_unlock(%s)", [held])
        await wait_until(lambda: job_count(conn) == 0, 30, "the released job done")
    finally:
        assert await side.stop_engine(engine)
    assert effects(conn) == {job.id: 1 for job in jobs}


async def test_engines_on_both_sides_of_pgbouncer_share_the_jobs(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    """A PgBouncer-mode engine and a direct one (session locks, as Ruby's and
    Go's workers take) work one table: every job exactly once."""
    jobs = await r(bc.enqueue_many([side.job_class(type="Record") for _ in range(600)]))
    work_map = {"Record": side.handler(record)}
    async with side.client(db_url, max_connections=12) as direct:
        engines = [
            side.batch_worker(bc, work_map, concurrency=3, interval=0.05, buffer=2),
            side.batch_worker(direct, work_map, concurrency=3, interval=0.05, buffer=2),
        ]
        for engine in engines:
            side.start_engine(engine)
        try:
            await wait_until(lambda: job_count(conn) == 0, 90, "every job done")
        finally:
            for engine in engines:
                assert await side.stop_engine(engine)
    assert effects(conn) == {job.id: 1 for job in jobs}


async def test_listen_needs_a_direct_url(side: Side, bc: AnyClient) -> None:
    with pytest.raises(que.QueError, match="listen_url"):
        side.batch_worker(bc, {}, listen=True)
    assert side.batch_worker(bc, {}).listen is False


async def test_listen_url_wakes_the_engine(
    side: Side, bouncer_url: str, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    que.install_notify(conn)
    woken = threading.Event()

    async def work(job: Any) -> None:
        woken.set()

    async with side.client(
        bouncer_url, pgbouncer=True, listen_url=db_url, max_connections=12
    ) as client:
        # Polling every 10 minutes: only the notification can start the job in time.
        engine = side.batch_worker(client, {"T": side.handler(work)}, interval=600)
        assert engine.listen is True
        side.start_engine(engine)
        try:
            await wait_until(
                lambda: helpers.listener_count(db_url) == 1, 30, "the listener connected"
            )
            await r(client.enqueue(side.job_class(type="T")))
            await wait_until(woken.is_set, 60, "the job to start")
        finally:
            assert await side.stop_engine(engine)


async def test_listen_url_without_pgbouncer_is_refused(side: Side, db_url: str) -> None:
    with pytest.raises(ValueError, match="listen_url"):
        async with side.client(db_url, listen_url=db_url):
            pass


async def test_enqueue_in_the_callers_transaction_through_pgbouncer(
    side: Side, bc: AnyClient, bouncer_url: str, conn: psycopg.Connection[Any]
) -> None:
    """The job exists if and only if the caller commits, transaction after
    transaction on a connection with psycopg's default prepare threshold, each
    on another server connection than the one before."""
    blockers = [psycopg.connect(bouncer_url, prepare_threshold=None) for _ in range(2)]
    async with side.connection(bouncer_url) as caller:
        committed = []
        for number in range(8):
            # One blocker takes the server connection the caller's last
            # transaction used (PgBouncer hands out the one freed last); the
            # other frees its own, which the caller's next transaction gets.
            blockers[number % 2].execute("SELECT 1")
            blockers[(number + 1) % 2].rollback()
            job = await r(bc.enqueue(side.job_class(type="T", args=[number]), conn=caller))
            if number % 2:
                await r(caller.rollback())
            else:
                await r(caller.commit())
                committed.append(job.id)
        many = await r(bc.enqueue_many([side.job_class(type="U")], conn=caller))
        await r(caller.rollback())
    for blocker in blockers:
        blocker.close()
    rows = conn.execute("SELECT job_id FROM que_jobs ORDER BY job_id").fetchall()
    assert [row[0] for row in rows] == committed
    assert many[0].id not in committed


async def test_snooze_discard_and_cancel_through_pgbouncer(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """The outcomes beyond delete and error, written inside the claim's transaction."""
    snoozed = await r(bc.enqueue(side.job_class(type="T", priority=1)))
    dropped = await r(bc.enqueue(side.job_class(type="T", priority=2)))
    async with claimed(bc) as job:
        await record(job)
        await r(job.snooze(60))
        assert try_session_lock(conn, job.id)  # the lock ended with the snooze
    async with claimed(bc) as job:
        assert job.id == dropped.id
        await record(job)
        await r(job.discard("no longer wanted"))
    assert effects(conn) == {}  # the jobs' writes rolled back with their outcomes
    dead = conn.execute("SELECT job_id, outcome FROM que_dead_jobs").fetchall()
    assert dead == [(dropped.id, "discarded")]
    row = conn.execute("SELECT job_id, error_count, run_at > now() FROM que_jobs").fetchone()
    assert row == (snoozed.id, 0, True)


async def test_writes_failing_for_long_end_the_holds_of_finished_jobs(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """A finished job's lock is its hold's transaction lock: while the locker
    cannot write the outcomes it keeps the holds open, and after _WRITE_TRIES
    failed writes in a row it ends those whose jobs are all finished. Their
    jobs run again, and the engine claims on."""
    refusals = helpers.refuse_deletes(conn)
    jobs = await r(bc.enqueue_many([side.job_class(type="Count") for _ in range(6)]))
    runs = helpers.Executions()
    engine = side.batch_worker(
        bc, {"Count": runs.work_function(side)}, concurrency=2, buffer=0, interval=0.05
    )
    engine._WRITE_TRIES = 2  # not the half minute of the default
    side.start_engine(engine)
    try:
        try:
            await wait_until(
                lambda: max(runs.counts.values(), default=0) >= 2, 60, "a job run again"
            )
            assert refusals() >= 2
        finally:
            conn.execute("DELETE FROM refuse_deletes")
        await wait_until(lambda: job_count(conn) == 0, 60, "every job worked")
    finally:
        assert await side.stop_engine(engine)
    assert set(runs.counts) == {job.id for job in jobs}


@pytest.mark.parametrize("side", ["async"], indirect=True)  # only a task can be cancelled by hand
async def test_a_place_left_free_by_a_cancelled_job_task_is_filled(
    side: Side, bc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """Behind PgBouncer a hold per place keeps the locker from claiming, and so
    from handing out. A job task that ends by a cancel (as Python 3.10 ends one
    whose work raised CancelledError) must not leave the next job waiting."""
    started: list[str] = []

    async def work(job: Any) -> None:
        started.append(job.type)
        if started == ["A"]:
            await asyncio.sleep(3600)

    await r(bc.enqueue(side.job_class(type="A", priority=1)))
    await r(bc.enqueue(side.job_class(type="B", priority=2)))
    engine = side.batch_worker(
        bc, {"A": work, "B": work}, concurrency=1, buffer=1, listen=False, interval=0.05
    )
    side.start_engine(engine)
    try:
        await wait_until(
            lambda: started == ["A"] and engine._jobs.qsize() == 1, 30, "A running, B waiting"
        )
        [task] = engine._job_tasks
        task.cancel()
        await wait_until(lambda: job_count(conn) == 0, 30, "B, then A again, worked")
    finally:
        assert await side.stop_engine(engine, 30)
    assert sorted(started) == ["A", "A", "B"]
