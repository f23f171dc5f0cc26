"""Managing jobs by id (client.jobs, client.dead) on both sides, beside running workers.

A job is "running" when any session holds its advisory lock: a BatchWorker of
the test's side working a job that waits on a gate, or a direct connection
holding a session lock the way Ruby que 0.x and Go do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que
from que import sql
from que._manage_base import list_params

from ..sides import AnyClient, Side, r, wait_event, wait_until

Conn = psycopg.Connection[Any]


def scalar(conn: Conn, query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def waiting_for_lock(conn: Conn, job_id: int) -> bool:
    """Whether some session waits (ungranted) for the advisory lock of ``job_id``."""
    return bool(
        scalar(
            conn,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
            "AND NOT granted AND (classid::bigint << 32) | objid::bigint = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [job_id],
        )
    )


@contextmanager
def session_lock(url: str, job_id: int) -> Iterator[Conn]:
    """A Ruby or Go worker's hold on a job: a session advisory lock on a direct connection."""
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [job_id])
        try:
            yield holder
        finally:
            holder.execute("SELECT pg_advisory_unlock_all()")


class Beside:
    """A BatchWorker of the test's side, working 'Quick' jobs in the queue 'busy' and
    holding each 'Hold' job of the queue 'held' until ``release`` is set (then
    it fails the jobs whose args are ["fail"])."""

    def __init__(self) -> None:
        self.entered: list[int] = []
        self.quick_done = 0
        self.release = threading.Event()

    async def hold(self, job: Any) -> None:
        self.entered.append(job.id)
        await wait_event(self.release, 60)
        if job.args == ["fail"]:
            raise RuntimeError("failed after the wait")

    async def quick(self, job: Any) -> None:
        self.quick_done += 1


@asynccontextmanager
async def beside(side: Side, qc: AnyClient, args: Any = (0,)) -> AsyncIterator[tuple[Beside, Any]]:
    """A worker running beside the test, holding one job of its own (with ``args``);
    yields the worker's state and that job (in a list)."""
    state = Beside()
    await r(qc.enqueue_many([que.Job(type="Quick", queue="busy") for _ in range(20)]))
    jobs = await r(qc.enqueue_many([que.Job(type="Hold", queue="held", args=list(args))]))
    engine = side.batch_worker(
        qc,
        {"Hold": side.handler(state.hold), "Quick": side.handler(state.quick)},
        queue=["held", "busy"],
        concurrency=3,
        interval=0.05,
    )
    side.start_engine(engine)
    try:
        await wait_until(lambda: len(state.entered) == 1, what="the worker holds its job")
        yield state, jobs
    finally:
        state.release.set()
        assert await side.stop_engine(engine, 30)


async def enqueue(qc: AnyClient, **fields: Any) -> Any:
    fields.setdefault("type", "Target")
    return await r(qc.enqueue(que.Job(**fields)))


def fail(conn: Conn, job_id: int, count: int = 2, message: str = "boom", later: int = 3600) -> None:
    """Record failures on a job as a worker would: error_count, last_error, a later run_at."""
    conn.execute(
        "UPDATE que_jobs SET error_count = %s, last_error = %s, "
        "run_at = now() + make_interval(secs => %s) WHERE job_id = %s",
        [count, message, later, job_id],
    )


def job_row(conn: Conn, job_id: int) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT queue, priority, run_at, error_count, last_error, run_at <= now() "
        "FROM que_jobs WHERE job_id = %s",
        [job_id],
    ).fetchone()


# -- inspect -----------------------------------------------------------------------


async def test_paging_returns_every_job_once_in_key_order(qc: AnyClient, conn: Conn) -> None:
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    await r(
        qc.enqueue_many(
            [
                que.Job(
                    type=f"T{i % 3}",
                    queue=f"q{i % 4}",
                    priority=i % 7,
                    run_at=later if i % 5 == 0 else None,
                )
                for i in range(1000)
            ]
        )
    )
    expected = [
        row[0]
        for row in conn.execute(
            "SELECT job_id FROM que_jobs ORDER BY queue, priority, run_at, job_id"
        ).fetchall()
    ]
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        page = await r(qc.jobs.list(after=after, limit=100))
        pages += 1
        seen.extend(record.id for record in page)
        if page.next is None:
            break
        assert len(page) == 100
        after = page.next
    assert seen == expected
    assert pages == 10  # the last full page knows it is the last one


