"""Enqueueing: defaults, every field, the caller's transaction, bad input; on both sides."""

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que

from ..sides import AnyClient, Side, r, using

ROW = "SELECT queue, priority, job_class, args::text, error_count, last_error FROM que_jobs"


def count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


async def test_enqueue_sets_id_and_defaults(qc: AnyClient, conn: psycopg.Connection[Any]) -> None:
    before = datetime.now(timezone.utc)
    given = que.Job(type="Billing::Refund", args=[1, "two", {"k": "v"}])
    job = await r(qc.enqueue(given))
    assert job is given
    assert isinstance(job.id, int)
    assert job.run_at is not None and job.run_at >= before - timedelta(seconds=1)
    assert conn.execute(ROW).fetchall() == [
        ("", 100, "Billing::Refund", '[1,"two",{"k":"v"}]', 0, None)
    ]


async def test_enqueue_keeps_every_field(qc: AnyClient, conn: psycopg.Connection[Any]) -> None:
    run_at = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    job = await r(
        qc.enqueue(que.Job(type="T", args={"a": None}, queue="mail", priority=0, run_at=run_at))
    )
    row = conn.execute(
        "SELECT job_id, queue, priority, run_at, job_class, args FROM que_jobs"
    ).fetchone()
    assert row == (job.id, "mail", 0, run_at, "T", {"a": None})


async def test_bytes_args_are_stored_verbatim(qc: AnyClient, conn: psycopg.Connection[Any]) -> None:
    await r(qc.enqueue(que.Job(type="T", args=b'[1,  {"b": 2}]')))
    assert conn.execute("SELECT args::text FROM que_jobs").fetchone() == ('[1,  {"b": 2}]',)


