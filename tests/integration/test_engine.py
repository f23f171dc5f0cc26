"""The batched engine: batch claims, batched finishing, LISTEN/NOTIFY wake-ups."""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

import que
from que import sql
from que.engine import BatchWorker
from que.schema import install_notify, notify_installed, uninstall_notify

from ..helpers import advisory_lock_count


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def remaining(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert row is not None
    return int(row[0])


class Executions:
    """Counts executions per job id, thread-safely."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.lock = threading.Lock()

    def __call__(self, job: que.Job) -> None:
        with self.lock:
            assert job.id is not None
            self.counts[job.id] += 1


@pytest.fixture
def engine_factory(client: que.Client) -> Iterator[Callable[..., BatchWorker]]:
    made: list[BatchWorker] = []

    def make(work_map: dict[str, Any], **options: Any) -> BatchWorker:
        options.setdefault("interval", 0.05)
        engine = BatchWorker(client, work_map, **options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        assert engine.shutdown(timeout=30)


def test_works_every_job_exactly_once(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any, db_url: str
) -> None:
    runs = Executions()
    jobs = client.enqueue_many([que.Job(type="Count", args=[i]) for i in range(3000)])
    engine = engine_factory({"Count": runs}, concurrency=4, buffer=4)
    engine.start()
    wait_for(lambda: remaining(conn) == 0)
    assert engine.shutdown(timeout=30)
    assert set(runs.counts) == {j.id for j in jobs}
    assert set(runs.counts.values()) == {1}
    assert advisory_lock_count(db_url) == 0


def test_failures_are_recorded_in_batches(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any
) -> None:
    def fail(job: que.Job) -> None:
        raise ValueError(f"bad input {job.args[0]}")

    client.enqueue_many([que.Job(type="Fail", args=[i]) for i in range(20)])
    client.enqueue(que.Job(type="Unknown"))
    engine = engine_factory({"Fail": fail}, concurrency=2)
    engine.start()
    wait_for(
        lambda: (
            remaining(conn)
            == conn.execute("SELECT count(*) FROM que_jobs WHERE error_count = 1").fetchone()[0]
        )
    )  # type: ignore[index]
    assert engine.shutdown(timeout=30)
    rows = conn.execute(
        "SELECT job_class, args, error_count, last_error, "
        "extract(epoch FROM run_at - now())::float FROM que_jobs ORDER BY job_id"
    ).fetchall()
    assert len(rows) == 21
    for job_class, args, errors, last_error, delay in rows[:20]:
        assert (job_class, errors) == ("Fail", 1)
        assert f"ValueError: bad input {args[0]}" in last_error and "Traceback" in last_error
        assert 2 < delay <= 4  # the first retry comes 1**4 + 3 seconds later
    assert rows[20][3] == "unknown job type: 'Unknown' is not in this worker's work map"


def test_job_transaction_commits_with_its_delete(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any
) -> None:
    conn.execute("CREATE TABLE effects (n int)")

    def effect(job: que.Job) -> None:
        job.tx.execute("INSERT INTO effects VALUES (%s)", [job.args[0]])
        if job.args[0] % 2:
            raise RuntimeError("odd")

    client.enqueue_many([que.Job(type="E", args=[i]) for i in range(10)])
    engine = engine_factory({"E": effect}, concurrency=3)
    engine.start()
    wait_for(lambda: remaining(conn) == 5)
    wait_for(
        lambda: (
            conn.execute("SELECT count(*) FROM que_jobs WHERE error_count = 1").fetchone() == (5,)
        )
    )
    assert engine.shutdown(timeout=30)
    assert sorted(r[0] for r in conn.execute("SELECT n FROM effects").fetchall()) == [0, 2, 4, 6, 8]
    odd = conn.execute("SELECT args->>0 FROM que_jobs ORDER BY 1").fetchall()
    assert [int(r[0]) for r in odd] == [1, 3, 5, 7, 9]


def test_job_that_records_its_own_error_is_not_counted_twice(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any
) -> None:
    def own_error(job: que.Job) -> None:
        job.error("handled it myself", retry_in=600)

    client.enqueue(que.Job(type="Own"))
    engine = engine_factory({"Own": own_error}, concurrency=1)
    engine.start()
    wait_for(lambda: conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,))
    assert engine.shutdown(timeout=30)
    assert conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone() == (
        1,
        "handled it myself",
    )


def test_batch_claim_takes_one_lock_per_job_and_skips_held_ones(
    client: que.Client, db_url: str
) -> None:
    client.enqueue_many([que.Job(type="T") for _ in range(30)])
    with psycopg.connect(db_url, autocommit=True, row_factory=dict_row) as locker:
        first = locker.execute(sql.LOCK_JOBS, {"queue": "", "limit": 10, "held": []}).fetchall()
        held = [r["job_id"] for r in first]
        second = locker.execute(sql.LOCK_JOBS, {"queue": "", "limit": 10, "held": held}).fetchall()
        ids = held + [r["job_id"] for r in second]
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
        got = locker.execute(sql.LOCK_JOBS, {"queue": "", "limit": 10, "held": []}).fetchall()
        assert [r["job_id"] for r in got] == ids[4:]
        locker.execute(sql.UNLOCK_JOBS, {"ids": ids[4:]})
    conn.execute("SELECT pg_advisory_unlock_all()")


def test_engine_beside_the_one_job_path_never_shares_a_job(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any, db_url: str
) -> None:
    runs = Executions()
    client.enqueue_many([que.Job(type="Count", args=[i]) for i in range(3000)])
    engine = engine_factory({"Count": runs}, concurrency=3, buffer=3)
    pool = que.WorkerPool(client, {"Count": runs}, 3, interval=0.05)
    engine.start()
    pool.start()
    try:
        wait_for(lambda: remaining(conn) == 0)
    finally:
        assert pool.shutdown(timeout=30)
    assert engine.shutdown(timeout=30)
    assert len(runs.counts) == 3000 and set(runs.counts.values()) == {1}
    assert advisory_lock_count(db_url) == 0


def test_notify_wakes_an_idle_engine(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any
) -> None:
    install_notify(conn)
    done = threading.Event()
    engine = engine_factory({"Wake": lambda job: done.set()}, concurrency=1, interval=600)
    engine.start()
    wait_for(lambda: _listening(conn))
    client.enqueue(que.Job(type="Wake"))
    # With a 600 s poll interval only the notification can wake it this soon.
    assert done.wait(60)


def test_future_job_is_claimed_when_due_without_polling(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any
) -> None:
    install_notify(conn)
    done = threading.Event()
    started: list[datetime] = []

    def record(job: que.Job) -> None:
        started.append(datetime.now(timezone.utc))
        done.set()

    engine = engine_factory({"Later": record}, concurrency=1, interval=600)
    engine.start()
    wait_for(lambda: _listening(conn))
    job = client.enqueue(
        que.Job(type="Later", run_at=datetime.now(timezone.utc) + timedelta(seconds=1))
    )
    assert done.wait(60)
    assert job.run_at is not None and started[0] >= job.run_at


def test_shutdown_hands_back_jobs_not_started(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any, db_url: str
) -> None:
    running = threading.Event()
    release = threading.Event()

    def slow(job: que.Job) -> None:
        running.set()
        release.wait(30)

    client.enqueue_many([que.Job(type="Slow") for _ in range(5)])
    engine = engine_factory({"Slow": slow}, concurrency=1, buffer=4)
    engine.start()
    assert running.wait(30)
    wait_for(lambda: advisory_lock_count(db_url) == 5)  # one running, four buffered
    stopper = threading.Thread(target=engine.shutdown, kwargs={"timeout": 30})
    stopper.start()
    wait_for(lambda: advisory_lock_count(db_url) == 1)  # the four were handed back
    release.set()
    stopper.join(30)
    assert remaining(conn) == 4
    assert advisory_lock_count(db_url) == 0


def test_interrupting_work_function_gives_its_job_back(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any
) -> None:
    calls: list[int] = []

    def interrupt_once(job: que.Job) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt

    client.enqueue(que.Job(type="K"))
    engine = engine_factory({"K": interrupt_once}, concurrency=1)
    engine.start()
    wait_for(lambda: remaining(conn) == 0)
    assert len(calls) == 2  # given back untouched, then worked again by the same thread


def test_terminated_locker_session_loses_no_job(
    client: que.Client, conn: psycopg.Connection[Any], engine_factory: Any, db_url: str
) -> None:
    runs = Executions()
    client.enqueue_many([que.Job(type="Count", args=[i]) for i in range(2000)])
    engine = engine_factory({"Count": runs}, concurrency=2, buffer=2)
    engine.start()
    wait_for(lambda: len(runs.counts) > 200)
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    wait_for(lambda: remaining(conn) == 0)
    assert engine.shutdown(timeout=30)
    assert len(runs.counts) == 2000  # every job ran; a few may have run twice (at least once)
    assert advisory_lock_count(db_url) == 0


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


def _listening(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
        [sql.LISTEN],
    ).fetchone()
    return row is not None and row[0] > 0


def test_job_past_its_timeout_is_reported(
    client: que.Client,
    conn: psycopg.Connection[Any],
    engine_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    overdue: list[tuple[int | None, float]] = []

    def hang(job: que.Job) -> None:
        release.wait(30)

    client.enqueue(que.Job(type="Hang"))
    engine = engine_factory(
        {"Hang": hang},
        concurrency=1,
        timeouts={"Hang": 0.2},
        on_overdue=lambda job, ran, limit: overdue.append((job.id, limit)),
    )
    with caplog.at_level(logging.WARNING, logger="que.worker"):
        engine.start()
        wait_for(lambda: engine.overdue_total == 1)
    assert "past its timeout of 0.2s" in caplog.text
    assert len(overdue) == 1 and overdue[0][1] == 0.2
    release.set()  # a thread cannot be stopped: the job finishes normally
    wait_for(lambda: remaining(conn) == 0)