async def test_paging_a_filtered_listing(qc: AnyClient) -> None:
    jobs = await r(
        qc.enqueue_many([que.Job(type="T", queue="a" if i % 2 else "b") for i in range(25)])
    )
    wanted = [job.id for job in jobs if job.queue == "a"]
    seen: list[int] = []
    after = None
    while True:
        page = await r(qc.jobs.list(queue="a", after=after, limit=5))
        seen.extend(record.id for record in page)
        assert all(record.queue == "a" for record in page)
        if page.next is None:
            break
        after = page.next
    assert seen == wanted


async def test_filters(qc: AnyClient, conn: Conn, db_url: str) -> None:
    now = datetime.now(timezone.utc)
    ready = await enqueue(qc, type="Mail", args=[{"user": 1, "tags": ["x"]}])
    scheduled = await enqueue(qc, type="Mail", run_at=now + timedelta(hours=1))
    failed = await enqueue(qc, type="Bill", queue="money", args=[7])
    old = await enqueue(qc, type="Bill", run_at=now - timedelta(days=3))
    fail(conn, failed.id, later=-60)
    running = await enqueue(qc, type="Bill")

    async def ids(**filters: Any) -> set[int]:
        return {record.id for record in await r(qc.jobs.list(**filters))}

    with session_lock(db_url, running.id):
        assert await ids() == {ready.id, scheduled.id, failed.id, old.id, running.id}
        assert await ids(queue="money") == {failed.id}
        assert await ids(type="Mail") == {ready.id, scheduled.id}
        assert await ids(state="ready") == {ready.id, failed.id, old.id}
        assert await ids(state="scheduled") == {scheduled.id}
        assert await ids(state="failed") == {failed.id}
        assert await ids(state="locked") == {running.id}
        assert await ids(older_than=timedelta(days=1)) == {old.id}
        assert await ids(args_contain=[{"user": 1}]) == {ready.id}
        assert await ids(args_contain=[{"tags": ["x"]}]) == {ready.id}
        assert await ids(args_contain=[7]) == {failed.id}
        assert await ids(type="Bill", state="ready") == {failed.id, old.id}
        assert await ids(queue="nope") == set()
        locked = {record.id: record.locked for record in await r(qc.jobs.list())}
        assert locked[running.id] is True
        assert locked[ready.id] is False


async def test_get_shows_the_whole_last_error_and_whether_it_runs(
    qc: AnyClient, conn: Conn, db_url: str
) -> None:
    job = await enqueue(qc, args=[1, "two"], priority=3)
    message = "Traceback (most recent call last):\n" + "  line\n" * 5000 + "RuntimeError: x"
    fail(conn, job.id, count=4, message=message)
    record = await r(qc.jobs.get(job.id))
    assert isinstance(record, que.JobRecord)
    assert (record.id, record.type, record.args, record.priority, record.queue) == (
        job.id,
        "Target",
        [1, "two"],
        3,
        "",
    )
    assert (record.error_count, record.last_error, record.locked) == (4, message, False)
    with session_lock(db_url, job.id):
        running = await r(qc.jobs.get(job.id))
        assert running is not None and running.locked
    assert await r(qc.jobs.get(job.id + 1000)) is None


def test_a_queue_page_walks_the_primary_key(client: que.Client, conn: Conn) -> None:
    conn.execute(
        "INSERT INTO que_jobs (queue, priority, run_at, job_class, args, error_count) "
        "SELECT 'q' || (i % 10), i % 5, now() - make_interval(secs => i), 'T' || (i % 3), "
        "'[]', i % 2 FROM generate_series(1, 50000) AS i"
    )
    conn.execute("ANALYZE que_jobs")
    first = client.jobs.list(queue="q3", limit=100)
    assert first.next is not None
    for filters in (
        {"queue": "q3"},
        {"queue": "q3", "type": "T1", "state": "failed"},
        {"queue": "q3", "state": "ready"},
        {},
    ):
        params = list_params(
            queue=filters.get("queue"),
            type=filters.get("type"),
            state=filters.get("state"),
            older_than=None,
            args_contain=None,
            after=first.next,
            limit=100,
        )
        plan = "\n".join(
            row[0] for row in conn.execute("EXPLAIN " + sql.LIST_JOBS, params).fetchall()
        )
        assert "que_jobs_pkey" in plan, plan
        assert "Seq Scan on que_jobs" not in plan, plan
        assert "Sort" not in plan, plan


