"""job.delete(conn=...): a job finished on the application's connection, in
its transaction, so the application's writes and the job's delete commit
together (or neither does). Classic workers and batched engines, both faces,
with psycopg2, SQLAlchemy sessions and asyncpg."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

import que

from ..optional import asyncpg_connect, require, sqlalchemy_url
from ..sides import wait_until

Conn = psycopg.Connection[Any]

LOCKED = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database
    WHERE datname = current_database())
  AND (classid::bigint << 32) | objid::bigint = %s
"""


@pytest.fixture
def effects(conn: Conn) -> Conn:
    conn.execute("CREATE TABLE effects (job_id bigint, n int)")
    return conn


def count(conn: Conn, query: str, params: Any = None) -> int:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


def jobs_left(conn: Conn) -> list[tuple[int, int]]:
    return conn.execute("SELECT job_id, error_count FROM que_jobs ORDER BY job_id").fetchall()


def test_classic_worker_job_commits_with_the_apps_writes_on_psycopg2(
    client: que.Client, db_url: str, effects: Conn
) -> None:
    psycopg2 = require("psycopg2")
    app = psycopg2.connect(db_url)
    locked_after_commit: list[int] = []

    def work(job: que.Job) -> None:
        with app.cursor() as cur:
            cur.execute("INSERT INTO effects VALUES (%s, %s)", (job.id, job.args[0]))
        job.delete(conn=app)
        assert job.deleted
        app.commit()
        # The lock is held until the work function returns, after the commit.
        locked_after_commit.append(count(effects, LOCKED, [job.id]))

    try:
        job = client.enqueue(que.Job(type="W", args=[7]))
        assert que.Worker(client, {"W": work}).work_one()
    finally:
        app.close()
    assert jobs_left(effects) == []
    assert effects.execute("SELECT job_id, n FROM effects").fetchall() == [(job.id, 7)]
    assert locked_after_commit == [1]
    assert count(effects, LOCKED, [job.id]) == 0


def test_rolled_back_app_transaction_keeps_the_job_and_records_the_failure(
    client: que.Client, db_url: str, effects: Conn
) -> None:
    sqlalchemy = require("sqlalchemy")
    orm = require("sqlalchemy.orm")
    engine = sqlalchemy.create_engine(sqlalchemy_url(db_url, "psycopg2"))

    def work(job: que.Job) -> None:
        with orm.Session(engine) as session, session.begin():
            session.execute(sqlalchemy.text("INSERT INTO effects VALUES (:id, 1)"), {"id": job.id})
            job.delete(conn=session)
            raise RuntimeError("after the delete, before the commit")

    try:
        job = client.enqueue(que.Job(type="W"))
        assert que.Worker(client, {"W": work}).work_one()
    finally:
        engine.dispose()
    assert jobs_left(effects) == [(job.id, 1)]  # still there, its failure recorded
    assert count(effects, "SELECT count(*) FROM effects") == 0


def test_a_job_already_finished_elsewhere_raises_in_the_apps_transaction(
    client: que.Client, db_url: str, effects: Conn
) -> None:
    sqlalchemy = require("sqlalchemy")
    orm = require("sqlalchemy.orm")
    engine = sqlalchemy.create_engine(sqlalchemy_url(db_url, "psycopg"))
    raised: list[BaseException] = []

    def work(job: que.Job) -> None:
        effects.execute("DELETE FROM que_jobs WHERE job_id = %s", [job.id])  # "another worker"
        with orm.Session(engine) as session, session.begin():
            session.execute(sqlalchemy.text("INSERT INTO effects VALUES (:id, 1)"), {"id": job.id})
            try:
                job.delete(conn=session)
            except que.JobLostError as exc:
                raised.append(exc)
                raise

    try:
        job = client.enqueue(que.Job(type="W"))
        assert que.Worker(client, {"W": work}).work_one()
    finally:
        engine.dispose()
    assert len(raised) == 1 and raised[0].job_id == job.id  # type: ignore[attr-defined]
    assert count(effects, "SELECT count(*) FROM effects") == 0
    assert jobs_left(effects) == []


