"""The batched engine on both faces: BatchWorker (threads) and AsyncBatchWorker (tasks).

Batch claims, batched finishing, LISTEN/NOTIFY wake-ups, shutdown and
failures. Every test takes ``side`` and runs against both engines; work
functions are written once as ``async def`` and adapted by ``side.handler``;
the counting tests give each face a native function (``Executions``), and
tests that need a plain sync function on both faces say so. Engines are
made by the ``engines`` fixture, which shuts each one down at the end and
checks that it finished in time; the database fixtures then check that no
advisory lock is left.

A few behaviours exist on one face only; those tests are marked ASYNC_ONLY
or SYNC_ONLY with the reason. The claim statements and the notify trigger,
which both faces share and which have no face of their own, are tested once
at the end on plain connections.
"""

import asyncio
import contextvars
import logging
import re
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

import que
from que import sql
from que._engine_base import RECHECK_ID, WindowEnd, claim_params, window_end
from que._jobs import parse_id_array
from que.job import job_from_values
from que.schema import install_notify, notify_installed, uninstall_notify

from ..helpers import Executions, advisory_lock_count, held_locks, refuse_deletes, sequence_used
from ..sides import AnyClient, Side, r, wait_event, wait_until

WAIT = 60.0  # the longest any condition below is polled for

ASYNC_ONLY = pytest.mark.parametrize("side", ["async"], indirect=True)
SYNC_ONLY = pytest.mark.parametrize("side", ["sync"], indirect=True)

# A work function as an ``async def`` adapted by side.handler, or a plain def on both faces.
KINDS = ("async-def", "sync-def")


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def remaining(conn: psycopg.Connection[Any]) -> int:
    return int(scalar(conn, "SELECT count(*) FROM que_jobs"))


def errored(conn: psycopg.Connection[Any]) -> int:
    return int(scalar(conn, "SELECT count(*) FROM que_jobs WHERE error_count = 1"))


def listeners(conn: psycopg.Connection[Any]) -> int:
    """Sessions of the test's database that are listening for new jobs."""
    return int(
        scalar(
            conn,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query = %s",
            [sql.LISTEN],
        )
    )


async def eventually(condition: Callable[[], bool], what: str) -> None:
    await wait_until(condition, WAIT, what)


async def execute_in_job_tx(side: Side, job: Any, query: str, params: Any = None) -> None:
    """Run a statement in the job's own transaction, as each face spells it."""
    if side.is_async:
        tx = await job.transaction()
        await tx.execute(query, params)
    else:
        job.tx.execute(query, params)


@pytest.fixture
async def engines(side: Side, qc: AnyClient) -> AsyncIterator[Callable[..., Any]]:
    """Makes engines of the side on ``qc``; shuts each down at the end, in time."""
    made: list[Any] = []

    def make(work_map: dict[str, Any], **options: Any) -> Any:
        options.setdefault("interval", 0.05)
        engine = side.batch_worker(qc, work_map, **options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        assert await side.stop_engine(engine, 30)


# -- both faces ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concurrency", "buffer"), [(4, 4), (20, None)], ids=["buffer-4", "buffer-sized"]
)
async def test_works_every_job_exactly_once(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    concurrency: int,
    buffer: int | None,
) -> None:
    runs = Executions()
    jobs = await r(qc.enqueue_many([que.Job(type="Count", args=[i]) for i in range(3000)]))
    engine = engines({"Count": runs.work_function(side)}, concurrency=concurrency, buffer=buffer)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert set(runs.counts) == {j.id for j in jobs}
    assert len(runs.counts) == 3000 and set(runs.counts.values()) == {1}
    assert advisory_lock_count(db_url) == 0


