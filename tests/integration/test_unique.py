"""Unique jobs on real PostgreSQL, on both faces: one job per key under
concurrent producers (threads, tasks and OS processes), each scope, the
caller's transaction, batches, Ruby- and Go-style deletes and locks, and the
purge of stale keys."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest

import que
from que import async_unique, unique
from que._unique import UniquePurge

from ..sides import AnyClient, Side, claimed, r, wait_until

Conn = psycopg.Connection[Any]

KEYS = "SELECT unique_key, job_id, scope FROM que_unique_keys ORDER BY unique_key"

NEEDS_V2 = r"unique jobs needs the que-pg extension \(version 2"


def job_ids(conn: Conn) -> list[int]:
    return [row[0] for row in conn.execute("SELECT job_id FROM que_jobs ORDER BY job_id")]


def key_count(conn: Conn) -> int:
    row = conn.execute("SELECT count(*) FROM que_unique_keys").fetchone()
    assert row is not None
    return int(row[0])


async def enqueue(qc: AnyClient, job_type: str = "Mail", args: Any = None, **options: Any) -> Any:
    job = que.Job(type=job_type, args=[1] if args is None else args)
    return await r(qc.enqueue(job, **options))


async def test_the_same_job_twice_is_one_job(qc: AnyClient, conn: Conn) -> None:
    first = await enqueue(qc, unique=True)
    second = await enqueue(qc, unique=True)
    assert (first.inserted, second.inserted) == (True, False)
    assert second.id == first.id and second.run_at is None
    other = await enqueue(qc, args=[2], unique=True)
    assert other.inserted and other.id != first.id
    assert job_ids(conn) == sorted([first.id, other.id])
    assert sorted(row[1:] for row in conn.execute(KEYS)) == sorted(
        [(first.id, "active"), (other.id, "active")]
    )


async def test_an_ordinary_enqueue_says_it_inserted(qc: AnyClient, conn: Conn) -> None:
    jobs = [await enqueue(qc), await enqueue(qc)]
    jobs += await r(qc.enqueue_many([que.Job("Mail", [1])]))
    assert [job.inserted for job in jobs] == [True, True, True]
    assert len(set(job_ids(conn))) == 3
    assert key_count(conn) == 0


async def test_a_given_key_ignores_type_and_args(qc: AnyClient, conn: Conn) -> None:
    spec = que.Unique(key="report:2030-01")
    first = await enqueue(qc, "Report", [1], unique=spec)
    second = await enqueue(qc, "OtherReport", [2], unique=spec)
    assert (first.inserted, second.inserted, second.id) == (True, False, first.id)
    assert conn.execute(KEYS).fetchall() == [("report:2030-01", first.id, "active")]


async def test_many_producers_at_once_make_one_job(side: Side, db_url: str, conn: Conn) -> None:
    """Twelve producers (threads on the sync face, tasks on the async one) race
    on each of many keys, fresh ones and stale ones taken over."""
    async with side.client(db_url, max_connections=12) as qc:
        for round_number in range(10):
            spec = que.Unique(key=f"race-{round_number % 5}")
            jobs = [que.Job("Race", [n]) for n in range(12)]
            await asyncio.gather(*(side.call(_enqueuer(qc, job, spec)) for job in jobs))
            inserted = [job for job in jobs if job.inserted]
            assert len(inserted) == 1, [(job.id, job.inserted) for job in jobs]
            assert {job.id for job in jobs} == {inserted[0].id}
            assert inserted[0].id in job_ids(conn)
            if round_number == 4:
                # The next rounds find the five keys stale: exactly one
                # producer of each takes its key over.
                conn.execute("DELETE FROM que_jobs")
    assert len(job_ids(conn)) == 5
    assert key_count(conn) == 5


def _enqueuer(qc: AnyClient, job: que.Job, spec: que.Unique) -> Any:
    return lambda: qc.enqueue(job, unique=spec)


PRODUCER = """
import json, sys, time
from pathlib import Path
import que

url, go, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
with que.Client(url, max_connections=1) as client:
    while not go.exists():
        time.sleep(0.005)
    found = []
    for n in range(count):
        job = client.enqueue(que.Job("Race", [n]), unique=True)
        found.append([n, job.id, job.inserted])
