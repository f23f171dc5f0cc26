"""Finishing a claimed job: error and backoff, the job's transaction, misuse; on both sides."""

from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest

import que

from ..sides import AnyClient, Side, claimed, r

FIELDS = "SELECT error_count, last_error, run_at FROM que_jobs WHERE job_id = %s"


async def test_error_records_count_message_and_backoff(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    job_id = (await r(qc.enqueue(que.Job(type="T")))).id
    for attempt, backoff in ((1, 4), (2, 19), (3, 84)):
        conn.execute("UPDATE que_jobs SET run_at = now() - interval '1 hour'")
        async with claimed(qc) as job:
            await r(job.error(f"boom {attempt}"))
            now = datetime.now(timezone.utc)
        row = conn.execute(FIELDS, [job_id]).fetchone()
        assert row is not None
        assert row[:2] == (attempt, f"boom {attempt}")
        assert abs((row[2] - now).total_seconds() - backoff) < 1.0
        assert (job.error_count, job.last_error, job.run_at) == row


async def test_retry_interval_override_per_type(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    intervals = {"Fast": 0.5, "Slow": lambda n: 3600 * n}
    async with side.client(db_url, retry_intervals=intervals) as client:
        await r(client.enqueue(que.Job(type="Fast")))
        await r(client.enqueue(que.Job(type="Slow")))
        for _ in range(2):
            async with claimed(client) as job:
                await r(job.error("x"))
        delays = dict(
            conn.execute(
                "SELECT job_class, extract(epoch FROM run_at - now())::float FROM que_jobs"
            ).fetchall()
        )
    assert 0 < delays["Fast"] <= 0.6
    assert 3598 < delays["Slow"] <= 3600


async def test_error_with_explicit_retry_in(qc: AnyClient, conn: psycopg.Connection[Any]) -> None:
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        await r(job.error("later", retry_in=120))
    row = conn.execute("SELECT extract(epoch FROM run_at - now())::float FROM que_jobs").fetchone()
    assert row is not None and 118 < row[0] <= 120


async def test_error_message_with_nul_is_stored(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        await r(job.error("bad\x00byte"))
    assert conn.execute("SELECT last_error FROM que_jobs").fetchone() == ("bad\\0byte",)


async def test_tx_commits_the_jobs_writes_with_its_delete(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (job_id bigint)")
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        tx = await r(job.transaction())
        assert tx is job.conn
        await r(tx.execute("INSERT INTO effects VALUES (%s)", [job.id]))
        assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)  # not yet
        await r(job.delete())
        assert tx.autocommit is True  # back to autocommit for the unlock
    assert conn.execute("SELECT job_id FROM effects").fetchall() == [(job.id,)]
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


def test_sync_tx_property_is_the_transaction(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    """The sync Job spells it both ways: the ``tx`` property and ``transaction()``."""
    conn.execute("CREATE TABLE effects (job_id bigint)")
    client.enqueue(que.Job(type="T"))
    job = client.lock_job()
    assert job is not None
    with job:
        tx = job.tx
        assert tx.autocommit is False
        assert job.transaction() is tx is job.tx
        tx.execute("INSERT INTO effects VALUES (%s)", [job.id])
        job.delete()
    assert conn.execute("SELECT job_id FROM effects").fetchall() == [(job.id,)]


async def test_error_rolls_back_the_jobs_writes(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (job_id bigint)")
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        tx = await r(job.transaction())
        await r(tx.execute("INSERT INTO effects VALUES (%s)", [job.id]))
        await r(job.error("failed"))
        assert tx.autocommit is True
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,)


async def test_done_without_delete_rolls_back_and_keeps_the_job(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (job_id bigint)")
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        tx = await r(job.transaction())
        await r(tx.execute("INSERT INTO effects VALUES (%s)", [job.id]))
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (1,)
    async with claimed(qc) as again:
        assert again.id == job.id
        # the connection came back to the pool in autocommit, no transaction open
        assert again.conn.autocommit is True
        assert again.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


async def test_a_broken_job_transaction_is_cleaned_up(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        tx = await r(job.transaction())
        with pytest.raises(psycopg.errors.UndefinedTable):
            await r(tx.execute("SELECT * FROM missing_table"))
        await r(job.error("missing table"))
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,)


async def test_no_transaction_is_opened_unless_asked(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        assert job.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        idle_in_tx = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        ).fetchone()
        assert idle_in_tx == (0,)
        await r(job.delete())


async def test_done_job_refuses_further_use(side: Side, qc: AnyClient) -> None:
    await r(qc.enqueue(que.Job(type="T")))
    job = await r(qc.lock_job())
    assert job is not None
    await r(job.delete())
    assert job.deleted is True
    await r(job.done())
    with pytest.raises(que.QueError, match="holds no connection"):
        await r(job.delete())
    with pytest.raises(que.QueError, match="holds no connection"):
        await r(job.error("too late"))
    with pytest.raises(que.QueError, match="holds no connection"):
        await r(job.transaction())
    if not side.is_async:
        with pytest.raises(que.QueError, match="holds no connection"):
            _ = job.tx


async def test_error_after_the_row_vanished_is_reported(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        conn.execute("DELETE FROM que_jobs")
        with pytest.raises(que.QueError, match="no longer in que_jobs"):
            await r(job.error("too late"))


async def test_far_future_run_at_round_trips(qc: AnyClient) -> None:
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    job = await r(qc.enqueue(que.Job(type="T", run_at=far)))
    assert job.run_at == far
    assert await r(qc.lock_job()) is None
    assert (await r(qc.stats()))[0].oldest_run_at == far


async def test_every_operation_on_a_callers_plain_pool(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """A pool the caller made with psycopg's defaults (tuple rows, transactions) works
    for every operation, and gets its connections back as they were."""
    conn.execute("CREATE TABLE effects (n int)")
    async with side.pool(db_url, min_size=1, max_size=3) as pool:
        async with side.client(pool) as client:
            await r(client.enqueue(que.Job(type="Fail", args=[1], priority=1)))
            await r(client.enqueue_many([que.Job(type="Write", args=[2], priority=2)]))
            async with claimed(client) as job:
                assert job.type == "Fail"
                await r(job.error("failed once", retry_in=0))
                assert job.error_count == 1 and job.last_error == "failed once"
            assert [(s.type, s.count_errored) for s in await r(client.stats())] == [
                ("Fail", 1),
                ("Write", 0),
            ]
            conn.execute("UPDATE que_jobs SET run_at = now() - interval '1 second'")
            async with claimed(client) as again:
                assert (again.type, again.error_count) == ("Fail", 1)
                await r(again.delete())

            async def write(job: Any) -> None:
                tx = await r(job.transaction())
                await r(tx.execute("INSERT INTO effects VALUES (%s)", job.args))

            worker = side.worker(client, {"Write": side.handler(write)})
            assert await side.call(worker.work_one) is True
        # the pool is the caller's: still open, its connections back as they were
        if side.is_async:
            async with pool.connection() as aconn:
                autocommit = aconn.autocommit
        else:
            with pool.connection() as sconn:
                autocommit = sconn.autocommit
        assert autocommit is False
    assert conn.execute("SELECT n FROM effects").fetchall() == [(2,)]
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


async def test_job_transaction_rolls_back_when_another_worker_finished_the_job(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """A worker that lost its lock (say, its session was cut) may still run the job
    while another worker finishes it: its delete then finds no row, and its own
    writes must not commit, so every job's effect is recorded once."""
    conn.execute("CREATE TABLE effects (job_id bigint)")
    await r(qc.enqueue(que.Job(type="T")))
    async with claimed(qc) as job:
        tx = await r(job.transaction())
        await r(tx.execute("INSERT INTO effects VALUES (%s)", [job.id]))
        conn.execute("DELETE FROM que_jobs")  # the other worker's delete
        await r(job.delete())
        assert job.deleted
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
