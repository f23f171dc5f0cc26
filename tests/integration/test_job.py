from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest

import que

FIELDS = "SELECT error_count, last_error, run_at FROM que_jobs WHERE job_id = %s"


def claim(client: que.Client) -> que.Job:
    job = client.lock_job()
    assert job is not None
    return job


def test_error_records_count_message_and_backoff(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    job_id = client.enqueue(que.Job(type="T")).id
    for attempt, backoff in ((1, 4), (2, 19), (3, 84)):
        conn.execute("UPDATE que_jobs SET run_at = now() - interval '1 hour'")
        with claim(client) as job:
            job.error(f"boom {attempt}")
            now = datetime.now(timezone.utc)
        row = conn.execute(FIELDS, [job_id]).fetchone()
        assert row is not None
        assert row[:2] == (attempt, f"boom {attempt}")
        assert abs((row[2] - now).total_seconds() - backoff) < 1.0
        assert (job.error_count, job.last_error, job.run_at) == row


def test_retry_interval_override_per_type(db_url: str, conn: psycopg.Connection[Any]) -> None:
    with que.Client(db_url, retry_intervals={"Fast": 0.5, "Slow": lambda n: 3600 * n}) as client:
        client.enqueue(que.Job(type="Fast"))
        client.enqueue(que.Job(type="Slow"))
        for _ in range(2):
            with claim(client) as job:
                job.error("x")
        delays = dict(
            conn.execute(
                "SELECT job_class, extract(epoch FROM run_at - now())::float FROM que_jobs"
            ).fetchall()
        )
    assert 0 < delays["Fast"] <= 0.6
    assert 3598 < delays["Slow"] <= 3600


def test_error_with_explicit_retry_in(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        job.error("later", retry_in=120)
    row = conn.execute("SELECT extract(epoch FROM run_at - now())::float FROM que_jobs").fetchone()
    assert row is not None and 118 < row[0] <= 120


def test_error_message_with_nul_is_stored(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        job.error("bad\x00byte")
    assert conn.execute("SELECT last_error FROM que_jobs").fetchone() == ("bad\\0byte",)


def test_tx_commits_the_jobs_writes_with_its_delete(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (job_id bigint)")
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        tx = job.tx
        tx.execute("INSERT INTO effects VALUES (%s)", [job.id])
        assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)  # not yet
        job.delete()
        assert tx.autocommit is True  # back to autocommit for the unlock
    assert conn.execute("SELECT job_id FROM effects").fetchall() == [(job.id,)]
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


def test_error_rolls_back_the_jobs_writes(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (job_id bigint)")
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        job.tx.execute("INSERT INTO effects VALUES (%s)", [job.id])
        job.error("failed")
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,)


def test_done_without_delete_rolls_back_and_keeps_the_job(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("CREATE TABLE effects (job_id bigint)")
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        job.tx.execute("INSERT INTO effects VALUES (%s)", [job.id])
    assert conn.execute("SELECT count(*) FROM effects").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (1,)
    again = claim(client)
    assert again.id == job.id
    again.done()


def test_a_broken_job_transaction_is_cleaned_up(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        with pytest.raises(psycopg.errors.UndefinedTable):
            job.tx.execute("SELECT * FROM missing_table")
        job.error("missing table")
    assert conn.execute("SELECT error_count FROM que_jobs").fetchone() == (1,)


def test_no_transaction_is_opened_unless_asked(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        assert job.conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        idle_in_tx = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        ).fetchone()
        assert idle_in_tx == (0,)
        job.delete()


def test_done_job_refuses_further_use(client: que.Client) -> None:
    client.enqueue(que.Job(type="T"))
    job = claim(client)
    job.delete()
    job.done()
    with pytest.raises(que.QueError, match="holds no connection"):
        job.delete()
    with pytest.raises(que.QueError, match="holds no connection"):
        _ = job.tx


def test_error_after_the_row_vanished_is_reported(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    client.enqueue(que.Job(type="T"))
    with claim(client) as job:
        conn.execute("DELETE FROM que_jobs")
        with pytest.raises(que.QueError, match="no longer in que_jobs"):
            job.error("too late")


def test_far_future_run_at_round_trips(client: que.Client) -> None:
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
    job = client.enqueue(que.Job(type="T", run_at=far))
    assert job.run_at == far
    assert client.lock_job() is None
    assert client.stats()[0].oldest_run_at == far