def test_delete_on_the_wrong_kind_of_connection_is_a_clear_error(
    client: que.Client, db_url: str, effects: Conn
) -> None:
    failures: list[BaseException] = []

    def work(job: que.Job) -> None:
        try:
            job.delete(conn=object())
        except TypeError as exc:
            failures.append(exc)

    client.enqueue(que.Job(type="W"))
    assert que.Worker(client, {"W": work}).work_one()
    assert "Job.delete needs a psycopg.Connection" in str(failures[0])
    assert jobs_left(effects) == []  # the worker deleted it as usual


async def test_sync_batch_worker_job_commits_with_the_apps_writes(
    client: que.Client, db_url: str, effects: Conn
) -> None:
    psycopg2 = require("psycopg2")

    def work(job: que.Job) -> None:
        app = psycopg2.connect(db_url)
        try:
            with app, app.cursor() as cur:  # psycopg2: commits at the end of the block
                cur.execute("INSERT INTO effects VALUES (%s, %s)", (job.id, job.args[0]))
                job.delete(conn=app)
        finally:
            app.close()

    client.enqueue_many([que.Job(type="W", args=[n]) for n in range(5)])
    engine = que.BatchWorker(client, {"W": work}, concurrency=2, interval=0.05)
    engine.start()
    try:
        await wait_until(lambda: count(effects, "SELECT count(*) FROM effects") == 5)
        await wait_until(lambda: jobs_left(effects) == [])
    finally:
        assert await asyncio.to_thread(engine.shutdown, 30)
    assert sorted(r[0] for r in effects.execute("SELECT n FROM effects")) == [0, 1, 2, 3, 4]


async def test_async_worker_job_commits_with_the_apps_writes_on_asyncpg(
    aclient: que.AsyncClient, db_url: str, effects: Conn
) -> None:
    app = await asyncpg_connect(db_url)

    async def work(job: que.AsyncJob) -> None:
        async with app.transaction():
            await app.execute("INSERT INTO effects VALUES ($1, $2)", job.id, job.args[0])
            await job.delete(conn=app)

    try:
        job = await aclient.enqueue(que.AsyncJob(type="W", args=[3]))
        assert await que.AsyncWorker(aclient, {"W": work}).work_one()
    finally:
        await app.close()
    assert jobs_left(effects) == []
    assert effects.execute("SELECT job_id, n FROM effects").fetchall() == [(job.id, 3)]


async def test_async_batch_worker_job_commits_with_an_async_session(
    aclient: que.AsyncClient, db_url: str, effects: Conn
) -> None:
    sqlalchemy = require("sqlalchemy")
    aio = require("sqlalchemy.ext.asyncio")
    engine = aio.create_async_engine(sqlalchemy_url(db_url, "asyncpg"))

    async def work(job: que.AsyncJob) -> None:
        async with aio.AsyncSession(engine) as session, session.begin():
            await session.execute(
                sqlalchemy.text("INSERT INTO effects VALUES (:id, :n)"),
                {"id": job.id, "n": job.args[0]},
            )
            await job.delete(conn=session)
            if job.args[0] == 2:
                raise RuntimeError("rolled back, delete and all")

    await aclient.enqueue_many([que.AsyncJob(type="W", args=[n]) for n in range(4)])
    worker = que.AsyncBatchWorker(aclient, {"W": work}, concurrency=2, interval=0.05)
    worker.start()
    try:
        await wait_until(lambda: len(jobs_left(effects)) == 1 and jobs_left(effects)[0][1] == 1)
    finally:
        assert await worker.shutdown(30)
        await engine.dispose()
    assert sorted(r[0] for r in effects.execute("SELECT n FROM effects")) == [0, 1, 3]
