import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que
from que import sql

from ..helpers import advisory_lock_count


def held_locks(conn: psycopg.Connection[Any]) -> list[int]:
    rows = conn.execute(
        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
        "WHERE locktype = 'advisory' AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_nothing_to_lock(client: que.Client) -> None:
    assert client.lock_job() is None


def test_lock_holds_an_advisory_lock_until_done(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    enqueued = client.enqueue(que.Job(type="T", args=[1]))
    job = client.lock_job()
    assert job is not None
    assert (job.id, job.type, job.args, job.error_count, job.last_error) == (
        enqueued.id,
        "T",
        [1],
        0,
        None,
    )
    assert held_locks(conn) == [job.id]
    job.done()
    assert held_locks(conn) == []
    job.done()  # idempotent
    assert held_locks(conn) == []


def test_claim_takes_exactly_one_lock_per_job(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    """Advisory locks are re-entrant: one unlock must free what one claim took."""
    for _ in range(8):
        client.enqueue(que.Job(type="T"))
    jobs = [client.lock_job() for _ in range(8)]
    try:
        for job in jobs:
            assert job is not None
            freed = job.conn.execute(sql.UNLOCK_JOB, {"job_id": job.id}).fetchone()
            assert freed is not None and list(freed.values()) == [True]
            assert job.id not in held_locks(conn), f"job {job.id} was locked twice"
            job.conn.execute("SELECT pg_advisory_lock(%s)", [job.id])  # for done()
    finally:
        for job in jobs:
            if job is not None:
                job.done()


def test_a_locked_job_is_skipped_by_another_client(client: que.Client, db_url: str) -> None:
    first_id = client.enqueue(que.Job(type="T")).id
    second_id = client.enqueue(que.Job(type="T")).id
    with que.Client(db_url) as other:
        job_a = client.lock_job()
        job_b = other.lock_job()
        assert job_a is not None and job_b is not None
        assert (job_a.id, job_b.id) == (first_id, second_id)
        assert other.lock_job() is None
        job_a.done()
        job_b.done()


def test_a_job_locked_by_a_foreign_session_is_skipped(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    """A Ruby or Go worker holds the lock the same way: pg_advisory_lock(job_id)."""
    held = client.enqueue(que.Job(type="T")).id
    free = client.enqueue(que.Job(type="T")).id
    conn.execute("SELECT pg_advisory_lock(%s)", [held])
    job = client.lock_job()
    assert job is not None and job.id == free
    job.delete()
    job.done()
    assert client.lock_job() is None
    conn.execute("SELECT pg_advisory_unlock(%s)", [held])


def test_two_clients_racing_never_share_a_job(client: que.Client, db_url: str) -> None:
    client.enqueue_many([que.Job(type="T", args=[i]) for i in range(300)])
    claimed: list[int] = []
    lock = threading.Lock()

    def drain(c: que.Client) -> None:
        while (job := c.lock_job()) is not None:
            with job:
                with lock:
                    claimed.append(job.args[0])
                job.delete()

    with que.Client(db_url) as other:
        threads = [threading.Thread(target=drain, args=(c,)) for c in (client, other, client)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
    assert sorted(claimed) == list(range(300))


def test_terminated_session_frees_its_job(
    client: que.Client, conn: psycopg.Connection[Any], db_url: str
) -> None:
    job_id = client.enqueue(que.Job(type="T")).id
    job = client.lock_job()
    assert job is not None and job.id == job_id
    pid = job.conn.info.backend_pid
    conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    with que.Client(db_url) as other:
        again = other.lock_job()
        assert again is not None and again.id == job_id
        again.delete()
        again.done()
    job.done()  # on a dead connection: must not raise, must return it to the pool


def test_order_is_priority_then_run_at_then_id(client: que.Client) -> None:
    now = datetime.now(timezone.utc)
    earlier = now - timedelta(minutes=5)
    made = [
        client.enqueue(que.Job(type="p100-now", priority=100, run_at=now)),
        client.enqueue(que.Job(type="p100-earlier", priority=100, run_at=earlier)),
        client.enqueue(que.Job(type="p1-now-a", priority=1, run_at=now)),
        client.enqueue(que.Job(type="p1-now-b", priority=1, run_at=now)),
        client.enqueue(que.Job(type="p0", priority=0, run_at=now)),
        client.enqueue(que.Job(type="negative", priority=-5, run_at=now)),
    ]
    assert len(made) == 6
    order = []
    while (job := client.lock_job()) is not None:
        with job:
            order.append(job.type)
            job.delete()
    assert order == ["negative", "p0", "p1-now-a", "p1-now-b", "p100-earlier", "p100-now"]


def test_future_jobs_are_not_locked(client: que.Client) -> None:
    client.enqueue(que.Job(type="later", run_at=datetime.now(timezone.utc) + timedelta(hours=1)))
    assert client.lock_job() is None


def test_queues_are_separate(client: que.Client) -> None:
    client.enqueue(que.Job(type="mail", queue="mail"))
    client.enqueue(que.Job(type="default"))
    for queue, expected in (("billing", None), ("mail", "mail"), ("", "default")):
        job = client.lock_job(queue)
        if expected is None:
            assert job is None
            continue
        assert job is not None
        with job:
            assert (job.queue, job.type) == (queue, expected)
            job.delete()


def test_lock_job_rejects_a_bad_queue_name(client: que.Client) -> None:
    with pytest.raises(que.InvalidJobError, match="queue"):
        client.lock_job(None)  # type: ignore[arg-type]


class DeleteBeforeRecheck:
    """Deletes each job the walk locked, from another session, before the re-check runs:
    the race where another worker finished the job after the walk's snapshot."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, db_url: str, times: int) -> None:
        self.remaining = times
        self.deleted: list[int] = []
        self.other = psycopg.connect(db_url, autocommit=True)
        original = psycopg.Cursor.execute

        def execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            if query is sql.RECHECK_JOB and self.remaining > 0:
                self.remaining -= 1
                self.other.execute("DELETE FROM que_jobs WHERE job_id = %s", [params["job_id"]])
                self.deleted.append(params["job_id"])
            return original(cur, query, params, **kw)

        monkeypatch.setattr(psycopg.Cursor, "execute", execute)


def test_job_deleted_between_walk_and_recheck_is_unlocked_and_walk_retries(
    client: que.Client, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [j.id for j in client.enqueue_many([que.Job(type="T") for _ in range(3)])]
    race = DeleteBeforeRecheck(monkeypatch, db_url, times=2)
    try:
        job = client.lock_job()
        assert job is not None
        assert race.deleted == ids[:2]
        assert job.id == ids[2]
        assert advisory_lock_count(db_url) == 1  # the two raced jobs were unlocked
        job.done()
    finally:
        race.other.close()


def test_lock_attempts_exceeded_after_ten_races(
    client: que.Client, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.enqueue_many([que.Job(type="T") for _ in range(12)])
    race = DeleteBeforeRecheck(monkeypatch, db_url, times=10)
    try:
        with pytest.raises(que.LockAttemptsError, match="after 10 attempts"):
            client.lock_job()
        assert len(race.deleted) == 10
        assert advisory_lock_count(db_url) == 0
    finally:
        race.other.close()
    job = client.lock_job()
    assert job is not None
    job.done()


def test_stats(client: que.Client, conn: psycopg.Connection[Any], db_url: str) -> None:
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    client.enqueue(que.Job(type="A", run_at=old))
    client.enqueue(que.Job(type="A"))
    client.enqueue(que.Job(type="B", queue="q"))
    conn.execute("UPDATE que_jobs SET error_count = 3 WHERE job_class = 'B'")
    job = client.lock_job()
    assert job is not None
    # A lock on the same id in another database must not count as working.
    base = psycopg.conninfo.conninfo_to_dict(db_url)
    other_db = psycopg.conninfo.make_conninfo(**{**base, "dbname": "postgres"})
    with psycopg.connect(other_db, autocommit=True) as elsewhere:
        b_id = conn.execute("SELECT job_id FROM que_jobs WHERE job_class = 'B'").fetchone()
        assert b_id is not None
        elsewhere.execute("SELECT pg_advisory_lock(%s)", [b_id[0]])
        stats = client.stats()
        elsewhere.execute("SELECT pg_advisory_unlock_all()")
    job.done()
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


def test_stats_on_large_job_ids(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    """Ids above 2**32 are split over classid and objid in pg_locks."""
    conn.execute("SELECT setval('que_jobs_job_id_seq', %s)", [2**33 + 5])
    client.enqueue(que.Job(type="Big"))
    job = client.lock_job()
    assert job is not None and job.id == 2**33 + 6
    assert [s.count_working for s in client.stats()] == [1]
    job.done()


def test_close_releases_jobs_still_held(db_url: str) -> None:
    client = que.Client(db_url)
    client.enqueue(que.Job(type="T"))
    job = client.lock_job()
    assert job is not None and advisory_lock_count(db_url) == 1
    client.close()
    assert advisory_lock_count(db_url) == 0
