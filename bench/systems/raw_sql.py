"""The database's own limit: batched INSERT, and DELETE ... RETURNING of the same rows.

No queue library: a table shaped exactly like ``que_jobs`` (same columns,
same primary key, so the same index upkeep), filled with one multi-row
INSERT per batch and emptied by worker threads that each take a batch of
rows with ``DELETE ... WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED)
RETURNING args`` in one statement. Nothing a queue does per job can cost
less than this, so the other systems are reported as a fraction of it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bench.systems.base import System, WorkerContext, decode_pair

CREATE_TABLE = """
CREATE TABLE raw_jobs (
    priority    smallint    NOT NULL DEFAULT 100,
    run_at      timestamptz NOT NULL DEFAULT now(),
    job_id      bigserial   NOT NULL,
    job_class   text        NOT NULL,
    args        json        NOT NULL DEFAULT '[]'::json,
    error_count integer     NOT NULL DEFAULT 0,
    last_error  text,
    queue       text        NOT NULL DEFAULT '',
    CONSTRAINT raw_jobs_pkey PRIMARY KEY (queue, priority, run_at, job_id)
)
"""

INSERT_ONE = "INSERT INTO raw_jobs (job_class, args) VALUES ('Bench', %s::json)"

INSERT_URGENT = "INSERT INTO raw_jobs (job_class, args, priority) VALUES ('Bench', %s::json, 1)"

INSERT_BATCH = """
INSERT INTO raw_jobs (job_class, args)
SELECT 'Bench', a::json FROM unnest(%s::text[]) AS a
"""

TAKE_BATCH = """
DELETE FROM raw_jobs
WHERE (queue, priority, run_at, job_id) IN (
    SELECT queue, priority, run_at, job_id FROM raw_jobs
    WHERE queue = '' AND run_at <= now()
    ORDER BY priority, run_at, job_id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING args
"""


class RawSql(System):
    name = "raw_sql"
    label = "raw SQL: batched INSERT, batched DELETE ... RETURNING (psycopg 3, threads)"
    rank = 10
    packages = ("psycopg", "psycopg-binary")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # Threads per process, each with its own connection.
        "threads": 2,
        # Rows taken per DELETE ... RETURNING.
        "batch_size": 500,
        # Seconds an idle thread sleeps before it looks again.
        "interval": 0.001,
    }
    pending_sql = "SELECT count(*) FROM raw_jobs"

    def not_applicable(self, scenario: str) -> str | None:
        if scenario == "io":
            return (
                "the baseline is the database's limit, not a worker: its threads would run "
                "the jobs of a batch one after another"
            )
        return super().not_applicable(scenario)

    def install(self, url: str) -> None:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(CREATE_TABLE)

    def producer(self, url: str) -> RawProducer:
        return RawProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        import psycopg

        conns = [psycopg.connect(url, autocommit=True) for _ in range(self.settings["threads"])]
        batch = int(self.settings["batch_size"])
        interval = float(self.settings["interval"])

        def loop(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                while not ctx.stop.is_set():
                    rows = cur.execute(TAKE_BATCH, (batch,), prepare=True).fetchall()
                    for (args,) in rows:
                        ctx.hit(*decode_pair(args))
                    if not rows:
                        ctx.stop.wait(interval)

        threads = [threading.Thread(target=loop, args=(conn,), daemon=True) for conn in conns]
        ctx.ready()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for conn in conns:
            conn.close()


class RawProducer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None

    def open(self) -> None:
        import psycopg

        self.conn = psycopg.connect(self.url, autocommit=True)

    def enqueue_one(self, seq: int, sent_at: float) -> None:
        self.conn.execute(INSERT_ONE, (f"[{seq}, {sent_at!r}]",), prepare=True)

    def enqueue_urgent(self, seq: int, sent_at: float) -> None:
        self.conn.execute(INSERT_URGENT, (f"[{seq}, {sent_at!r}]",), prepare=True)

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        self.conn.execute(INSERT_BATCH, ([f"[{seq}, 0.0]" for seq in seqs],))

    def close(self) -> None:
        self.conn.close()