print(json.dumps(found))
"""


async def test_producers_in_several_processes_make_one_job_per_key(
    db_url: str, conn: Conn, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    script = tmp_path / "producer.py"
    script.write_text(textwrap.dedent(PRODUCER))
    keys = 25
    producers = [
        subprocess.Popen(
            [sys.executable, str(script), db_url, str(go), str(keys)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    try:
        await wait_until(
            lambda: _connections(conn) >= len(producers), what="every producer connected"
        )
        go.touch()
        results = [await asyncio.to_thread(p.communicate, timeout=120) for p in producers]
    finally:
        for p in producers:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (_, err) in zip(producers, results, strict=True):
        assert p.returncode == 0, err
    found = [json.loads(out) for out, _ in results]
    for n in range(keys):
        calls = [per_process[n] for per_process in found]
        assert sum(1 for _, _, inserted in calls if inserted) == 1, calls
        assert len({job_id for _, job_id, _ in calls}) == 1, calls
    assert len(job_ids(conn)) == keys
    assert key_count(conn) == keys


def _connections(conn: Conn) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ).fetchone()
    assert row is not None
    return int(row[0])


async def _blocked_on_a_lock(conn: Conn) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ).fetchone()
    return row is not None and row[0] > 0


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_producer_waits_for_an_uncommitted_key(
    side: Side, qc: AnyClient, db_url: str, conn: Conn, outcome: str
) -> None:
    """The second producer blocks on the first one's uncommitted key, then
    finds its job (commit) or inserts its own (rollback)."""
    async with side.connection(db_url) as caller:
        first = await enqueue(qc, conn=caller, unique=True)
        second = que.Job("Mail", [1])
        racing = asyncio.create_task(side.call(_enqueuer(qc, second, que.Unique())))
        await wait_until(lambda: _blocked_on_a_lock(conn), what="the second producer waits")
        assert not racing.done()
        await r(caller.commit() if outcome == "commit" else caller.rollback())
        await asyncio.wait_for(racing, 30)
    if outcome == "commit":
        assert (second.inserted, second.id) == (False, first.id)
        assert job_ids(conn) == [first.id]
    else:
        assert second.inserted and second.id != first.id
        assert job_ids(conn) == [second.id]
    assert key_count(conn) == 1


async def test_a_rolled_back_enqueue_leaves_no_key(
    side: Side, qc: AnyClient, db_url: str, conn: Conn
) -> None:
    async with side.connection(db_url) as caller:
        job = await enqueue(qc, conn=caller, unique=que.Unique(key="k"))
        again = await enqueue(qc, conn=caller, unique=que.Unique(key="k"))
        assert (job.inserted, again.inserted, again.id) == (True, False, job.id)
        await r(caller.rollback())
    assert key_count(conn) == 0 and job_ids(conn) == []
    later = await enqueue(qc, unique=que.Unique(key="k"))
    assert later.inserted
    assert conn.execute(KEYS).fetchall() == [("k", later.id, "active")]


async def test_a_caller_connection_in_autocommit_commits_at_once(
    side: Side, qc: AnyClient, db_url: str, conn: Conn
) -> None:
    async with side.connection(db_url) as caller:
        await r(caller.set_autocommit(True))
        jobs = await r(
            qc.enqueue_many([que.Job("Mail", [1]), que.Job("Mail", [1])], conn=caller, unique=True)
        )
    assert [job.inserted for job in jobs] == [True, False]
    assert job_ids(conn) == [jobs[0].id]


async def test_enqueue_many_keeps_each_job_unique(qc: AnyClient, conn: Conn) -> None:
    existing = await enqueue(qc, args=["old"], unique=True)
    batch = [que.Job("Mail", [n]) for n in ("old", "a", "b", "a", "old", "c")]
    jobs = await r(qc.enqueue_many(batch, unique=True))
    assert jobs == batch
    assert [job.inserted for job in jobs] == [False, True, True, False, False, True]
    assert jobs[0].id == jobs[4].id == existing.id
    assert jobs[3].id == jobs[1].id
    assert len({jobs[1].id, jobs[2].id, jobs[5].id, existing.id}) == 4
    assert len(job_ids(conn)) == 4 and key_count(conn) == 4


async def test_enqueue_many_is_one_transaction(qc: AnyClient, conn: Conn) -> None:
    batch = [que.Job("Mail", [1]), que.Job("Mail", [2], priority=10**6)]
    with pytest.raises(que.InvalidJobError):
        await r(qc.enqueue_many(batch, unique=True))
    batch = [que.Job("Mail", [1]), que.Job("Mail", [2], queue="q")]
    conn.execute(
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.queue = 'q' THEN RAISE 'boom'; END IF; RETURN NEW; END $$"
    )
    conn.execute(
        "CREATE TRIGGER boom BEFORE INSERT ON que_jobs FOR EACH ROW EXECUTE FUNCTION boom()"
    )
    with pytest.raises(psycopg.errors.RaiseException):
        await r(qc.enqueue_many(batch, unique=True))
    assert job_ids(conn) == [] and key_count(conn) == 0


async def test_queued_scope_frees_the_key_once_a_worker_holds_the_job(
    qc: AnyClient, conn: Conn
) -> None:
    spec = que.Unique(scope="queued")
    first = await enqueue(qc, unique=spec)
    assert not (await enqueue(qc, unique=spec)).inserted
    async with claimed(qc) as running:
        assert running.id == first.id
        second = await enqueue(qc, unique=spec)
        assert second.inserted and second.id != first.id
        third = await enqueue(qc, unique=spec)
        assert (third.inserted, third.id) == (False, second.id)
        await r(running.delete())
    assert job_ids(conn) == [second.id]


async def test_active_scope_holds_the_key_until_the_job_is_deleted(
    qc: AnyClient, conn: Conn
) -> None:
    first = await enqueue(qc, unique=que.Unique(scope="active"))
    async with claimed(qc) as running:
        again = await enqueue(qc, unique=True)
        assert (again.inserted, again.id) == (False, first.id)
        await r(running.delete())
    after = await enqueue(qc, unique=True)
    assert after.inserted and after.id != first.id
    assert conn.execute(KEYS).fetchall()[0][1:] == (after.id, "active")


async def test_period_scope_holds_the_key_after_the_job_is_done(qc: AnyClient, conn: Conn) -> None:
    spec = que.Unique(period=1.0)
    first = await enqueue(qc, unique=spec)
    async with claimed(qc) as running:
        await r(running.delete())
    refused = await enqueue(qc, unique=spec)
    assert (refused.inserted, refused.id) == (False, first.id)
    assert job_ids(conn) == []
    row = conn.execute("SELECT scope, expires_at - created_at FROM que_unique_keys").fetchone()
    assert row is not None and row[0] == "period" and row[1].total_seconds() == 1.0
    found: list[Any] = []

    async def inserted_after_expiry() -> bool:
        job = await enqueue(qc, unique=spec)
        found.append(job)
        return bool(job.inserted)

    await wait_until(inserted_after_expiry, what="the period's end frees the key")
    assert all(not job.inserted and job.id == first.id for job in found[:-1])
    assert job_ids(conn) == [found[-1].id]


async def test_a_ruby_or_go_style_delete_frees_an_active_key(qc: AnyClient, conn: Conn) -> None:
    first = await enqueue(qc, unique=True)
    conn.execute("DELETE FROM que_jobs WHERE job_id = %s", [first.id])
    after = await enqueue(qc, unique=True)
    assert after.inserted and after.id != first.id


async def test_a_session_lock_on_a_plain_connection_makes_a_queued_key_stale(
    qc: AnyClient, db_url: str, conn: Conn
) -> None:
    """Ruby's and Go's workers hold a job with a session advisory lock."""
    spec = que.Unique(scope="queued")
    first = await enqueue(qc, unique=spec)
    with psycopg.connect(db_url, autocommit=True) as worker:
        worker.execute("SELECT pg_advisory_lock(%s)", [first.id])
        try:
            second = await enqueue(qc, unique=spec)
        finally:
            worker.execute("SELECT pg_advisory_unlock(%s)", [first.id])
    assert second.inserted and second.id != first.id
    assert job_ids(conn) == [first.id, second.id]


async def test_repeatable_read_callers_get_a_serialization_failure(
    side: Side, qc: AnyClient, db_url: str, conn: Conn
) -> None:
    """A snapshot taken before another producer committed the key cannot see
    that job: PostgreSQL refuses the insert instead of making a second one."""
    async with side.connection(db_url) as caller:
        await r(caller.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ))
        await r(caller.execute("SELECT 1"))  # the snapshot
        committed = await enqueue(qc, unique=True)
        with pytest.raises(psycopg.errors.SerializationFailure):
            await enqueue(qc, conn=caller, unique=True)
        await r(caller.rollback())
    assert job_ids(conn) == [committed.id]


async def test_the_purge_removes_stale_keys_and_keeps_live_ones(
    side: Side, qc: AnyClient, db_url: str, conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = [await enqueue(qc, args=[n], unique=True) for n in range(4)]
    gone = [await enqueue(qc, args=["gone", n], unique=True) for n in range(5)]
    held = await enqueue(qc, args=["held"], unique=que.Unique(period=3600))
    expired = await enqueue(qc, args=["expired"], unique=que.Unique(period=3600))
    conn.execute("DELETE FROM que_jobs WHERE job_id = ANY(%s)", [[job.id for job in gone]])
    conn.execute(
        "UPDATE que_unique_keys SET expires_at = now() - interval '1 second' WHERE job_id = %s",
        [expired.id],
    )
    # Small windows: one purge walks all of them.
    module = async_unique if side.is_async else unique
    monkeypatch.setattr(module, "UNIQUE_PURGE_WINDOW", 3)
    purge = UniquePurge()
    async with side.connection(db_url) as own:
        await r(own.set_autocommit(True))
        assert await r(module.purge_stale_unique_keys(own, purge)) == 6
    assert purge.after == ""  # it reached the end, and starts over next time
    left = {row[1] for row in conn.execute(KEYS)}
    assert left == {job.id for job in live} | {held.id}


async def test_workers_purge_stale_keys(side: Side, qc: AnyClient, conn: Conn) -> None:
    stale = await enqueue(qc, "Other", unique=True)
    conn.execute("DELETE FROM que_jobs WHERE job_id = %s", [stale.id])
    live = await enqueue(qc, "Other", args=[2], unique=True)
    worker = side.worker(qc, {}, queue="nothing", interval=0.05)
    task = side.start(worker.work)
    try:
        await wait_until(lambda: key_count(conn) == 1, what="the stale key purged")
    finally:
        assert await side.call(worker.shutdown, 30) is True
        await asyncio.wait_for(task, 30)
    assert conn.execute(KEYS).fetchall()[0][1] == live.id


async def test_unique_jobs_need_extension_version_2(side: Side, db_url: str, conn: Conn) -> None:
    que.migrate_extension(conn, 1)
    async with side.client(db_url) as qc:
        assert qc.extension_version == 1
        for call in (
            lambda: qc.enqueue(que.Job("Mail"), unique=True),
            lambda: qc.enqueue_many([que.Job("Mail")], unique=que.Unique(key="k")),
        ):
            with pytest.raises(que.SchemaVersionError, match=NEEDS_V2):
                await r(call())
        assert (await enqueue(qc)).inserted
    assert len(job_ids(conn)) == 1


async def test_unique_jobs_through_pgbouncer(
    side: Side, bouncer_url: str, db_url: str, conn: Conn
) -> None:
    """Behind PgBouncer nothing is prepared, and a claim holds a
    transaction-level lock: a 'queued' key sees it as a running job."""
    spec = que.Unique(scope="queued")
    async with side.client(bouncer_url, pgbouncer=True, max_connections=4) as bc:
        first = await enqueue(bc, unique=spec)
        assert not (await enqueue(bc, unique=spec)).inserted
        async with claimed(bc) as running:
            assert running.id == first.id
            second = await enqueue(bc, unique=spec)
            assert second.inserted and second.id != first.id
            await r(running.delete())
        async with side.connection(bouncer_url) as caller:
            await r(caller.execute("SET LOCAL statement_timeout = '30s'"))
            rolled_back = await r(bc.enqueue(que.Job("Other"), conn=caller, unique=True))
            assert rolled_back.inserted
            await r(caller.rollback())
    assert job_ids(conn) == [second.id]
    assert [row[1] for row in conn.execute(KEYS)] == [second.id]
