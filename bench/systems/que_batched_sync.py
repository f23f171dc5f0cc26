"""This library's batched engine, sync face: ``que.BatchWorker``.

One locker session claims batches of jobs with the advisory-lock walk and
feeds worker threads; finished jobs are deleted in one statement and then
unlocked; a listener session wakes the locker on NOTIFY, for which the
optional wake-up trigger is installed next to the schema.

Skipped with a "not available" line until the package exports the engine.
The engine is built in ``_make_engine``, the one place to adjust if its
constructor changes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from bench.systems.base import System, WorkerContext, decode_pair
from bench.systems.que_classic import (
    INSERT_EFFECT,
    JOB_TYPE,
    QueProducer,
    connections_for,
    create_effects_table,
    install_que,
    missing_exports,
)

ENGINE = "BatchWorker"


class QueBatchedSync(System):
    name = "que_batched_sync"
    label = "que: batched engine (BatchWorker), worker threads, LISTEN/NOTIFY"
    rank = 20
    packages = ("que-pg", "psycopg", "psycopg-binary", "psycopg-pool")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # Worker threads per process, fed by one locker session.
        "concurrency": 8,
        # Jobs claimed beyond the free threads (None: the engine's default).
        "buffer": None,
        # Wake on NOTIFY (installs que's optional trigger); polling otherwise.
        "listen": True,
        # Version of the optional que-pg extension installed beside que_jobs
        # (0: none). Version 2 adds an index on que_jobs (job_id).
        "extension": 0,
        # Each job inserts one row through its own transaction (job.tx), which
        # commits with its delete: one commit per job.
        "write_row": False,
        # False: those transactions commit asynchronously (the engine's
        # synchronous_commit option; see docs/reliability.md).
        "synchronous_commit": True,
    }
    pending_sql = "SELECT count(*) FROM que_jobs"
    concurrency_key = "concurrency"

    def unavailable(self) -> str | None:
        return missing_exports((ENGINE, "install_notify"))

    def install(self, url: str) -> None:
        install_que(
            url, notify=bool(self.settings["listen"]), extension=int(self.settings["extension"])
        )
        if self.settings["write_row"]:
            create_effects_table(url)

    def producer(self, url: str) -> QueProducer:
        return QueProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        import que

        write = bool(self.settings["write_row"])
        io_wait = ctx.io_wait

        def run(job: que.Job) -> None:
            seq, sent_at = decode_pair(job.args)
            if write:
                job.tx.execute(INSERT_EFFECT, [seq], prepare=True)
            if io_wait:
                time.sleep(io_wait)
            ctx.hit(seq, sent_at)

        with que.Client(url, max_connections=connections_for(self.settings)) as client:
            engine = _make_engine(client, {JOB_TYPE: run}, self.settings)
            ctx.ready()
            engine.start()
            ctx.stop.wait()
            engine.shutdown(timeout=30)


def _make_engine(client: Any, work_map: dict[str, Any], settings: Mapping[str, Any]) -> Any:
    import que

    options: dict[str, Any] = {
        "concurrency": int(settings["concurrency"]),
        "listen": bool(settings["listen"]),
    }
    if settings["buffer"] is not None:
        options["buffer"] = int(settings["buffer"])
    if not settings["synchronous_commit"]:
        options["synchronous_commit"] = False
    try:
        return getattr(que, ENGINE)(client, work_map, **options)
    except TypeError as exc:
        raise TypeError(
            f"que.{ENGINE} does not take the arguments bench/systems/que_batched_sync.py "
            f"passes it ({exc}); adjust _make_engine there"
        ) from exc
