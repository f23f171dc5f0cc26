"""Measure what a busy queue does to que_jobs: dead rows and size on disk.

Runs JOBS jobs through one queue that never holds more than BACKLOG rows
(a producer tops it up as a batched worker drains it; with --backlog as
large as --jobs, a burn-down of one big backlog), on a fresh database
of the server at --server-url, and prints the table's statistics every
--every jobs: live and dead row estimates, table and index sizes, and
the autovacuum runs. Then it runs VACUUM que_jobs and prints them again.

    python scripts/measure_bloat.py --server-url postgresql://postgres@127.0.0.1/postgres \\
        --jobs 1500000 [--no-extension] [--keep]

The database is dropped at the end unless --keep is given.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

import que

STATS = """
SELECT s.n_live_tup, s.n_dead_tup, s.autovacuum_count, s.vacuum_count,
       pg_relation_size('que_jobs') AS table_bytes,
       pg_indexes_size('que_jobs') AS index_bytes,
       pg_total_relation_size('que_jobs') AS total_bytes,
       current_setting('autovacuum') AS autovacuum
FROM pg_stat_user_tables AS s
WHERE s.relid = 'que_jobs'::regclass
"""


def snapshot(conn: psycopg.Connection[Any], label: str, started: float) -> None:
    """One line of the table's statistics."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(STATS).fetchone()
    assert row is not None
    live, dead, autovacuums, vacuums, table, index, total, autovacuum = row
    print(
        f"{label:>18}  {time.monotonic() - started:7.1f}s  live {live:>8,}  dead {dead:>10,}  "
        f"table {table / 2**20:7.1f} MB  indexes {index / 2**20:7.1f} MB  "
        f"total {total / 2**20:7.1f} MB  autovacuums {autovacuums}  vacuums {vacuums}  "
        f"(autovacuum {autovacuum})",
        flush=True,
    )


def report(conn: psycopg.Connection[Any], done: int, due: int, every: int, started: float) -> int:
    """A snapshot when ``done`` jobs reached the next report; the next one's count."""
    if done < due:
        return due
    snapshot(conn, f"{due:,} jobs", started)
    return due + every


def claim_ms(client: que.Client, rounds: int = 200) -> float:
    """Mean milliseconds of one claim (the Que walk, lock_job) and its release."""
    started = time.perf_counter()
    for _ in range(rounds):
        job = client.lock_job()
        assert job is not None
        job.done()  # unlocks; the job stays for the next round
    return (time.perf_counter() - started) * 1000 / rounds


def run(url: str, jobs: int, backlog: int, every: int) -> None:
    done = 0
    done_lock = threading.Lock()

    def work(job: que.Job) -> None:
        nonlocal done
        with done_lock:
            done += 1

    started = time.monotonic()
    with (
        que.Client(url, max_connections=6) as client,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        snapshot(conn, "start", started)
        engine = que.BatchWorker(client, {"Noop": work}, concurrency=4, interval=0.05)
        engine.start()
        produced = 0
        next_report = every
        try:
            while produced < jobs:
                with done_lock:
                    waiting = produced - done
                room = min(backlog - waiting, jobs - produced, 10_000)
                if room > 0:
                    client.enqueue_many([que.Job(type="Noop") for _ in range(room)])
                    produced += room
                else:
                    time.sleep(0.001)
                next_report = report(conn, done, next_report, every, started)
            while done < jobs:
                time.sleep(0.01)
                next_report = report(conn, done, next_report, every, started)
        finally:
            engine.shutdown(30)
        snapshot(conn, f"{jobs:,} jobs", started)
        time.sleep(1.5)  # the statistics of the last writes reach pg_stat
        snapshot(conn, "after 1.5s", started)
        waiting = min(backlog, 100)
        client.enqueue_many([que.Job(type="Noop") for _ in range(waiting)])
        print(f"claim with {waiting} jobs waiting: {claim_ms(client):.2f} ms", flush=True)
        conn.execute("VACUUM que_jobs")
        snapshot(conn, "VACUUM que_jobs", started)
        print(f"claim after VACUUM: {claim_ms(client):.2f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server-url", required=True)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=100)
    parser.add_argument("--every", type=int, default=100_000)
    parser.add_argument("--no-extension", dest="extension", action="store_false")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    name = f"que_bloat_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server_url, autocommit=True) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    url = make_conninfo(args.server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            que.migrate(conn)
            if args.extension:
                que.migrate_extension(conn)
        print(f"database {name}, extension {'on' if args.extension else 'off'}", flush=True)
        run(url, args.jobs, args.backlog, args.every)
    finally:
        if not args.keep:
            with psycopg.connect(args.server_url, autocommit=True) as admin:
                admin.execute(
                    pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(name))
                )


if __name__ == "__main__":
    main()
