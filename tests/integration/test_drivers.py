"""enqueue(conn=...) on the application's connection, whatever its driver:
psycopg2, SQLAlchemy (Connection and Session, sync and asyncio, on psycopg2,
psycopg 3 and asyncpg) and asyncpg. The job exists if and only if the
caller's transaction commits; unique jobs too. Django's connections are
tested with the Django app (test_django.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest

import que

from ..optional import asyncpg_connect, parts, require, sqlalchemy_url

Conn = psycopg.Connection[Any]
RUN_AT = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)


@dataclass
class Caller:
    """The application's connection in a transaction, and how to end it."""

    conn: Any
    commit: Callable[[], Any]
    rollback: Callable[[], Any]


@contextmanager
def psycopg2_caller(url: str) -> Iterator[Caller]:
    psycopg2 = require("psycopg2")
    conn = psycopg2.connect(url)
    try:
        yield Caller(conn, conn.commit, conn.rollback)
    finally:
        conn.close()


@contextmanager
def alchemy_connection(url: str, driver: str) -> Iterator[Caller]:
    sqlalchemy = require("sqlalchemy")
    engine = sqlalchemy.create_engine(sqlalchemy_url(url, driver))
    try:
        with engine.connect() as conn:
            yield Caller(conn, conn.commit, conn.rollback)
    finally:
        engine.dispose()


@contextmanager
def alchemy_session(url: str, driver: str) -> Iterator[Caller]:
    sqlalchemy = require("sqlalchemy")
    orm = require("sqlalchemy.orm")
    engine = sqlalchemy.create_engine(sqlalchemy_url(url, driver))
    try:
        with orm.Session(engine) as session:
            yield Caller(session, session.commit, session.rollback)
    finally:
        engine.dispose()


SYNC_CALLERS = {
    "psycopg2": psycopg2_caller,
    "sqlalchemy-psycopg2": lambda url: alchemy_connection(url, "psycopg2"),
    "sqlalchemy-psycopg": lambda url: alchemy_connection(url, "psycopg"),
    "session-psycopg2": lambda url: alchemy_session(url, "psycopg2"),
    "session-psycopg": lambda url: alchemy_session(url, "psycopg"),
}


@asynccontextmanager
async def asyncpg_caller(url: str) -> AsyncIterator[Caller]:
    conn = await asyncpg_connect(url)
    tx = conn.transaction()
    await tx.start()
    try:
        yield Caller(conn, tx.commit, tx.rollback)
    finally:
        await conn.close()


@asynccontextmanager
async def asyncpg_pool_caller(url: str) -> AsyncIterator[Caller]:
    asyncpg = require("asyncpg")
    pool = asyncpg.create_pool(**parts(url), min_size=1, max_size=1)
    async with pool, pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        yield Caller(conn, tx.commit, tx.rollback)


@asynccontextmanager
async def alchemy_async_connection(url: str, driver: str) -> AsyncIterator[Caller]:
    aio = require("sqlalchemy.ext.asyncio")
    engine = aio.create_async_engine(sqlalchemy_url(url, driver))
    try:
        async with engine.connect() as conn:
            yield Caller(conn, conn.commit, conn.rollback)
    finally:
        await engine.dispose()


@asynccontextmanager
async def alchemy_async_session(url: str, driver: str) -> AsyncIterator[Caller]:
    aio = require("sqlalchemy.ext.asyncio")
    engine = aio.create_async_engine(sqlalchemy_url(url, driver))
    try:
        async with aio.AsyncSession(engine) as session:
            yield Caller(session, session.commit, session.rollback)
    finally:
        await engine.dispose()


@asynccontextmanager
async def psycopg_async_caller(url: str) -> AsyncIterator[Caller]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        yield Caller(conn, conn.commit, conn.rollback)


ASYNC_CALLERS = {
    "psycopg": psycopg_async_caller,
    "asyncpg": asyncpg_caller,
    "asyncpg-pool": asyncpg_pool_caller,
    "sqlalchemy-asyncpg": lambda url: alchemy_async_connection(url, "asyncpg"),
    "sqlalchemy-psycopg": lambda url: alchemy_async_connection(url, "psycopg"),
    "session-asyncpg": lambda url: alchemy_async_session(url, "asyncpg"),
    "session-psycopg": lambda url: alchemy_async_session(url, "psycopg"),
}


def rows(conn: Conn) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT job_id, job_class, args::text, priority, run_at, queue FROM que_jobs"
        " ORDER BY job_id"
    ).fetchall()


def key_count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM que_unique_keys").fetchone()
    assert row is not None
    return int(row[0])


def jobs() -> tuple[que.Job, list[list[que.Job]], que.Job, que.Job]:
    """One job, two batches (jobs of two kinds, and jobs alike but for their
    args, which enqueue_many binds apart), and twice one unique job."""
    one = que.Job(type="Mail", args=[1, "x", {"k": None}], priority=5, run_at=RUN_AT, queue="q")
    mixed = [que.Job(type="A", args=[2]), que.Job(type="B", args=[3], priority=0)]
    alike = [que.Job(type="C", args=[n], queue="q", run_at=RUN_AT) for n in (5, 6)]
    return one, [mixed, alike], que.Job(type="U", args=[4]), que.Job(type="U", args=[4])