def test_a_dead_page_walks_the_died_at_index(client: que.Client, conn: Conn) -> None:
    conn.execute(
        "INSERT INTO que_dead_jobs (priority, run_at, job_id, job_class, args, error_count, "
        "queue, died_at, outcome, reason) "
        "SELECT 100, now(), i, 'T', '[]', 5, '', now() - make_interval(secs => i), "
        "'exhausted', 'out of attempts' FROM generate_series(1, 50000) AS i"
    )
    conn.execute("ANALYZE que_dead_jobs")
    first = client.dead.list(limit=100)
    second = client.dead.list(after=first.next, limit=100)
    assert [d.id for d in first] == list(range(1, 101))
    assert [d.id for d in second] == list(range(101, 201))
    from que._manage_base import dead_list_params

    params = dead_list_params(queue=None, type=None, outcome=None, after=first.next, limit=100)
    plan = "\n".join(
        row[0] for row in conn.execute("EXPLAIN " + sql.LIST_DEAD_JOBS, params).fetchall()
    )
    assert "que_dead_jobs_died_at" in plan, plan
    assert "Sort" not in plan, plan


async def test_bad_arguments_are_refused(qc: AnyClient) -> None:
    for bad in (
        {"state": "running"},
        {"limit": 0},
        {"limit": 100_001},
        {"after": "j1.garbage!"},
        {"after": "d1.WyIyMDMwIiwxXQ"},
        {"queue": "a\x00b"},
        {"args_contain": float("nan")},
    ):
        with pytest.raises(ValueError):
            await r(qc.jobs.list(**bad))
    with pytest.raises(TypeError):
        await r(qc.jobs.list(older_than=3600))
    with pytest.raises(TypeError):
        await r(qc.jobs.get("1"))
    with pytest.raises(ValueError):
        await r(qc.dead.list(outcome="died"))
    with pytest.raises(ValueError):
        await r(qc.jobs.delete(1, wait=-1))


# -- act ---------------------------------------------------------------------------


async def test_retry_refuses_a_running_job_and_keeps_the_error_count(
    side: Side, qc: AnyClient, conn: Conn, db_url: str
) -> None:
    target = await enqueue(qc, queue="target")
    fail(conn, target.id, count=3)
    async with beside(side, qc) as (worker, held):
        retried = await r(qc.jobs.retry(target.id))
        assert retried.id == target.id and retried.error_count == 3 and not retried.locked
        assert job_row(conn, target.id) == (
            "target",
            100,
            retried.run_at,
            3,
            "boom",
            True,
        )
        with pytest.raises(que.JobLockedError, match=f"job {held[0].id} is being worked"):
            await r(qc.jobs.retry(held[0].id))
        with session_lock(db_url, target.id), pytest.raises(que.JobLockedError):
            await r(qc.jobs.retry(target.id))
        worker.release.set()
        await wait_until(lambda: job_row(conn, held[0].id) is None, what="the held job done")
        with pytest.raises(que.JobNotFoundError, match="not in que_jobs"):
            await r(qc.jobs.retry(held[0].id))
        await wait_until(lambda: worker.quick_done == 20, what="the other jobs worked")


async def test_retry_failed_skips_running_jobs(
    side: Side, qc: AnyClient, conn: Conn, db_url: str
) -> None:
    conn.execute(
        "INSERT INTO que_jobs (queue, job_class, run_at, error_count, last_error) "
        "SELECT 'target', CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, "
        "now() + interval '1 hour', 1, 'x' FROM generate_series(1, 1200) AS i"
    )
    ok = await enqueue(qc, queue="target", type="A")
    running = scalar(conn, "SELECT min(job_id) FROM que_jobs WHERE job_class = 'A'")
    async with beside(side, qc):
        with session_lock(db_url, running):
            assert await r(qc.jobs.retry_failed(type="A", queue="nope")) == 0
            assert await r(qc.jobs.retry_failed(type="A")) == 599
            assert scalar(conn, "SELECT run_at > now() FROM que_jobs WHERE job_id = %s", [running])
            assert await r(qc.jobs.retry_failed(queue="target")) == 1199
        assert await r(qc.jobs.retry_failed()) == 1200
    assert (
        scalar(conn, "SELECT count(*) FROM que_jobs WHERE queue = 'target' AND run_at <= now()")
        == 1201
    )
    assert scalar(conn, "SELECT error_count FROM que_jobs WHERE job_id = %s", [ok.id]) == 0


