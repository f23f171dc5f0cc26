"""The server goes away under the workers: a restart, and sessions terminated by
an administrator. Workers log it, reconnect and finish; nothing is lost and each
job's effect is recorded once."""

from __future__ import annotations

import time

import psycopg
from psycopg.conninfo import make_conninfo

from .conftest import (
    Workers,
    assert_exactly_once,
    enqueue_records,
    restart_server,
    scalar,
    wait_for,
)

PASSWORD = "pw-never-logged-7Qx"


def done(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM results"))


def test_database_restart_mid_run(workers: Workers, fault_db: str) -> None:
    ids = enqueue_records(fault_db, 3000, seconds=0.004)
    # trust authentication ignores the password; it is there to prove that no
    # log line or error shows it
    workers.url = make_conninfo(fault_db, password=PASSWORD)
    logs = [workers.start("--concurrency", "4") for _ in range(2)]
    wait_for(lambda: done(fault_db) >= 500, "a sixth of the jobs to be worked")
    restart_server(fault_db)
    restarted = time.monotonic()
    before = done_after_restart = done(fault_db)
    wait_for(lambda: done(fault_db) > before, "work to resume after the restart", 120)
    recovery = time.monotonic() - restarted
    wait_for(lambda: scalar(fault_db, "SELECT count(*) FROM que_jobs") == 0, "the run to finish")
    assert workers.stop_all() == [0, 0]
    assert_exactly_once(fault_db, ids)
    text = "".join(worker.stderr() for worker in logs)
    assert "retrying in" in text  # the loss was logged, then survived
    assert PASSWORD not in text
    print(
        f"\nrestart: work resumed {recovery:.2f}s after the server was back "
        f"({done_after_restart} of {len(ids)} jobs done before it)"
    )


def test_terminated_sessions_mid_job(workers: Workers, fault_db: str) -> None:
    ids = enqueue_records(fault_db, 3000, seconds=0.004)
    logs = [workers.start("--concurrency", "4") for _ in range(2)]
    terminations = 0
    with psycopg.connect(fault_db, autocommit=True) as admin:
        for goal in (300, 1000, 1800):
            wait_for(lambda goal=goal: done(fault_db) >= goal, f"{goal} jobs worked")
            # every session of the workers: lockers, listeners and job connections
            killed = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            ).fetchone()
            assert killed is not None and killed[0] > 0
            terminations += killed[0]
    wait_for(lambda: scalar(fault_db, "SELECT count(*) FROM que_jobs") == 0, "the run to finish")
    assert workers.stop_all() == [0, 0]
    assert_exactly_once(fault_db, ids)
    assert "retrying in" in "".join(worker.stderr() for worker in logs)
    print(f"\nterminated {terminations} sessions in three rounds; nothing lost")
