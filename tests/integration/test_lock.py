"""Claiming jobs: the advisory-lock walk, exclusion, order, races and stats, on both sides."""

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que
from que import sql

from ..helpers import advisory_lock_count, held_locks
from ..sides import AnyClient, Side, one, r, using


async def test_nothing_to_lock(qc: AnyClient) -> None:
    assert await r(qc.lock_job()) is None


async def test_lock_holds_an_advisory_lock_until_done(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    enqueued = await r(qc.enqueue(que.Job(type="T", args=[1])))
    job = await r(qc.lock_job())
    assert isinstance(job, side.job_class)
    assert (job.id, job.type, job.args, job.error_count, job.last_error) == (
        enqueued.id,
        "T",
        [1],
        0,
        None,
    )
    assert held_locks(conn) == [job.id]
    await r(job.done())
    assert held_locks(conn) == []
    await r(job.done())  # idempotent
    assert held_locks(conn) == []


async def test_claim_takes_exactly_one_lock_per_job(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """Advisory locks are re-entrant: one unlock must free what one claim took."""
    for _ in range(8):
        await r(qc.enqueue(que.Job(type="T")))
    jobs = [await r(qc.lock_job()) for _ in range(8)]
    try:
        for job in jobs:
            assert job is not None
            freed = await one(job.conn, sql.UNLOCK_JOB, {"job_id": job.id})
            assert freed is not None and list(freed.values()) == [True]
            assert job.id not in held_locks(conn), f"job {job.id} was locked twice"
            await one(job.conn, "SELECT pg_advisory_lock(%s)", [job.id])  # for done()
    finally:
        for job in jobs:
            if job is not None:
                await r(job.done())


async def test_a_locked_job_is_skipped_by_another_client(
    side: Side, qc: AnyClient, db_url: str
) -> None:
    first_id = (await r(qc.enqueue(que.Job(type="T")))).id
    second_id = (await r(qc.enqueue(que.Job(type="T")))).id
    async with side.client(db_url) as other:
        job_a = await r(qc.lock_job())
        job_b = await r(other.lock_job())
        assert job_a is not None and job_b is not None
        assert (job_a.id, job_b.id) == (first_id, second_id)
        assert await r(other.lock_job()) is None
        await r(job_a.done())
        await r(job_b.done())


async def test_the_two_sides_exclude_each_other(db_url: str) -> None:
    """A job claimed by a Client is skipped by an AsyncClient, and the other way round."""
    with que.Client(db_url) as sync_client:
        async with que.AsyncClient(db_url) as async_client:
            ids = [j.id for j in sync_client.enqueue_many([que.Job(type="T") for _ in range(3)])]
            by_sync = sync_client.lock_job()
            by_async = await async_client.lock_job()
            assert by_sync is not None and by_async is not None
            assert (by_sync.id, by_async.id) == (ids[0], ids[1])
            third = sync_client.lock_job()
            assert third is not None and third.id == ids[2]
            assert await async_client.lock_job() is None
            assert sync_client.lock_job() is None
            third.done()
            by_sync.done()
            again = await async_client.lock_job()
            assert again is not None and again.id == ids[0]
            await again.done()
            await by_async.done()
            assert advisory_lock_count(db_url) == 0


async def test_a_job_locked_by_a_foreign_session_is_skipped(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """A Ruby or Go worker holds the lock the same way: pg_advisory_lock(job_id)."""
    held = (await r(qc.enqueue(que.Job(type="T")))).id
    free = (await r(qc.enqueue(que.Job(type="T")))).id
    conn.execute("SELECT pg_advisory_lock(%s)", [held])
    job = await r(qc.lock_job())
    assert job is not None and job.id == free
    await r(job.delete())
    await r(job.done())
    assert await r(qc.lock_job()) is None
    conn.execute("SELECT pg_advisory_unlock(%s)", [held])


async def test_two_clients_racing_never_share_a_job(side: Side, qc: AnyClient, db_url: str) -> None:
    """Three claimers (threads on the sync side, tasks on the async side) drain one queue."""
    await r(qc.enqueue_many([que.Job(type="T", args=[i]) for i in range(300)]))
    claimed: list[int] = []

    async def drain(c: AnyClient) -> None:
        while (job := await r(c.lock_job())) is not None:
            async with using(job):
                claimed.append(job.args[0])  # list.append is atomic across threads
                await r(job.delete())

    async with side.client(db_url) as other:
        await asyncio.wait_for(
            asyncio.gather(*(side.call(drain, c) for c in (qc, other, qc))), timeout=60
        )
    assert sorted(claimed) == list(range(300))


async def test_terminated_session_frees_its_job(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], db_url: str
) -> None:
    """A crash frees the job at once: the lock dies with the session."""
    job_id = (await r(qc.enqueue(que.Job(type="T")))).id
    job = await r(qc.lock_job())
    assert job is not None and job.id == job_id
    pid = job.conn.info.backend_pid
    conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    async with side.client(db_url) as other:
        again = await r(other.lock_job())
        assert again is not None and again.id == job_id
        await r(again.delete())
        await r(again.done())
    await r(job.done())  # on a dead connection: must not raise, must return it to the pool


async def test_a_claim_interrupted_after_its_lock_frees_it(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Interrupted between the walk, which took the lock, and the re-check: by Ctrl-C on
    the sync side, by cancelling the task on the async side."""
    job_id = (await r(qc.enqueue(que.Job(type="T")))).id
    locks_then: list[int] = []
    if side.is_async:
        at_recheck = asyncio.Event()
        original_async = psycopg.AsyncCursor.execute

        async def execute_async(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            if query is sql.RECHECK_JOB:
                at_recheck.set()
                await asyncio.Event().wait()  # until cancelled
            return await original_async(cur, query, params, **kw)

        monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute_async)
        claim = asyncio.ensure_future(qc.lock_job())
        await asyncio.wait_for(at_recheck.wait(), 30)
        locks_then.append(advisory_lock_count(db_url))
        claim.cancel()
        with pytest.raises(asyncio.CancelledError):
            await claim
    else:
        original = psycopg.Cursor.execute

        def execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            if query is sql.RECHECK_JOB:
                locks_then.append(advisory_lock_count(db_url))
                raise KeyboardInterrupt
            return original(cur, query, params, **kw)

        monkeypatch.setattr(psycopg.Cursor, "execute", execute)
        with pytest.raises(KeyboardInterrupt):
            qc.lock_job()
    assert locks_then == [1]
    assert advisory_lock_count(db_url) == 0
    monkeypatch.undo()
    job = await r(qc.lock_job())
    assert job is not None and job.id == job_id
    async with using(job):
        await r(job.delete())
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


async def test_order_is_priority_then_run_at_then_id(qc: AnyClient) -> None:
    now = datetime.now(timezone.utc)
    earlier = now - timedelta(minutes=5)
    made = [
        await r(qc.enqueue(que.Job(type="p100-now", priority=100, run_at=now))),
        await r(qc.enqueue(que.Job(type="p100-earlier", priority=100, run_at=earlier))),
        await r(qc.enqueue(que.Job(type="p1-now-a", priority=1, run_at=now))),
        await r(qc.enqueue(que.Job(type="p1-now-b", priority=1, run_at=now))),
        await r(qc.enqueue(que.Job(type="p0", priority=0, run_at=now))),
        await r(qc.enqueue(que.Job(type="negative", priority=-5, run_at=now))),
    ]
    assert len(made) == 6
    order = []
    while (job := await r(qc.lock_job())) is not None:
        async with using(job):
            order.append(job.type)
            await r(job.delete())
    assert order == ["negative", "p0", "p1-now-a", "p1-now-b", "p100-earlier", "p100-now"]


async def test_future_jobs_are_not_locked(qc: AnyClient) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    await r(qc.enqueue(que.Job(type="later", run_at=later)))
    assert await r(qc.lock_job()) is None


async def test_queues_are_separate(qc: AnyClient) -> None:
    await r(qc.enqueue(que.Job(type="mail", queue="mail")))
    await r(qc.enqueue(que.Job(type="default")))
    for queue, expected in (("billing", None), ("mail", "mail"), ("", "default")):
        job = await r(qc.lock_job(queue))
        if expected is None:
            assert job is None
            continue
        assert job is not None
        async with using(job):
            assert (job.queue, job.type) == (queue, expected)
            await r(job.delete())


async def test_lock_job_rejects_a_bad_queue_name(qc: AnyClient) -> None:
    with pytest.raises(que.InvalidJobError, match="queue"):
        await r(qc.lock_job(None))  # type: ignore[arg-type]


class DeleteBeforeRecheck:
    """Deletes each job the walk locked, from another session, before the re-check runs:
    the race where another worker finished the job after the walk's snapshot.

    It patches psycopg.Cursor.execute for the sync side and psycopg.AsyncCursor.execute
    for the async side."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, db_url: str, times: int, side: Side
    ) -> None:
        self.remaining = times
        self.deleted: list[int] = []
        self.other = psycopg.connect(db_url, autocommit=True)
        if side.is_async:
            original_async = psycopg.AsyncCursor.execute

            async def execute_async(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
                self._race(query, params)
                return await original_async(cur, query, params, **kw)

            monkeypatch.setattr(psycopg.AsyncCursor, "execute", execute_async)
        else:
            original = psycopg.Cursor.execute

            def execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
                self._race(query, params)
                return original(cur, query, params, **kw)

            monkeypatch.setattr(psycopg.Cursor, "execute", execute)

    def _race(self, query: Any, params: Any) -> None:
        if query is sql.RECHECK_JOB and self.remaining > 0:
            self.remaining -= 1
            self.other.execute("DELETE FROM que_jobs WHERE job_id = %s", [params["job_id"]])
            self.deleted.append(params["job_id"])


async def test_job_deleted_between_walk_and_recheck_is_unlocked_and_walk_retries(
    side: Side, qc: AnyClient, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [j.id for j in await r(qc.enqueue_many([que.Job(type="T") for _ in range(3)]))]
    race = DeleteBeforeRecheck(monkeypatch, db_url, times=2, side=side)
    try:
        job = await r(qc.lock_job())
        assert job is not None
        assert race.deleted == ids[:2]
        assert job.id == ids[2]
        assert advisory_lock_count(db_url) == 1  # the two raced jobs were unlocked
        await r(job.done())
    finally:
        race.other.close()


async def test_lock_attempts_exceeded_after_ten_races(
    side: Side, qc: AnyClient, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await r(qc.enqueue_many([que.Job(type="T") for _ in range(12)]))
    race = DeleteBeforeRecheck(monkeypatch, db_url, times=10, side=side)
    try:
        with pytest.raises(que.LockAttemptsError, match="after 10 attempts"):
            await r(qc.lock_job())
        assert len(race.deleted) == 10
        assert advisory_lock_count(db_url) == 0
    finally:
        race.other.close()
    job = await r(qc.lock_job())
    assert job is not None
    await r(job.done())


async def test_stats(qc: AnyClient, conn: psycopg.Connection[Any], db_url: str) -> None:
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    await r(qc.enqueue(que.Job(type="A", run_at=old)))
    await r(qc.enqueue(que.Job(type="A")))
    await r(qc.enqueue(que.Job(type="B", queue="q")))
    conn.execute("UPDATE que_jobs SET error_count = 3 WHERE job_class = 'B'")
    job = await r(qc.lock_job())
    assert job is not None
    # A lock on the same id in another database must not count as working.
    base = psycopg.conninfo.conninfo_to_dict(db_url)
    other_db = psycopg.conninfo.make_conninfo(**{**base, "dbname": "postgres"})
    with psycopg.connect(other_db, autocommit=True) as elsewhere:
        b_id = conn.execute("SELECT job_id FROM que_jobs WHERE job_class = 'B'").fetchone()
        assert b_id is not None
        elsewhere.execute("SELECT pg_advisory_lock(%s)", [b_id[0]])
        stats = await r(qc.stats())
        elsewhere.execute("SELECT pg_advisory_unlock_all()")
    await r(job.done())
    assert [
        (
            s.queue,
            s.type,
            s.count,
            s.count_working,
            s.count_errored,
            s.highest_error_count,
            s.oldest_run_at,
        )
        for s in stats
    ] == [
        ("", "A", 2, 1, 0, 0, old),
        ("q", "B", 1, 0, 1, 3, stats[1].oldest_run_at),
    ]


async def test_stats_on_large_job_ids(qc: AnyClient, conn: psycopg.Connection[Any]) -> None:
    """Ids above 2**32 are split over classid and objid in pg_locks."""
    conn.execute("SELECT setval('que_jobs_job_id_seq', %s)", [2**33 + 5])
    await r(qc.enqueue(que.Job(type="Big")))
    job = await r(qc.lock_job())
    assert job is not None and job.id == 2**33 + 6
    assert [s.count_working for s in await r(qc.stats())] == [1]
    await r(job.done())


async def test_close_releases_jobs_still_held(side: Side, db_url: str) -> None:
    async with side.client(db_url) as client:
        await r(client.enqueue(que.Job(type="T")))
        job = await r(client.lock_job())
        assert job is not None and advisory_lock_count(db_url) == 1
        await r(client.close())
        assert advisory_lock_count(db_url) == 0
    await r(client.close())  # closing twice is harmless