async def test_reschedule_and_set_priority(
    side: Side, qc: AnyClient, conn: Conn, db_url: str
) -> None:
    target = await enqueue(qc, queue="target")
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    async with beside(side, qc) as (_, held):
        moved = await r(qc.jobs.reschedule(target.id, when))
        assert moved.run_at == when
        assert (await r(qc.jobs.set_priority(target.id, 0))).priority == 0
        assert job_row(conn, target.id) == ("target", 0, when, 0, None, False)
        for call in (
            lambda: qc.jobs.reschedule(held[0].id, when),
            lambda: qc.jobs.set_priority(held[0].id, 1),
        ):
            with pytest.raises(que.JobLockedError):
                await r(call())
        with session_lock(db_url, target.id), pytest.raises(que.JobLockedError):
            await r(qc.jobs.set_priority(target.id, 5))
        assert job_row(conn, target.id) == ("target", 0, when, 0, None, False)
    with pytest.raises(ValueError, match="out of range"):
        await r(qc.jobs.set_priority(target.id, 40000))
    with pytest.raises(ValueError, match="naive"):
        await r(qc.jobs.reschedule(target.id, datetime(2031, 1, 1)))
    with pytest.raises(que.JobNotFoundError):
        await r(qc.jobs.set_priority(target.id + 1000, 1))


async def test_delete_refuses_a_running_job_unless_it_waits(
    side: Side, qc: AnyClient, conn: Conn, db_url: str
) -> None:
    target = await enqueue(qc, queue="target")
    async with beside(side, qc) as (_, held):
        assert await r(qc.jobs.delete(target.id)) is True
        assert job_row(conn, target.id) is None
        with pytest.raises(que.JobNotFoundError):
            await r(qc.jobs.delete(target.id))
        with pytest.raises(que.JobLockedError, match="wait"):
            await r(qc.jobs.delete(held[0].id))
        assert job_row(conn, held[0].id) is not None


async def test_delete_waits_for_a_worker_that_finishes_the_job(
    side: Side, qc: AnyClient, conn: Conn
) -> None:
    async with beside(side, qc) as (worker, held):
        job_id = held[0].id
        deleting = side.start(lambda: qc.jobs.delete(job_id, wait=60))
        await wait_until(lambda: waiting_for_lock(conn, job_id), what="delete waits for the lock")
        worker.release.set()
        assert await deleting is False  # the worker deleted it first
        assert job_row(conn, job_id) is None


async def test_delete_waits_for_a_worker_that_fails_the_job(
    side: Side, qc: AnyClient, conn: Conn
) -> None:
    async with beside(side, qc, args=["fail"]) as (worker, held):
        failing = held[0].id
        deleting = side.start(lambda: qc.jobs.delete(failing, wait=60))
        await wait_until(lambda: waiting_for_lock(conn, failing), what="delete waits for the lock")
        worker.release.set()
        assert await deleting is True  # the worker recorded the failure; this call deleted it
        assert job_row(conn, failing) is None


async def test_delete_gives_up_when_the_wait_runs_out(
    qc: AnyClient, conn: Conn, db_url: str
) -> None:
    target = await enqueue(qc)
    with session_lock(db_url, target.id):
        with pytest.raises(que.JobLockedError, match=r"still being worked after 0\.2s"):
            await r(qc.jobs.delete(target.id, wait=0.2))
        assert job_row(conn, target.id) is not None
    assert await r(qc.jobs.delete(target.id, wait=5)) is True


# -- cancel and dead jobs ------------------------------------------------------------


async def test_cancel_removes_a_waiting_job_and_requests_a_running_one(
    side: Side, qc: AnyClient, conn: Conn, db_url: str
) -> None:
    target = await enqueue(qc, queue="target", args=["keep me"])
    fail(conn, target.id, count=1, message="first try failed")
    async with beside(side, qc) as (_, held):
        with psycopg.connect(db_url, autocommit=True) as listener:
            listener.execute("LISTEN " + sql.CANCEL_CHANNEL)
            assert await r(qc.jobs.cancel(target.id)) == "removed"
            assert await r(qc.jobs.cancel(held[0].id)) == "requested"
            notes = [n.payload for n in listener.notifies(timeout=10, stop_after=1)]
        assert notes == [str(held[0].id)]
        requested = scalar(conn, "SELECT array_agg(job_id) FROM que_cancel_requests")
        if requested is None:
            # The engine acted on the NOTIFY first: an async job is cancelled at
            # once, buried as cancelled, and its request removed.
            assert side.is_async
            acted = await r(qc.dead.get(held[0].id))
            assert (acted.outcome, job_row(conn, held[0].id)) == ("cancelled", None)
        else:
            assert requested == [held[0].id]
            if not side.is_async:  # a job in a thread is only flagged: it runs on
                assert job_row(conn, held[0].id) is not None
    assert job_row(conn, target.id) is None
    dead = await r(qc.dead.get(target.id))
    assert isinstance(dead, que.DeadJobRecord)
    assert (dead.outcome, dead.reason, dead.args, dead.error_count, dead.last_error) == (
        "cancelled",
        "cancelled before it ran",
        ["keep me"],
        1,
        "first try failed",
    )
    with pytest.raises(que.JobNotFoundError, match="in que_dead_jobs"):
        await r(qc.jobs.cancel(target.id))
    with pytest.raises(que.JobNotFoundError, match="in que_dead_jobs"):
        await r(qc.jobs.retry(target.id))
    with pytest.raises(que.JobNotFoundError, match="never existed"):
        await r(qc.jobs.cancel(target.id + 1000))


