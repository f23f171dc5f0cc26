"""This library's one-job-per-claim path: ``que.WorkerPool`` threads.

Each worker thread claims one job with the advisory-lock walk, runs it,
deletes it and unlocks it: the straight port of Ruby que 0.x and que-go,
kept as the compatibility baseline. Enqueue uses ``Client.enqueue`` (one
statement per job) and ``Client.enqueue_many`` (one statement per batch).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bench.systems.base import System, WorkerContext, decode_pair

JOB_TYPE = "Bench"


class QueClassic(System):
    name = "que_classic"
    label = "que: WorkerPool threads, one job per claim (psycopg 3)"
    rank = 30
    packages = ("que-pg", "psycopg", "psycopg-binary", "psycopg-pool")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # Worker threads per process; each holds one pooled connection.
        "threads": 8,
        # Seconds an idle worker sleeps between claims (there is no LISTEN yet).
        "interval": 0.01,
        # One job per claim works some hundreds of jobs/s here: 50,000 would
        # take minutes per repetition. Its rate at 5,000 and at 50,000 jobs
        # measured about the same here.
        "max_jobs": 20_000,
        # Version of the optional que-pg extension installed beside que_jobs
        # (0: none). Version 2 adds an index on que_jobs (job_id).
        "extension": 0,
    }
    pending_sql = "SELECT count(*) FROM que_jobs"
    concurrency_key = "threads"

    def install(self, url: str) -> None:
        install_que(url, extension=int(self.settings["extension"]))

    def producer(self, url: str) -> QueProducer:
        return QueProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        import que

        threads = int(self.settings["threads"])
        io_wait = ctx.io_wait

        def run(job: que.Job) -> None:
            if io_wait:
                time.sleep(io_wait)
            ctx.hit(*decode_pair(job.args))

        with que.Client(url, max_connections=threads) as client:
            pool = que.WorkerPool(
                client, {JOB_TYPE: run}, threads, interval=float(self.settings["interval"])
            )
            ctx.ready()
            pool.start()
            ctx.stop.wait()
            pool.shutdown(timeout=30)


def install_que(url: str, *, notify: bool = False, extension: int = 0) -> None:
    """Create que_jobs with the library's own migrations, the que-pg extension at
    version ``extension`` (0: none) and the NOTIFY trigger if asked."""
    import psycopg

    import que

    with psycopg.connect(url, autocommit=True) as conn:
        que.migrate(conn)
        if extension:
            que.migrate_extension(conn, int(extension))
        if notify:
            que.install_notify(conn)


#: The one row a job writes when a system's ``write_row`` setting is on.
INSERT_EFFECT = "INSERT INTO bench_effects (seq) VALUES (%s)"


def create_effects_table(url: str) -> None:
    """The table jobs write their one row to (``write_row``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_effects (seq bigint NOT NULL)")


def connections_for(settings: Mapping[str, Any]) -> int:
    """A batched engine's client connections: the locker, the listener and two
    spare; with ``write_row`` also one per worker, for the jobs' transactions."""
    if settings.get("write_row"):
        return int(settings["concurrency"]) + 2
    return 4


def missing_exports(names: Sequence[str]) -> str | None:
    """Why a runner needing these ``que`` names cannot run with this que, or None."""
    import que

    missing = [name for name in names if not hasattr(que, name)]
    if missing:
        return f"que {que.__version__} does not export {' and '.join(missing)} yet"
    return None


class QueProducer:
    """Enqueues through ``que.Client``; shared by every que runner."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Any = None
        self.job: Any = None

    def open(self) -> None:
        import que

        # Connected before the clock starts, as the raw-SQL producer is.
        self.client = que.Client.connect(self.url, min_connections=1, max_connections=1)
        self.job = que.Job

    def enqueue_one(self, seq: int, sent_at: float) -> None:
        self.client.enqueue(self.job(type=JOB_TYPE, args=[seq, sent_at]))

    def enqueue_urgent(self, seq: int, sent_at: float) -> None:
        self.client.enqueue(self.job(type=JOB_TYPE, args=[seq, sent_at], priority=1))

    def enqueue_batch(self, seqs: Sequence[int]) -> None:
        self.client.enqueue_many([self.job(type=JOB_TYPE, args=[seq, 0.0]) for seq in seqs])

    def close(self) -> None:
        self.client.close()