async def test_failures_are_recorded_in_batches(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    async def fail(job: Any) -> None:
        raise ValueError(f"bad input {job.args[0]}")

    await r(qc.enqueue_many([que.Job(type="Fail", args=[i]) for i in range(20)]))
    await r(qc.enqueue(que.Job(type="Unknown")))
    engine = engines({"Fail": side.handler(fail)}, concurrency=2)
    side.start_engine(engine)
    await eventually(lambda: errored(conn) == remaining(conn) == 21, "every failure recorded")
    assert await side.stop_engine(engine)
    rows = conn.execute(
        "SELECT job_class, args, error_count, last_error, "
        "extract(epoch FROM run_at - now())::float FROM que_jobs ORDER BY job_id"
    ).fetchall()
    assert len(rows) == 21
    for job_class, args, errors, last_error, delay in rows[:20]:
        assert (job_class, errors) == ("Fail", 1)
        assert f"ValueError: bad input {args[0]}" in last_error and "Traceback" in last_error
        assert 2 < delay <= 4  # the first retry comes 1**4 + 3 seconds later
    assert rows[20][2] == 1
    assert rows[20][3] == 'unknown job type: "Unknown"'  # as Go's qg writes it


async def test_failing_job_is_recorded_and_the_rest_of_its_batch_deleted(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    # Ten places and no buffer: one claim takes all ten jobs, and each waits
    # until all ten are running, so their outcomes are written together.
    entered: list[int] = []

    async def mixed(job: Any) -> None:
        entered.append(job.id)
        await wait_until(lambda: len(entered) == 10, WAIT, "the whole batch running")
        if job.args[0] == 3:
            raise ValueError("bad input 3")

    jobs = await r(qc.enqueue_many([que.Job(type="Mixed", args=[i]) for i in range(10)]))
    engine = engines({"Mixed": side.handler(mixed)}, concurrency=10, buffer=0)
    side.start_engine(engine)
    await eventually(
        lambda: remaining(conn) == 1 and errored(conn) == 1, "nine deleted, one failed"
    )
    assert await side.stop_engine(engine)
    assert sorted(entered) == sorted(job.id for job in jobs)
    rows = conn.execute("SELECT job_id, args, error_count, last_error FROM que_jobs").fetchall()
    assert len(rows) == 1
    job_id, args, error_count, last_error = rows[0]
    assert (job_id, args, error_count) == (jobs[3].id, [3], 1)
    assert "ValueError: bad input 3" in last_error and "Traceback" in last_error


async def test_job_transaction_commits_with_its_delete(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    async def effect(job: Any) -> None:
        await execute_in_job_tx(side, job, "INSERT INTO effects VALUES (%s)", [job.args[0]])
        if job.args[0] % 2:
            raise RuntimeError("odd")

    await r(qc.enqueue_many([que.Job(type="E", args=[i]) for i in range(10)]))
    await r(qc.enqueue(que.Job(type="Nobody")))
    engine = engines({"E": side.handler(effect)}, concurrency=3)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 6, "the even jobs deleted")
    await eventually(lambda: errored(conn) == 6, "the odd and unknown jobs failed")
    assert await side.stop_engine(engine)
    assert remaining(conn) == 6
    assert sorted(row[0] for row in conn.execute("SELECT n FROM effects").fetchall()) == [
        0,
        2,
        4,
        6,
        8,
    ]
    odd = conn.execute("SELECT args->>0 FROM que_jobs WHERE job_class = 'E' ORDER BY 1").fetchall()
    assert [int(row[0]) for row in odd] == [1, 3, 5, 7, 9]
    errors = [
        row[0] for row in conn.execute("SELECT last_error FROM que_jobs ORDER BY job_id").fetchall()
    ]
    assert all("RuntimeError: odd" in e for e in errors[:5])
    assert "unknown job type" in errors[5]


async def test_job_writes_through_its_transaction_and_commits_with_its_delete(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    # A trigger notes the transaction that deletes each job, and the work function
    # notes the one it writes in: the two must be the same, not merely both done.
    conn.execute("CREATE TABLE effects (job_id bigint, xact bigint)")
    conn.execute("CREATE TABLE deletes (job_id bigint, xact bigint)")
    conn.execute(
        "CREATE FUNCTION note_delete() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN INSERT INTO deletes VALUES (OLD.job_id, txid_current()); RETURN OLD; END $$"
    )
    conn.execute(
        "CREATE TRIGGER note_delete AFTER DELETE ON que_jobs "
        "FOR EACH ROW EXECUTE FUNCTION note_delete()"
    )

    async def write(job: Any) -> None:
        await execute_in_job_tx(
            side, job, "INSERT INTO effects VALUES (%s, txid_current())", [job.id]
        )

    jobs = await r(qc.enqueue_many([que.Job(type="Write", args=[i]) for i in range(3)]))
    engine = engines({"Write": side.handler(write)}, concurrency=2)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "every job deleted")
    assert await side.stop_engine(engine)
    written = conn.execute(
        "SELECT e.job_id, e.xact = d.xact FROM effects e JOIN deletes d USING (job_id) "
        "ORDER BY e.job_id"
    ).fetchall()
    assert written == [(job.id, True) for job in sorted(jobs, key=lambda job: job.id)]
    assert scalar(conn, "SELECT count(*) FROM effects") == 3


@pytest.mark.parametrize("synchronous", [True, False], ids=["synchronous", "asynchronous"])
async def test_synchronous_commit_option_applies_to_the_job_transaction_only(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, synchronous: bool
) -> None:
    # A trigger notes the setting in force where each job is deleted: in the
    # job's own transaction for a job that opens one, in the locker's batch
    # otherwise. Only the job's own transaction follows the option.
    conn.execute("CREATE TABLE deletes (kind text, setting text)")
    conn.execute(
        "CREATE FUNCTION note_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "INSERT INTO deletes VALUES (OLD.args->>0, current_setting('synchronous_commit')); "
        "RETURN OLD; END $$"
    )
    conn.execute(
        "CREATE TRIGGER note_delete AFTER DELETE ON que_jobs "
        "FOR EACH ROW EXECUTE FUNCTION note_delete()"
    )

    async def work(job: Any) -> None:
        if job.args[0] == "tx":
            await execute_in_job_tx(side, job, "SELECT 1", [])

    await r(qc.enqueue_many([que.Job(type="W", args=[kind]) for kind in ("tx", "plain") * 3]))
    engine = engines({"W": side.handler(work)}, concurrency=2, synchronous_commit=synchronous)
    assert engine.synchronous_commit is synchronous
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "every job deleted")
    assert await side.stop_engine(engine)
    noted = conn.execute("SELECT kind, setting FROM deletes ORDER BY kind").fetchall()
    job_tx = "on" if synchronous else "off"
    assert noted == [("plain", "on")] * 3 + [("tx", job_tx)] * 3


async def test_engine_job_borrows_a_connection_when_it_asks_for_one(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    # The async face's job once had no way to reach a connection outside a
    # transaction; both faces now lend one through connection().
    seen: list[Any] = []
    held: list[bool] = []

    async def use(job: Any) -> None:
        if side.is_async:
            with pytest.raises(que.QueError, match=r"await job\.connection\(\)"):
                _ = job.conn  # a property cannot await the pool
        own = await r(job.connection())
        held.append(job.conn is own and await r(job.connection()) is own)
        cur = await r(own.execute("SELECT %s::int AS n", [job.args[0]]))
        seen.append(await r(cur.fetchone()))

    await r(qc.enqueue_many([que.Job(type="Use", args=[n]) for n in (7, 8)]))
    engine = engines({"Use": side.handler(use)}, concurrency=2)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "both jobs deleted")
    assert sorted(row["n"] for row in seen) == [7, 8]
    assert held == [True, True]


async def test_due_job_behind_ten_thousand_held_jobs_is_claimed(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Other sessions (Ruby or Go workers, other engines) hold the first 10,000
    # due jobs; the engine must walk past all of them to the one that is free.
    conn.execute(
        "INSERT INTO que_jobs (job_class, priority) "
        "SELECT 'Held', 10 FROM generate_series(1, 10000)"
    )
    conn.execute("ANALYZE que_jobs")
    behind = await r(qc.enqueue(que.Job(type="Free", priority=50)))
    worked: list[int] = []

    async def free(job: Any) -> None:
        worked.append(job.id)

    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT count(pg_advisory_lock(job_id)) FROM que_jobs WHERE priority = 10")
        engine = engines({"Free": side.handler(free)}, concurrency=4)
        with caplog.at_level(logging.DEBUG, logger=type(engine).__module__):
            side.start_engine(engine)
            await eventually(lambda: worked == [behind.id], "the free job worked")
            assert await side.stop_engine(engine)
        holder.execute("SELECT pg_advisory_unlock_all()")
    claims = [
        float(match.group(1))
        for record in caplog.records
        if (match := re.search(r"claimed 1 of \d+ wanted in ([0-9.]+) ms", record.getMessage()))
    ]
    assert claims, "the claim that found the free job was logged at DEBUG"
    print(f"\nclaim past 10,000 held jobs ({side.name}): {claims[0]:.1f} ms")
    assert remaining(conn) == 10000


async def test_engine_larger_than_a_default_client_works(
    side: Side, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    """30 jobs each holding a transaction at once, on a default client of 10
    connections: the client's pool grows to what the engine needs."""
    inside: list[int] = []
    release = threading.Event()

    async def write(job: Any) -> None:
        await execute_in_job_tx(side, job, "SELECT 1")
        inside.append(job.id)
        while not release.is_set():
            await asyncio.sleep(0.01)

    async with side.client(db_url) as client:
        await r(client.enqueue_many([que.Job(type="Write") for _ in range(30)]))
        engine = side.batch_worker(
            client, {"Write": side.handler(write)}, concurrency=30, interval=0.05
        )
        side.start_engine(engine)
        try:
            await eventually(lambda: len(inside) == 30, "30 transactions open at once")
            assert client.max_connections >= 32
        finally:
            release.set()
        await eventually(lambda: remaining(conn) == 0, "every job deleted")
        assert await side.stop_engine(engine, 30)


async def test_job_that_records_its_own_error_is_not_counted_twice(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    async def own_error(job: Any) -> None:
        await r(job.error("handled it myself", retry_in=600))

    await r(qc.enqueue(que.Job(type="Own")))
    engine = engines({"Own": side.handler(own_error)}, concurrency=1)
    side.start_engine(engine)
    await eventually(
        lambda: conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,),
        "the job's own error recorded",
    )
    assert await side.stop_engine(engine)
    assert conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone() == (
        1,
        "handled it myself",
    )


async def test_running_counts_running_jobs_and_is_read_only(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    entered: list[int] = []
    release = threading.Event()

    async def block(job: Any) -> None:
        entered.append(job.id)
        await wait_event(release, 30)

    await r(qc.enqueue_many([que.Job(type="Block") for _ in range(2)]))
    engine = engines({"Block": side.handler(block)}, concurrency=3)
    assert engine.running == 0
    side.start_engine(engine)
    try:
        await eventually(lambda: len(entered) == 2, "both jobs running")
        assert engine.running == 2
    finally:
        release.set()
    await eventually(lambda: remaining(conn) == 0, "both jobs deleted")
    await eventually(lambda: engine.running == 0, "no job running")
    with pytest.raises(AttributeError):
        engine.running = 5  # a count the engine keeps, not a setting
    assert engine.running == 0


async def test_engine_beside_the_one_job_path_never_shares_a_job(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, db_url: str
) -> None:
    runs = Executions()
    await r(qc.enqueue_many([que.Job(type="Count", args=[i]) for i in range(3000)]))
    engine = engines({"Count": runs.work_function(side)}, concurrency=3, buffer=3)
    pool = side.worker_pool(qc, {"Count": runs.work_function(side)}, 3, interval=0.05)
    side.start_engine(engine)
    pool.start()
    try:
        await eventually(lambda: remaining(conn) == 0, "every job worked")
    finally:
        assert await side.call(pool.shutdown, 30)
    assert await side.stop_engine(engine)
    assert len(runs.counts) == 3000 and set(runs.counts.values()) == {1}
    assert advisory_lock_count(db_url) == 0


async def test_notify_wakes_an_idle_engine(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    install_notify(conn)
    done = threading.Event()

    async def wake(job: Any) -> None:
        done.set()

    engine = engines({"Wake": side.handler(wake)}, concurrency=1, interval=600)
    side.start_engine(engine)
    await eventually(lambda: listeners(conn) == 1, "the engine listening")
    await r(qc.enqueue(que.Job(type="Wake")))
    # With a 600 s poll interval only the notification can wake it this soon.
    assert await wait_event(done, WAIT)


async def test_future_job_is_claimed_when_due_without_polling(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    install_notify(conn)
    done = threading.Event()
    started: list[datetime] = []

    async def record(job: Any) -> None:
        started.append(datetime.now(timezone.utc))
        done.set()

    engine = engines({"Later": side.handler(record)}, concurrency=1, interval=600)
    side.start_engine(engine)
    await eventually(lambda: listeners(conn) == 1, "the engine listening")
    job = await r(
        qc.enqueue(que.Job(type="Later", run_at=datetime.now(timezone.utc) + timedelta(seconds=1)))
    )
    assert await wait_event(done, WAIT)
    assert job.run_at is not None and started[0] >= job.run_at


async def test_shutdown_hands_back_jobs_not_started(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, db_url: str
) -> None:
    running = threading.Event()
    release = threading.Event()

    async def slow(job: Any) -> None:
        running.set()
        await wait_event(release, 30)

    await r(qc.enqueue_many([que.Job(type="Slow") for _ in range(5)]))
    engine = engines({"Slow": side.handler(slow)}, concurrency=1, buffer=4)
    side.start_engine(engine)
    try:
        assert await wait_event(running, 30)
        await eventually(lambda: advisory_lock_count(db_url) == 5, "one job running, four buffered")
        stopping = asyncio.create_task(side.stop_engine(engine, 30))
        await eventually(lambda: advisory_lock_count(db_url) == 1, "the four handed back")
    finally:
        release.set()
    assert await stopping
    assert remaining(conn) == 4
    assert advisory_lock_count(db_url) == 0


@pytest.mark.parametrize("kind", KINDS)
async def test_interrupting_work_function_gives_its_job_back(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, kind: str
) -> None:
    calls: list[int] = []

    async def interrupt_once(job: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    def interrupt_once_sync(job: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    func = side.handler(interrupt_once) if kind == "async-def" else interrupt_once_sync
    await r(qc.enqueue(que.Job(type="K")))
    engine = engines({"K": func}, concurrency=1)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "the job worked")
    assert len(calls) == 2  # given back untouched, then worked again by the same worker


async def test_terminated_locker_session_loses_no_job(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, db_url: str
) -> None:
    runs = Executions()
    await r(qc.enqueue_many([que.Job(type="Count", args=[i]) for i in range(2000)]))
    engine = engines({"Count": runs.work_function(side)}, concurrency=2, buffer=2)
    side.start_engine(engine)
    await eventually(lambda: len(runs.counts) > 200, "some jobs worked")
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert len(runs.counts) == 2000  # every job ran; a few may have run twice (at least once)
    assert advisory_lock_count(db_url) == 0


async def test_failing_writes_keep_the_locks_and_claim_nothing_more(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, db_url: str
) -> None:
    # Dropping the locker's session would unlock the job still running and the
    # finished ones; claiming on would hand out jobs that cannot be finished,
    # more each retry.
    refusals = refuse_deletes(conn)
    runs = Executions()
    release = threading.Event()

    async def work(job: Any) -> None:
        runs.record(job)
        if job.args[0] == 0:  # claimed first (priority 1), runs until released
            assert await wait_event(release, WAIT)

    slow = await r(qc.enqueue(que.Job(type="W", args=[0], priority=1)))
    rest = await r(qc.enqueue_many([que.Job(type="W", args=[n]) for n in range(1, 40)]))
    # Four places: the first turn claims four, the one whose writes fail first
    # at most four more; a turn claiming after that would make it ten.
    engine = engines({"W": side.handler(work)}, concurrency=2, buffer=2)
    side.start_engine(engine)
    try:
        await eventually(lambda: refusals() >= 3, "three refused writes")
        ran = set(runs.counts)
        assert slow.id in ran
        assert len(ran) <= 8
        assert ran <= set(held_locks(conn))  # running or finished, all still locked
        await eventually(lambda: refusals() >= 4, "one more refused write")
        assert set(runs.counts) == ran  # nothing claimed while the writes fail
        assert ran <= set(held_locks(conn))
    finally:  # also when an assertion failed, so that the engine can stop
        conn.execute("DELETE FROM refuse_deletes")
        release.set()
    await eventually(lambda: remaining(conn) == 0, "every job worked once the deletes go through")
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({job.id: 1 for job in [slow, *rest]})
    assert advisory_lock_count(db_url) == 0


async def test_writes_failing_for_long_give_their_jobs_up(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # After _WRITE_TRIES failed writes in a row the locker stops holding those
    # jobs: its session goes with their locks, the jobs run again, and it claims
    # again instead of holding everything for ever.
    refusals = refuse_deletes(conn)
    runs = Executions()
    jobs = await r(qc.enqueue_many([que.Job(type="W", args=[n]) for n in range(20)]))
    engine = engines({"W": runs.work_function(side)}, concurrency=2, buffer=2)
    engine._WRITE_TRIES = 2  # not the half minute of the default
    with caplog.at_level(logging.ERROR, logger=type(engine).__module__):
        side.start_engine(engine)
        try:
            await eventually(lambda: max(runs.counts.values(), default=0) >= 2, "a job run again")
            assert refusals() >= 2
        finally:
            conn.execute("DELETE FROM refuse_deletes")
        await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert set(runs.counts) == {job.id for job in jobs}
    assert any(
        "could not be written in 2 tries; their locks are released" in record.getMessage()
        for record in caplog.records
    )
    assert advisory_lock_count(db_url) == 0


def refuse_rechecks(
    conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[[], int]:
    """Make the engine's re-check after its first claim fail while refuse_rechecks
    has a row (the claim has taken its locks by then); returns how many it refused."""
    conn.execute("CREATE TABLE refuse_rechecks (reason text)")
    conn.execute("CREATE SEQUENCE recheck_refusals")
    gate = (
        "(SELECT 1 / (SELECT CASE WHEN count(*) = 0 THEN 1 "
        "ELSE 0 * nextval('recheck_refusals') END FROM refuse_rechecks) AS ok) AS gate, unnest("
    )
    assert sql.RECHECK_NOTED.count("FROM unnest(") == 1
    monkeypatch.setattr(
        sql, "RECHECK_NOTED", sql.RECHECK_NOTED.replace("FROM unnest(", "FROM " + gate)
    )
    return lambda: sequence_used(conn, "recheck_refusals")


# Job ids past 2**32 + 2**31: a bigint lock key's high half is in pg_locks.classid
# and its low half, here with the top bit set, in objid.
HIGH_IDS = 2**32 + 2**31


def start_ids_at(conn: psycopg.Connection[Any], first: int) -> None:
    conn.execute("SELECT setval(pg_get_serial_sequence('que_jobs', 'job_id'), %s, false)", [first])


@pytest.mark.parametrize("first_id", [1, HIGH_IDS], ids=["ids", "high-ids"])
async def test_failed_claim_keeps_the_running_job_locked_and_leaves_no_lock(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    first_id: int,
) -> None:
    # The re-check after the claim fails while refuse_rechecks has a row: the
    # claim has taken its locks by then, and the book knows none of them. The
    # locker keeps its session (the running job's lock with it) and unlocks
    # those strays; dropping the session would free the running job, and
    # keeping it without that would leave the strays locked. A job finishing
    # meanwhile is still deleted: a failed turn makes the next one write first.
    refusals = refuse_rechecks(conn, monkeypatch)
    runs = Executions()
    release = {n: threading.Event() for n in (0, 1)}

    async def work(job: Any) -> None:
        runs.record(job)
        if job.args[0] in release:
            assert await wait_event(release[job.args[0]], WAIT)

    start_ids_at(conn, first_id)
    slow, second = await r(qc.enqueue_many([que.Job(type="W", args=[n]) for n in (0, 1)]))
    assert slow.id == first_id
    engine = engines({"W": side.handler(work)}, concurrency=2, buffer=0)
    engine._WRITE_TRIES = 2  # claims failing are not writes failing: never reached
    side.start_engine(engine)
    try:
        await eventually(lambda: set(runs.counts) == {slow.id, second.id}, "both running")
        conn.execute("INSERT INTO refuse_rechecks VALUES ('test')")
        rest = await r(qc.enqueue_many([que.Job(type="W", args=[n]) for n in range(2, 22)]))
        release[1].set()
        await eventually(lambda: refusals() >= 2, "refused claims")
        await eventually(
            lambda: (
                scalar(conn, "SELECT count(*) FROM que_jobs WHERE job_id = %s", [second.id]) == 0
            ),
            "the finished job deleted while claims fail",
        )
        refused = refusals()
        await eventually(lambda: refusals() >= refused + 2, "more refused claims")
        await eventually(lambda: set(held_locks(conn)) == {slow.id}, "only the slow job locked")
        assert set(runs.counts) == {slow.id, second.id}
    finally:
        conn.execute("DELETE FROM refuse_rechecks")
        release[0].set()
        release[1].set()
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({job.id: 1 for job in [slow, second, *rest]})
    assert advisory_lock_count(db_url) == 0


async def test_failed_claim_of_a_second_queue_unlocks_what_it_locked(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An engine of two queues claims from the second after a short first claim
    # (_claim_more). That claim fails right after locking its first row while
    # refuse_claims has a row (session locks outlive the failed statement),
    # so the book never learns of that lock: the locker unlocks it and keeps
    # the running job's lock. The first claim of a turn is not refused, so
    # every job is still worked, on the turns that claim from "b" first.
    conn.execute("CREATE TABLE refuse_claims (reason text)")
    conn.execute("CREATE SEQUENCE claim_refusals")
    # A correlated subquery costs more than the lock call, so it runs after it.
    gate = (
        "WHERE pg_try_advisory_lock(due.job_id) AND (SELECT 1 / CASE WHEN count(*) = 0 "
        "THEN 1 ELSE 0 * nextval('claim_refusals') END FROM refuse_claims "
        "WHERE due.job_id IS NOT NULL) = 1"
    )
    assert sql.LOCK_JOBS.count("WHERE pg_try_advisory_lock(due.job_id)") == 1
    monkeypatch.setattr(
        sql, "LOCK_JOBS", sql.LOCK_JOBS.replace("WHERE pg_try_advisory_lock(due.job_id)", gate)
    )
    runs = Executions()
    release = threading.Event()

    async def work(job: Any) -> None:
        runs.record(job)
        if job.queue == "a":
            assert await wait_event(release, WAIT)

    slow = await r(qc.enqueue(que.Job(type="W", queue="a")))
    engine = engines({"W": side.handler(work)}, concurrency=4, buffer=0, queue=["a", "b"])
    side.start_engine(engine)
    try:
        await eventually(lambda: set(runs.counts) == {slow.id}, "the slow job running")
        conn.execute("INSERT INTO refuse_claims VALUES ('test')")
        rest = await r(qc.enqueue_many([que.Job(type="W", queue="b") for _ in range(12)]))
        await eventually(lambda: remaining(conn) == 1, "the second queue's jobs worked")
        assert sequence_used(conn, "claim_refusals") >= 2
        await eventually(lambda: set(held_locks(conn)) == {slow.id}, "only the slow job locked")
    finally:
        conn.execute("DELETE FROM refuse_claims")
        release.set()
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({job.id: 1 for job in [slow, *rest]})
    assert advisory_lock_count(db_url) == 0


def break_job_building(
    engine: Any, monkeypatch: pytest.MonkeyPatch, fails: Callable[[int], bool]
) -> None:
    """Make the engine's hand-out raise, as a bug would, at each job whose id
    ``fails`` accepts (asked once per job built)."""
    module = sys.modules[type(engine).__module__]
    build = module.job_from_values

    def building(cls: Any, values: Any) -> Any:
        if fails(values[RECHECK_ID]):
            raise RuntimeError("this job cannot be built")
        return build(cls, values)

    monkeypatch.setattr(module, "job_from_values", building)


async def test_hand_out_failing_part_way_unlocks_the_jobs_not_handed_out(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The third job the engine builds after `armed` is set cannot be built (an
    # error the engine does not expect). The jobs of that batch handed out
    # before it run; the rest were locked but never reached the book, so the
    # locker unlocks them (its own locks would not keep its next claim from
    # locking them again), keeps the running job's lock, and claims them again.
    runs = Executions()
    release = threading.Event()

    async def work(job: Any) -> None:
        runs.record(job)
        if job.args == ["slow"]:
            assert await wait_event(release, WAIT)

    slow = await r(qc.enqueue(que.Job(type="W", args=["slow"])))
    engine = engines({"W": side.handler(work)}, concurrency=6, buffer=0)
    armed = threading.Event()
    built: list[int] = []

    def third_once_armed(job_id: int) -> bool:
        if not armed.is_set():
            return False
        built.append(job_id)
        if len(built) < 3:
            return False
        armed.clear()
        return True

    break_job_building(engine, monkeypatch, third_once_armed)
    side.start_engine(engine)
    try:
        await eventually(lambda: set(runs.counts) == {slow.id}, "the slow job running")
        armed.set()
        rest = await r(qc.enqueue_many([que.Job(type="W") for _ in range(5)]))
        await eventually(lambda: remaining(conn) == 1, "the other jobs worked")
        assert not armed.is_set() and len(built) >= 3
        await eventually(lambda: set(held_locks(conn)) == {slow.id}, "only the slow job locked")
    finally:
        release.set()
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({job.id: 1 for job in [slow, *rest]})
    assert advisory_lock_count(db_url) == 0


async def test_hand_out_failing_turn_after_turn_keeps_the_running_jobs_locks(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # While `armed` is set no job can be built, and no turn has anything to
    # write (the only other job is still running). Those failures are the
    # hand-out's, not failed writes: however many there are, the locker keeps
    # its session, and with it the running job's lock.
    runs = Executions()
    release = threading.Event()

    async def work(job: Any) -> None:
        runs.record(job)
        if job.args == ["slow"]:
            assert await wait_event(release, WAIT)

    slow = await r(qc.enqueue(que.Job(type="W", args=["slow"])))
    engine = engines({"W": side.handler(work)}, concurrency=2, buffer=0)
    engine._WRITE_TRIES = 2  # were they counted, the second would drop the session
    armed = threading.Event()
    refused: list[int] = []

    def every_one_armed(job_id: int) -> bool:
        refuse = armed.is_set()
        if refuse:
            refused.append(job_id)
        return refuse

    break_job_building(engine, monkeypatch, every_one_armed)
    side.start_engine(engine)
    try:
        await eventually(lambda: set(runs.counts) == {slow.id}, "the slow job running")
        session = engine._book.generation
        armed.set()
        other = await r(qc.enqueue(que.Job(type="W")))
        await eventually(lambda: len(refused) >= 3, "three turns failing to hand out")
        armed.clear()
        await eventually(lambda: remaining(conn) == 1, "the other job worked")
        assert engine._book.generation == session  # the session was never dropped
        assert set(held_locks(conn)) == {slow.id}
    finally:
        armed.clear()
        release.set()
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({slow.id: 1, other.id: 1})
    assert advisory_lock_count(db_url) == 0


async def test_unexpected_error_while_keeping_the_session_drops_it_and_claims_on(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After a failed turn (the re-check refused while refuse_rechecks has a
    # row) the locker reads its session's locks to keep the session; here
    # that read returns what cannot be parsed. The locker must drop the
    # session and go on claiming, not stop.
    refusals = refuse_rechecks(conn, monkeypatch)
    conn.execute("INSERT INTO refuse_rechecks VALUES ('test')")
    monkeypatch.setattr(sql, "SESSION_JOB_LOCKS", "SELECT '{not an id}'::text AS ids")
    runs = Executions()
    engine = engines({"W": runs.work_function(side)}, concurrency=2)
    side.start_engine(engine)
    job = await r(qc.enqueue(que.Job(type="W")))
    await eventually(lambda: refusals() >= 2, "refused claims")
    conn.execute("DELETE FROM refuse_rechecks")
    await eventually(lambda: remaining(conn) == 0, "the job worked")
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({job.id: 1})
    assert advisory_lock_count(db_url) == 0


async def test_jobs_claimed_on_a_lost_session_are_not_started(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, db_url: str
) -> None:
    # Jobs wait in the engine's queue behind a running one when the locker's
    # session is cut: their locks are gone, and another worker takes them. The
    # engine must not start them too; it claims them again once they are free.
    runs = Executions()
    release = threading.Event()

    async def work(job: Any) -> None:
        runs.record(job)
        if job.args[0] == 0:
            assert await wait_event(release, WAIT)

    first = await r(qc.enqueue(que.Job(type="W", args=[0], priority=1)))
    queued = await r(qc.enqueue_many([que.Job(type="W", args=[n]) for n in range(1, 6)]))
    engine = engines({"W": side.handler(work)}, concurrency=1, buffer=5)
    side.start_engine(engine)
    other = que.Client(db_url)
    try:
        await eventually(lambda: first.id in runs.counts, "the first job running")
        await eventually(
            lambda: {job.id for job in queued} <= set(held_locks(conn)), "the rest claimed"
        )
        lost = engine._book.generation  # the session about to be cut
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await eventually(lambda: not set(held_locks(conn)), "the session's locks gone")
        # Once the locker knows (it drops the session at its next statement):
        await eventually(lambda: engine._book.generation > lost, "a new locker session")
        # Another worker takes them all (the running one too: its lock went as well).
        held = [other.lock_job() for _ in range(6)]
        assert sorted(job.id for job in held if job) == sorted(job.id for job in [first, *queued])
        release.set()
        await eventually(lambda: remaining(conn) == 6 - 1, "the first job deleted")
        await asyncio.sleep(0.5)
        assert set(runs.counts) == {first.id}  # none of those held elsewhere started here
        for job in held:
            if job:
                job.done()  # given back unworked
        await eventually(lambda: remaining(conn) == 0, "every job worked")
    finally:
        release.set()
        other.close()
    assert await side.stop_engine(engine)
    assert runs.counts == Counter({job.id: 1 for job in [first, *queued]})


async def test_job_past_its_timeout_is_reported(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A plain sync function on both faces: the async face runs it in a thread,
    # and a thread cannot be stopped there either, so it is reported the same way.
    release = threading.Event()
    overdue: list[tuple[int | None, float]] = []

    def hang(job: Any) -> None:
        release.wait(30)

    await r(qc.enqueue(que.Job(type="Hang")))
    engine = engines(
        {"Hang": hang},
        concurrency=1,
        timeouts={"Hang": 0.2},
        on_overdue=lambda job, ran, limit: overdue.append((job.id, limit)),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="que.worker"):
            side.start_engine(engine)
            await eventually(lambda: engine.overdue_total == 1, "the job reported overdue")
        assert "past its timeout of 0.2s" in caplog.text
        assert len(overdue) == 1 and overdue[0][1] == 0.2
    finally:
        release.set()  # a thread cannot be stopped: the job finishes normally
    await eventually(lambda: remaining(conn) == 0, "the job finished")


async def test_engine_refuses_a_client_of_the_other_side(side: Side, db_url: str) -> None:
    other = Side("sync" if side.is_async else "async")
    wanted = "que.AsyncClient" if side.is_async else "que.Client"
    async with other.client(db_url) as wrong:
        with pytest.raises(TypeError, match=re.escape(f"needs a {wanted}, not")):
            side.batch_worker_class(wrong, {})


# -- one face only ----------------------------------------------------------------


@ASYNC_ONLY  # the sync face runs every work function in a thread, and refuses async ones
async def test_async_engine_runs_sync_functions_in_threads(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []

    def blocking(job: Any) -> None:
        threads.append(threading.get_ident())

    await r(qc.enqueue_many([que.Job(type="B") for _ in range(5)]))
    engine = engines({"B": blocking}, concurrency=2)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert len(threads) == 5 and loop_thread not in threads


@ASYNC_ONLY  # only a coroutine can be cancelled; threads: test_job_past_its_timeout_is_reported
async def test_async_job_past_its_timeout_is_cancelled_and_retried(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any, db_url: str
) -> None:
    cancelled = asyncio.Event()

    async def hang(job: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await r(qc.enqueue(que.Job(type="Hang")))
    engine = engines({"Hang": hang}, concurrency=1, timeout=0.2)
    side.start_engine(engine)
    await eventually(
        lambda: conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,),
        "the timeout recorded as an error",
    )
    assert await side.stop_engine(engine)
    assert cancelled.is_set()
    row = conn.execute(
        "SELECT last_error, extract(epoch FROM run_at - now())::float FROM que_jobs"
    ).fetchone()
    assert row is not None
    assert "JobTimeoutError: job Hang id=" in row[0] and "timeout of 0.2s" in row[0]
    assert 2 < row[1] <= 4  # retried after the backoff
    assert advisory_lock_count(db_url) == 0


JOB_MARK: contextvars.ContextVar[str] = contextvars.ContextVar("job_mark", default="unset")


@ASYNC_ONLY  # a thread starts with a context of its own, not start()'s
async def test_each_async_job_starts_in_the_context_the_engine_started_in(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    """A job's task is started as the one before it ends; what that job set in
    its context must not reach the next."""
    seen: list[tuple[int, str]] = []

    async def marks(job: Any) -> None:
        seen.append((job.args[0], JOB_MARK.get()))
        JOB_MARK.set(f"left by job {job.args[0]}")

    await r(qc.enqueue_many([que.Job(type="Mark", args=[n]) for n in range(6)]))
    engine = engines({"Mark": marks}, concurrency=1, buffer=5)
    token = JOB_MARK.set("from start")
    try:
        side.start_engine(engine)
    finally:
        JOB_MARK.reset(token)
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert sorted(seen) == [(n, "from start") for n in range(6)]


@ASYNC_ONLY  # a thread is never cancelled: it looks at job.cancelled itself
async def test_async_job_cancelled_while_it_waits_for_a_place_never_starts(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    release = asyncio.Event()
    entered: list[str] = []

    async def blocks(job: Any) -> None:
        entered.append(job.type)
        await release.wait()

    first = await r(qc.enqueue(que.Job(type="Block")))
    waiting = await r(qc.enqueue(que.Job(type="Waits", run_at=first.run_at)))
    engine = engines({"Block": blocks, "Waits": blocks}, concurrency=1, buffer=1)
    side.start_engine(engine)
    await eventually(lambda: entered == ["Block"], "the first job started")
    watched = engine._cancel_watch._handles
    await eventually(lambda: waiting.id in watched, "the second job claimed, waiting")
    conn.execute(sql.REQUEST_CANCEL, {"job_id": waiting.id})
    handle = watched[waiting.id]
    await eventually(lambda: handle.cancelled, "the request seen")
    release.set()
    await eventually(lambda: remaining(conn) == 0, "both jobs finished")
    assert entered == ["Block"]
    dead = conn.execute("SELECT job_id, outcome FROM que_dead_jobs").fetchall()
    assert dead == [(waiting.id, "cancelled")]


@ASYNC_ONLY  # threads cannot be cancelled from outside
@pytest.mark.parametrize("swallows", [False, True], ids=["cancelled", "cancel-swallowed"])
async def test_async_engine_cancelled_from_outside_starts_no_waiting_job(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    swallows: bool,
) -> None:
    """What asyncio.run does to the tasks left when its coroutine ends without
    shutdown(): it cancels them all. A job waiting for a place must not start
    then, since its lock goes with the locker's session; not even when the
    running job swallows its cancel and ends as if done."""
    if swallows and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 does not count cancels: a swallowed one leaves no trace")
    started: list[str] = []

    async def work(job: Any) -> None:
        started.append(job.type)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if not swallows:
                raise

    await r(qc.enqueue(que.Job(type="A", priority=1)))
    await r(qc.enqueue(que.Job(type="B", priority=2)))
    # No listener: its connection, cancelled mid-wait, would not go back to the pool.
    engine = engines({"A": work, "B": work}, concurrency=1, buffer=1, listen=False)
    side.start_engine(engine)
    await eventually(
        lambda: started == ["A"] and engine._jobs.qsize() == 1, "A running and B waiting"
    )
    tasks = [*engine._locker, *engine._workers, *engine._job_tasks]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.2)  # time for a task started by the cancellation to run
    assert started == ["A"]
    assert remaining(conn) == 2
    assert advisory_lock_count(db_url) == 0  # gone with the locker's session


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory is 3.12+")
@ASYNC_ONLY  # no tasks on the sync face
async def test_async_engine_works_under_an_eager_task_factory(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    """An eager task runs its first step inside create_task: a job that never
    suspends ends there, while the engine is still starting tasks."""
    runs = Executions()

    async def quick(job: Any) -> None:
        runs.record(job)

    jobs = await r(qc.enqueue_many([que.Job(type="Q") for _ in range(30)]))
    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    try:
        engine = engines({"Q": quick}, concurrency=2, buffer=10)
        side.start_engine(engine)
        await eventually(lambda: remaining(conn) == 0, "every job worked")
        assert await side.stop_engine(engine)
    finally:
        loop.set_task_factory(factory)
    assert runs.counts == Counter({job.id: 1 for job in jobs})


@SYNC_ONLY  # the async face takes async work functions; the sync face has no loop to run them
async def test_sync_engine_refuses_async_work_functions(side: Side, qc: AnyClient) -> None:
    async def handler(job: Any) -> None:
        return None

    class AsyncCallable:
        async def __call__(self, job: Any) -> None:
            return None

    with pytest.raises(TypeError, match="'A' is an async function"):
        side.batch_worker(qc, {"A": handler})
    with pytest.raises(TypeError, match="'A' is an async function"):
        side.batch_worker(qc, {"A": AsyncCallable()})


@SYNC_ONLY  # on the async face a returned coroutine is awaited; threads have no loop for it
async def test_sync_engine_fails_a_job_whose_function_returns_an_awaitable(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engines: Any
) -> None:
    async def later() -> None:
        return None

    def sneaky(job: Any) -> Any:
        return later()

    await r(qc.enqueue(que.Job(type="Sneaky")))
    engine = engines({"Sneaky": sneaky}, concurrency=1)
    side.start_engine(engine)
    await eventually(lambda: errored(conn) == 1, "the job failed")
    row = conn.execute("SELECT last_error FROM que_jobs").fetchone()
    assert row is not None and "returned an awaitable" in row[0]


# -- the shared claim statements and notify trigger (no face) ----------------------


def test_batch_claim_takes_one_lock_per_job_and_skips_held_ones(
    client: que.Client, db_url: str
) -> None:
    client.enqueue_many([que.Job(type="T") for _ in range(30)])
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as locker:
        first = locker.execute(sql.LOCK_JOBS, claim_params("", 10, [])).fetchall()
        held = [row["job_id"] for row in first]
        second = locker.execute(sql.LOCK_JOBS, claim_params("", 10, held)).fetchall()
        ids = held + [row["job_id"] for row in second]
        assert len(set(ids)) == 20
        assert advisory_lock_count(db_url) == 20
        # One unlock per id frees everything: no id was locked twice.
        locker.execute(sql.UNLOCK_JOBS, {"ids": ids})
        assert advisory_lock_count(db_url) == 0


def test_batch_claim_skips_jobs_locked_elsewhere(
    client: que.Client, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    ids = [j.id for j in client.enqueue_many([que.Job(type="T") for _ in range(6)])]
    for job_id in ids[:4]:  # a Ruby or Go worker holds these
        conn.execute("SELECT pg_advisory_lock(%s)", [job_id])
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as locker:
        got = locker.execute(sql.LOCK_JOBS, claim_params("", 10, [])).fetchall()
        assert [row["job_id"] for row in got] == ids[4:]
        locker.execute(sql.UNLOCK_JOBS, {"ids": ids[4:]})
    conn.execute("SELECT pg_advisory_unlock_all()")


def test_recheck_reads_the_row_versions_the_claim_locked(
    client: que.Client, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    # Between the claim and the re-check other sessions delete one row, write
    # to another without changing its key, and move a third to a later run_at.
    # The re-check reads the rows at the versions the claim locked: only the
    # untouched ones come back, in the claim's order; the rest count as gone,
    # for the engine to unlock and claim again.
    jobs = client.enqueue_many([que.Job(type="T", priority=p) for p in (5, 1, 4, 2, 3)])
    by_priority = sorted(jobs, key=lambda job: job.priority)
    deleted, written, moved = by_priority[0], by_priority[2], by_priority[4]
    with psycopg.connect(db_url, autocommit=True) as locker:
        row = locker.execute(sql.LOCK_JOBS_NOTED, claim_params("", 10, [])).fetchone()
        assert row is not None and parse_id_array(row[2]) == [job.id for job in by_priority]
        conn.execute("DELETE FROM que_jobs WHERE job_id = %s", [deleted.id])
        conn.execute("UPDATE que_jobs SET last_error = 'x' WHERE job_id = %s", [written.id])
        conn.execute(
            "UPDATE que_jobs SET run_at = run_at + interval '1 hour' WHERE job_id = %s",
            [moved.id],
        )
        found = locker.execute(sql.RECHECK_NOTED, {"queue": ""}).fetchall()
        locker.execute("SELECT pg_advisory_unlock_all()")
    assert [row[RECHECK_ID] for row in found] == [by_priority[1].id, by_priority[3].id]
    built = [job_from_values(que.Job, row) for row in found]  # whole rows, as the engine reads
    assert [(job.id, job.args, problem) for job, problem in built] == [
        (by_priority[1].id, [], None),
        (by_priority[3].id, [], None),
    ]


def write_during_claim(conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the engine's first claim of a turn also write to the jobs whose ids
    are put in the table write_during_claim (once each): as another session
    could between the claim and the re-check."""
    conn.execute("CREATE TABLE write_during_claim (job_id bigint)")
    writing_claim = (
        "WITH written AS (UPDATE que_jobs SET last_error = 'written' "
        "WHERE job_id IN (SELECT job_id FROM write_during_claim) RETURNING job_id), "
        "forgotten AS (DELETE FROM write_during_claim) " + sql.LOCK_JOBS_NOTED
    )
    monkeypatch.setattr(sql, "LOCK_JOBS_NOTED", writing_claim)


async def test_job_written_between_claim_and_recheck_is_unlocked_and_runs_once(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The engine's claim statement also writes to the rows listed in
    # write_during_claim, as another session could between the claim and the
    # re-check: the re-check finds that row moved, so the engine unlocks it and
    # claims it again in a later turn. It runs once, with what was written.
    write_during_claim(conn, monkeypatch)
    runs = Executions()
    last_errors: dict[int, str | None] = {}

    async def work(job: Any) -> None:
        runs.record(job)
        last_errors[job.id] = job.last_error

    jobs = await r(qc.enqueue_many([que.Job(type="W") for _ in range(3)]))
    conn.execute("INSERT INTO write_during_claim VALUES (%s)", [jobs[1].id])
    engine = engines({"W": side.handler(work)}, concurrency=2, buffer=1)
    module = sys.modules[type(engine).__module__]
    find_gone = module.vanished_ids
    gone: list[int] = []

    def recording(locked: list[int], found: list[Any]) -> list[int]:
        ids: list[int] = find_gone(locked, found)
        gone.extend(ids)
        return ids

    monkeypatch.setattr(module, "vanished_ids", recording)
    side.start_engine(engine)
    await eventually(lambda: remaining(conn) == 0, "every job worked")
    assert await side.stop_engine(engine)
    assert gone == [jobs[1].id]
    assert runs.counts == Counter({job.id: 1 for job in jobs})
    assert last_errors[jobs[1].id] == "written"
    assert advisory_lock_count(db_url) == 0


async def test_lone_job_written_during_its_claim_is_claimed_again_at_once(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    engines: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing else runs or is due to wake the locker, and it neither listens
    nor polls within the test: it must not sleep with the job it found gone."""
    write_during_claim(conn, monkeypatch)
    runs = Executions()
    job = await r(qc.enqueue(que.Job(type="W")))
    conn.execute("INSERT INTO write_during_claim VALUES (%s)", [job.id])

    async def work(job: Any) -> None:
        runs.record(job)

    engine = engines({"W": side.handler(work)}, interval=60, listen=False)
    side.start_engine(engine)
    await wait_until(lambda: remaining(conn) == 0, 20, "the job claimed again and worked")
    assert runs.counts == Counter({job.id: 1})


def test_first_claim_reports_where_its_window_ends(
    client: que.Client, db_url: str, conn: psycopg.Connection[Any]
) -> None:
    # When the first claim locks fewer than it wants, the walk goes on past its
    # window only if the window was full: the claim reports the window's last
    # key then, and no key when the window was short or the claim had enough.
    ids = [j.id for j in client.enqueue_many([que.Job(type="T") for _ in range(6)])]
    for job_id in ids[:4]:  # a Ruby or Go worker holds these
        conn.execute("SELECT pg_advisory_lock(%s)", [job_id])
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as locker:

        def claim(limit: int, window: int) -> tuple[list[int], Any]:
            params = claim_params("", limit, [], None, window)
            row = locker.execute(sql.LOCK_JOBS_NOTED, params).fetchone()
            locker.execute("SELECT pg_advisory_unlock_all()")
            return parse_id_array(row["ids"]) if row else [], window_end(row)

        locked, end = claim(limit=10, window=5)  # the window is ids[0..4]
        assert locked == [ids[4]]
        assert end is not None and end.key is not None
        assert end.key["job_id"] == ids[4]
        row = conn.execute("SELECT priority, run_at FROM que_jobs WHERE job_id = %s", [ids[4]])
        assert row.fetchone() == (end.key["priority"], end.key["run_at"])
        assert claim(limit=10, window=10) == ([ids[4], ids[5]], WindowEnd(None))
        assert claim(limit=1, window=5) == ([ids[4]], WindowEnd(None))
    conn.execute("SELECT pg_advisory_unlock_all()")


def test_notify_trigger_keeps_the_table_compatible(
    conn: psycopg.Connection[Any], db_url: str
) -> None:
    columns = (
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'que_jobs' ORDER BY ordinal_position"
    )
    before = conn.execute(columns).fetchall()
    install_notify(conn)
    install_notify(conn)  # idempotent
    assert notify_installed(conn)
    assert que.current_version(conn) == 3
    assert conn.execute(columns).fetchall() == before
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute(sql.LISTEN)
        # The insert Ruby and Go send wakes Python workers too.
        conn.execute(
            "INSERT INTO que_jobs (queue, job_class) VALUES ('mail', 'Mailer'), "
            "('mail', 'Mailer'), ('', 'Other')"
        )
        payloads = sorted(n.payload for n in listener.notifies(timeout=5, stop_after=2))
    assert payloads == ["", "mail"]
    uninstall_notify(conn)
    assert not notify_installed(conn)
    install_notify(conn)
    que.migrate(conn, 2)  # going down removes the trigger, whose function reads queue
    assert not notify_installed(conn)
    conn.execute("INSERT INTO que_jobs (job_class) VALUES ('x')")