async def test_cancel_of_a_ruby_or_go_job_is_a_request(
    qc: AnyClient, conn: Conn, db_url: str
) -> None:
    target = await enqueue(qc)
    with session_lock(db_url, target.id):
        assert await r(qc.jobs.cancel(target.id)) == "requested"
        assert await r(qc.jobs.cancel(target.id)) == "requested"  # asking twice is fine
    assert scalar(conn, "SELECT count(*) FROM que_cancel_requests") == 1


async def test_dead_job_round_trip(side: Side, qc: AnyClient, conn: Conn) -> None:
    target = await enqueue(qc, queue="target", args=[{"n": 1}])
    fail(conn, target.id, count=7, message="gave up")
    async with beside(side, qc) as (_, held):
        assert await r(qc.jobs.cancel(target.id)) == "removed"
        conn.execute("INSERT INTO que_cancel_requests (job_id) VALUES (%s)", [target.id])
        with pytest.raises(que.JobNotFoundError, match="it is in que_jobs"):
            await r(qc.dead.retry(held[0].id))
        revived = await r(qc.dead.retry(target.id))
        assert (revived.id, revived.args, revived.error_count, revived.last_error) == (
            target.id,
            [{"n": 1}],
            0,
            "gave up",
        )
        assert job_row(conn, target.id) == ("target", 100, revived.run_at, 0, "gave up", True)
        assert await r(qc.dead.get(target.id)) is None
        assert scalar(conn, "SELECT count(*) FROM que_cancel_requests") == 0
        with pytest.raises(que.JobNotFoundError, match="not in que_dead_jobs"):
            await r(qc.dead.retry(target.id))
        with pytest.raises(que.JobNotFoundError, match="no dead job"):
            await r(qc.dead.retry(target.id + 1000))


def add_dead(conn: Conn, job_id: int, outcome: str, days: int, **fields: Any) -> None:
    conn.execute(
        "INSERT INTO que_dead_jobs (priority, run_at, job_id, job_class, args, error_count, "
        "last_error, queue, died_at, outcome, reason) VALUES (100, now(), %s, %s, %s, 3, 'x', "
        "%s, now() - make_interval(days => %s), %s, 'because')",
        [
            job_id,
            fields.get("type", "T"),
            json.dumps(fields.get("args", [])),
            fields.get("queue", ""),
            days,
            outcome,
        ],
    )


async def test_dead_list_filters_pages_retries_and_purges(
    side: Side, qc: AnyClient, conn: Conn
) -> None:
    for job_id in range(1, 31):
        outcome = ("exhausted", "discarded", "cancelled")[job_id % 3]
        add_dead(conn, 1000 + job_id, outcome, days=job_id, queue=f"q{job_id % 2}")
    seen: list[int] = []
    after = None
    while True:
        page = await r(qc.dead.list(after=after, limit=7))
        seen.extend(record.id for record in page)
        if page.next is None:
            break
        after = page.next
    assert seen == [1000 + n for n in range(1, 31)]  # newest first
    cancelled = await r(qc.dead.list(outcome="cancelled", queue="q1"))
    assert {record.id for record in cancelled} == {1005, 1011, 1017, 1023, 1029}
    async with beside(side, qc):
        assert await r(qc.dead.retry_all(outcome="cancelled", queue="q1")) == 5
        assert await r(qc.dead.purge(timedelta(days=25, hours=12))) == 4
        assert await r(qc.dead.purge(type="nope")) == 0
        assert await r(qc.dead.retry_all(type="T", outcome="exhausted")) == 8
        assert await r(qc.dead.purge()) == 13
    assert scalar(conn, "SELECT count(*) FROM que_dead_jobs") == 0
    assert scalar(conn, "SELECT count(*) FROM que_jobs WHERE job_id > 1000") == 13