async def test_unicode_and_sql_text_are_stored_literally(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    hostile = "'; DROP TABLE que_jobs; --"
    await r(qc.enqueue(que.Job(type=hostile, queue="ü\u2603", args=[hostile, "\u0000"])))
    job = await r(qc.lock_job("ü\u2603"))
    assert job is not None
    async with using(job):
        assert (job.type, job.args) == (hostile, [hostile, "\u0000"])
        await r(job.delete())
    assert count(conn) == 0


async def test_enqueue_in_committed_transaction(
    side: Side, qc: AnyClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    async with side.connection(db_url) as caller:
        job = await r(qc.enqueue(que.Job(type="T"), conn=caller))
        assert count(conn) == 0  # not visible before the caller commits
        await r(caller.commit())
    assert conn.execute("SELECT job_id FROM que_jobs").fetchone() == (job.id,)


async def test_enqueue_in_rolled_back_transaction_leaves_no_row(
    side: Side, qc: AnyClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    async with side.connection(db_url) as caller:
        await r(caller.execute("CREATE TABLE orders (id int)"))
        await r(qc.enqueue_in_tx(que.Job(type="T"), caller))
        await r(qc.enqueue_many([que.Job(type="U"), que.Job(type="V")], conn=caller))
        await r(caller.rollback())
    assert count(conn) == 0


async def test_enqueue_many_in_one_statement_keeps_order(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    jobs = [que.Job(type=f"T{i}", args=[i], priority=i % 3) for i in range(500)]
    done = await r(qc.enqueue_many(jobs))
    assert done is not jobs and [j.type for j in done] == [f"T{i}" for i in range(500)]
    ids = [j.id for j in done]
    assert ids == sorted(ids) and len(set(ids)) == 500
    rows = conn.execute("SELECT job_id, job_class, args FROM que_jobs ORDER BY job_id").fetchall()
    assert rows == [(j.id, j.type, j.args) for j in done]
    assert await r(qc.enqueue_many([])) == []


async def test_enqueue_many_gives_each_job_its_own_row(
    side: Side, qc: AnyClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    later = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=timezone(timedelta(hours=5)))
    jobs = [
        que.Job(
            type=f"T{i % 4}",
            args=b'[  "raw"  ]' if i % 5 == 0 else {"i": i, "s": 'é"\\'},
            queue=["", "mail", 'q"x'][i % 3],
            priority=-i,
            run_at=later + timedelta(seconds=i) if i % 2 else None,
        )
        for i in range(60)
    ]
    async with side.connection(db_url) as caller:
        await r(qc.enqueue_many(jobs[:30], conn=caller))
        await r(caller.commit())
    await r(qc.enqueue_many(jobs[30:]))
    rows = {
        row[0]: row[1:]
        for row in conn.execute(
            "SELECT job_id, queue, priority, run_at, job_class, args::text FROM que_jobs"
        )
    }
    assert len(rows) == 60
    for i, job in enumerate(jobs):
        assert job.inserted is True and job.priority == -i
        given = later + timedelta(seconds=i) if i % 2 else None
        assert job.run_at is not None and (given is None or job.run_at == given)
        args = (
            '[  "raw"  ]'
            if i % 5 == 0
            else json.dumps(job.args, ensure_ascii=False, separators=(",", ":"))
        )
        assert rows[job.id] == (job.queue, -i, job.run_at, job.type, args)


async def test_enqueue_many_of_jobs_alike_but_for_args(
    side: Side, qc: AnyClient, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    at = datetime(2031, 2, 3, 4, 5, 6, 789000, tzinfo=timezone(timedelta(hours=-3)))
    alike = {"type": "Mail", "queue": "q'1", "priority": 7, "run_at": at}
    jobs = [que.Job(args=[i, "é"], **alike) for i in range(40)]
    jobs[3].args = b'{"raw":  true}'
    async with side.connection(db_url) as caller:
        await r(qc.enqueue_many(jobs[:20], conn=caller))
        await r(caller.commit())
    await r(qc.enqueue_many(jobs[20:]))
    now_jobs = await r(qc.enqueue_many([que.Job(type="Now", args=[i]) for i in range(3)]))
    rows = conn.execute(
        "SELECT job_id, queue, priority, run_at, job_class, args::text FROM que_jobs"
        " ORDER BY job_id"
    ).fetchall()
    expected = [
        (j.id, "q'1", 7, at, "Mail", '{"raw":  true}' if i == 3 else f'[{i},"é"]')
        for i, j in enumerate(jobs)
    ]
    assert rows[:40] == expected
    assert all(j.run_at == at and j.inserted for j in jobs)
    assert [row[0] for row in rows[40:]] == [j.id for j in now_jobs]
    assert {j.run_at for j in now_jobs} == {rows[40][3]}  # the statement's now()


async def test_enqueue_many_validates_all_before_writing(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(que.MissingTypeError):
        await r(qc.enqueue_many([que.Job(type="ok"), que.Job(type="")]))
    assert count(conn) == 0


@pytest.mark.parametrize(
    ("job", "error", "message"),
    [
        (que.Job(), que.MissingTypeError, "type must be specified"),
        (que.Job(type="T", args=object()), que.InvalidJobError, "not JSON-serialisable"),
        (que.Job(type="T", args=b"nope"), que.InvalidJobError, "not valid UTF-8 JSON"),
        (que.Job(type="T\x00"), que.InvalidJobError, "NUL"),
        (que.Job(type="T", queue="\x00"), que.InvalidJobError, "NUL"),
        (que.Job(type="T", priority=40000), que.InvalidJobError, "out of range"),
        (que.Job(type="T", run_at=datetime(2030, 1, 1)), que.InvalidJobError, "naive"),
    ],
)
async def test_bad_input_raises_and_writes_nothing(
    side: Side,
    qc: AnyClient,
    db_url: str,
    conn: psycopg.Connection[Any],
    job: que.Job,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        await r(qc.enqueue(job))
    async with side.connection(db_url) as caller:
        with pytest.raises(error, match=message):
            await r(qc.enqueue(job, conn=caller))
        # the caller's transaction was not touched, let alone broken
        assert caller.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert count(conn) == 0


async def test_enqueue_rejects_other_connection_kinds(qc: AnyClient) -> None:
    with pytest.raises(TypeError, match=r"psycopg\.(Async)?Connection"):
        await r(qc.enqueue(que.Job(type="T"), conn=object()))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"enqueue takes a que\.Job"):
        await r(qc.enqueue({"type": "T"}))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"enqueue_many takes que\.Jobs; jobs\[1\] is a str"):
        await r(qc.enqueue_many([que.Job(type="T"), "U"]))  # type: ignore[list-item]


async def test_unreachable_database_is_a_clear_error(side: Side) -> None:
    url = "postgresql://u:hunter2@127.0.0.1:1/none"
    with pytest.raises(que.DatabaseUnavailableError, match=r"127\.0\.0\.1:1/none") as info:
        async with side.client(url, connect_timeout=2):
            pass
    assert "hunter2" not in str(info.value)


def test_client_from_connector_and_from_given_pool(db_url: str) -> None:
    from psycopg_pool import ConnectionPool

    with que.Client(que.get_connector_from_conninfo(db_url)) as client:
        assert client.enqueue(que.Job(type="A")).id is not None
    with ConnectionPool(db_url, min_size=1, max_size=2, open=True) as pool:
        with que.Client(pool) as client:
            client.enqueue(que.Job(type="B"))
            job = client.lock_job()
            assert job is not None
            with job:
                job.delete()
        # the pool is the caller's: still open, connections back as they were
        with pool.connection() as c:
            assert c.autocommit is False
            assert c.execute("SELECT job_class FROM que_jobs").fetchall() == [("B",)]


def test_prepare_statements(db_url: str, client: que.Client) -> None:
    with psycopg.connect(db_url) as caller:
        que.prepare_statements(caller)
        assert caller.prepare_threshold == 0
        client.enqueue(que.Job(type="T"), conn=caller)
        caller.commit()
    assert [s.type for s in client.stats()] == ["T"]


async def test_a_session_the_server_ended_is_replaced_on_checkout(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """A pooled session terminated while idle (as a restart would end it) is
    not handed to the next enqueue: the pool's check finds it gone."""
    async with side.client(db_url, min_connections=2, max_connections=2) as client:
        await r(client.enqueue(que.Job(type="T")))
        mine = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        pids = [row[0] for row in conn.execute(mine + " AND pid <> pg_backend_pid()")]
        assert pids
        conn.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s::int[])"
        deadline = time.monotonic() + 10
        while conn.execute(gone, [pids]).fetchone() != (0,) and time.monotonic() < deadline:
            time.sleep(0.01)  # the server ends them a moment after the request
        assert conn.execute(gone, [pids]).fetchone() == (0,)
        for n in range(4):
            await r(client.enqueue(que.Job(type="T", args=[n])))
    assert count(conn) == 5