def check_committed(
    conn: Conn, one: Any, batches: list[list[Any]], first: Any, second: Any
) -> None:
    assert first.inserted and not second.inserted and second.id == first.id
    (mixed, alike) = batches
    found = rows(conn)
    assert [r[0] for r in found] == sorted(job.id for job in [one, *mixed, *alike, first])
    by_id = {r[0]: r for r in found}
    assert by_id[one.id][1:] == ("Mail", '[1,"x",{"k":null}]', 5, RUN_AT, "q")
    assert one.run_at == RUN_AT
    assert by_id[mixed[1].id][1:4] == ("B", "[3]", 0)
    assert [by_id[job.id][1:] for job in alike] == [
        ("C", "[5]", 100, RUN_AT, "q"),
        ("C", "[6]", 100, RUN_AT, "q"),
    ]
    assert key_count(conn) == 1


@pytest.mark.parametrize("kind", list(SYNC_CALLERS))
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_sync_driver_joins_the_callers_transaction(
    kind: str, outcome: str, client: que.Client, db_url: str, conn: Conn
) -> None:
    one, batches, first, second = jobs()
    with SYNC_CALLERS[kind](db_url) as caller:
        client.enqueue(one, conn=caller.conn)
        for batch in batches:
            client.enqueue_many(batch, conn=caller.conn)
        client.enqueue(first, conn=caller.conn, unique=True)
        client.enqueue_many([second], conn=caller.conn, unique=True)
        assert rows(conn) == []  # nothing visible before the caller commits
        if outcome == "rollback":
            caller.rollback()
            assert rows(conn) == []
            assert key_count(conn) == 0
            return
        caller.commit()
    check_committed(conn, one, batches, first, second)


@pytest.mark.parametrize("kind", list(ASYNC_CALLERS))
@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_async_driver_joins_the_callers_transaction(
    kind: str, outcome: str, aclient: que.AsyncClient, db_url: str, conn: Conn
) -> None:
    one, batches, first, second = jobs()
    async with ASYNC_CALLERS[kind](db_url) as caller:
        await aclient.enqueue(one, conn=caller.conn)
        for batch in batches:
            await aclient.enqueue_many(batch, conn=caller.conn)
        await aclient.enqueue(first, conn=caller.conn, unique=True)
        await aclient.enqueue_many([second], conn=caller.conn, unique=True)
        assert rows(conn) == []
        if outcome == "rollback":
            await caller.rollback()
            assert rows(conn) == []
            assert key_count(conn) == 0
            return
        await caller.commit()
    check_committed(conn, one, batches, first, second)


def test_psycopg2_in_autocommit_commits_a_unique_batch_and_stays_in_autocommit(
    client: que.Client, db_url: str, conn: Conn
) -> None:
    psycopg2 = require("psycopg2")
    caller = psycopg2.connect(db_url)
    caller.autocommit = True
    batch = [que.Job(type="U", args=[1]), que.Job(type="U", args=[1]), que.Job(type="B")]
    try:
        client.enqueue_many(batch, conn=caller, unique=True)
        assert caller.autocommit
    finally:
        caller.close()
    assert [r[0] for r in rows(conn)] == sorted({job.id for job in batch})
    assert batch[0].id == batch[1].id


async def test_asyncpg_outside_a_transaction_commits_each_call(
    aclient: que.AsyncClient, db_url: str, conn: Conn
) -> None:
    caller = await asyncpg_connect(db_url)
    try:
        job = await aclient.enqueue(que.Job(type="A"), conn=caller)
        batch = await aclient.enqueue_many(
            [que.Job(type="U", args=[1]), que.Job(type="U", args=[1])], conn=caller, unique=True
        )
        assert not caller.is_in_transaction()
    finally:
        await caller.close()
    assert [r[0] for r in rows(conn)] == [job.id, batch[0].id]
    assert batch[0].id == batch[1].id


async def test_a_failed_statement_leaves_the_error_to_the_caller(
    aclient: que.AsyncClient, db_url: str, conn: Conn
) -> None:
    asyncpg = require("asyncpg")
    async with asyncpg_caller(db_url) as caller:
        with pytest.raises(asyncpg.PostgresError):
            await caller.conn.execute("SELECT 1/0")
        with pytest.raises(asyncpg.PostgresError, match="aborted"):
            await aclient.enqueue(que.Job(type="A"), conn=caller.conn)
        await caller.rollback()
    assert rows(conn) == []


async def test_each_face_refuses_the_other_faces_connections(
    client: que.Client, aclient: que.AsyncClient, db_url: str
) -> None:
    psycopg2 = require("psycopg2")
    sync_conn = psycopg2.connect(db_url)
    async_conn = await asyncpg_connect(db_url)
    try:
        with pytest.raises(TypeError, match=r"needs a psycopg\.AsyncConnection, an asyncpg") as e:
            await aclient.enqueue(que.Job(type="T"), conn=sync_conn)
        assert "psycopg2.extensions.connection (that connection belongs with que.Client)" in str(
            e.value
        )
        with pytest.raises(TypeError, match=r"belongs with que\.AsyncClient"):
            client.enqueue(que.Job(type="T"), conn=async_conn)
        with pytest.raises(TypeError, match=r"Client\.enqueue_many needs a psycopg\.Connection"):
            client.enqueue_many([que.Job(type="T")], conn=object())
    finally:
        sync_conn.close()
        await async_conn.close()