async def test_without_the_extension_dead_jobs_say_what_to_do(qc: AnyClient, conn: Conn) -> None:
    que.migrate_extension(conn, 0)
    target = await enqueue(qc)
    for call in (
        qc.dead.list,
        lambda: qc.dead.get(1),
        lambda: qc.dead.retry(1),
        qc.dead.retry_all,
        qc.dead.purge,
        lambda: qc.jobs.cancel(target.id),
    ):
        with pytest.raises(que.SchemaVersionError, match="que migrate"):
            await r(call())
    assert [record.id for record in await r(qc.jobs.list())] == [target.id]
    with pytest.raises(que.JobNotFoundError, match="never existed"):
        await r(qc.jobs.retry(target.id + 1))
    assert (await r(qc.jobs.retry(target.id))).id == target.id


# -- hostile input -------------------------------------------------------------------

HOSTILE = [
    "it's",
    'say "hi"',
    "back\\slash",
    "not a NUL: \\u0000",
    "%(queue)s %s {}",
    "'; DROP TABLE que_jobs; --",
    "日本語 ✓ émoji 🎉",
    "line\nbreak\ttab",
    "",
]


async def test_hostile_names_and_args_stay_data(qc: AnyClient, conn: Conn) -> None:
    jobs = [
        await enqueue(qc, type=f"T {name}", queue=f"Q {name}", args=[name, {name: name}])
        for name in HOSTILE
    ]
    for name, job in zip(HOSTILE, jobs, strict=True):
        assert [rec.id for rec in await r(qc.jobs.list(queue=f"Q {name}"))] == [job.id]
        assert [rec.id for rec in await r(qc.jobs.list(type=f"T {name}"))] == [job.id]
        found = await r(qc.jobs.list(args_contain=[{name: name}]))
        assert [rec.id for rec in found] == [job.id]
        record = await r(qc.jobs.get(job.id))
        assert record is not None and (record.type, record.queue, record.args) == (
            f"T {name}",
            f"Q {name}",
            [name, {name: name}],
        )
        assert (await r(qc.jobs.retry(job.id))).queue == f"Q {name}"
        assert await r(qc.jobs.cancel(job.id)) == "removed"
        dead = await r(qc.dead.list(queue=f"Q {name}", type=f"T {name}"))
        assert [rec.id for rec in dead] == [job.id]
    assert await r(qc.dead.retry_all(queue=f"Q {HOSTILE[4]}")) == 1
    assert scalar(conn, "SELECT count(*) FROM que_jobs") == 1


async def test_args_no_jsonb_can_hold_never_match_and_never_fail(qc: AnyClient, conn: Conn) -> None:
    """A Go or Ruby producer may store JSON that jsonb refuses (\\u0000, a lone surrogate)."""
    for text in ('["\\u0000"]', '["\\ud800"]', "[1]"):
        conn.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Foreign', %s::json)", [text])
    assert len(await r(qc.jobs.list())) == 3
    assert [rec.args for rec in await r(qc.jobs.list(args_contain=[1]))] == [[1]]
    with pytest.raises(ValueError, match="NUL"):
        await r(qc.jobs.list(args_contain=["\x00"]))


async def test_behind_pgbouncer(side: Side, bouncer_url: str, db_url: str, conn: Conn) -> None:
    """Transaction pooling: every action is one transaction with transaction-level
    locks, so it works through PgBouncer and still sees a direct session's lock."""
    async with side.client(bouncer_url, pgbouncer=True, max_connections=4) as bc:
        target, other = await r(bc.enqueue_many([que.Job(type="T"), que.Job(type="T")]))
        fail(conn, other.id)
        with session_lock(db_url, target.id):
            assert [rec.id for rec in await r(bc.jobs.list(state="locked"))] == [target.id]
            with pytest.raises(que.JobLockedError):
                await r(bc.jobs.retry(target.id))
            with pytest.raises(que.JobLockedError):
                await r(bc.jobs.delete(target.id, wait=0.1))
            assert await r(bc.jobs.cancel(target.id)) == "requested"
            assert await r(bc.jobs.retry_failed()) == 1
        assert (await r(bc.jobs.set_priority(target.id, 1))).priority == 1
        assert await r(bc.jobs.cancel(other.id)) == "removed"
        assert (await r(bc.dead.retry(other.id))).error_count == 0
        assert await r(bc.jobs.delete(target.id, wait=5)) is True
