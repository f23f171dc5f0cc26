"""This library's batched engine on asyncio: ``que.AsyncBatchWorker``.

The asyncio face of que_batched_sync: one locker session claims batches
for worker tasks, completions are deleted in one statement and then
unlocked, NOTIFY wakes the locker. Enqueue goes through ``que.AsyncClient``.

Skipped with a "not available" line until the package exports the engine.
The engine is built in ``_make_engine``, the one place to adjust if its
constructor differs from the one assumed here (``start``/``shutdown`` may
be plain or coroutine methods: both are handled).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

from bench.systems.base import System, WorkerContext, decode_pair
from bench.systems.que_classic import (
    INSERT_EFFECT,
    JOB_TYPE,
    connections_for,
    create_effects_table,
    install_que,
    missing_exports,
)
from bench.systems.que_classic_async import QueAsyncProducer

ENGINE = "AsyncBatchWorker"


class QueBatchedAsync(System):
    name = "que_batched_async"
    label = "que: batched engine on asyncio (AsyncBatchWorker), LISTEN/NOTIFY"
    rank = 21
    packages = ("que-pg", "psycopg", "psycopg-binary", "psycopg-pool")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # Jobs in flight per process (asyncio tasks), fed by one locker session.
        "concurrency": 16,
        # Jobs claimed beyond the free tasks (None: the engine's default).
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
        "uvloop": False,
    }
    pending_sql = "SELECT count(*) FROM que_jobs"
    concurrency_key = "concurrency"

    def unavailable(self) -> str | None:
        return missing_exports(("AsyncClient", ENGINE, "install_notify"))

    def install(self, url: str) -> None:
        install_que(
            url, notify=bool(self.settings["listen"]), extension=int(self.settings["extension"])
        )
        if self.settings["write_row"]:
            create_effects_table(url)

    def producer(self, url: str) -> QueAsyncProducer:
        return QueAsyncProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        self.run_async(self._work(url, ctx))

    async def _work(self, url: str, ctx: WorkerContext) -> None:
        import que

        write = bool(self.settings["write_row"])
        io_wait = ctx.io_wait

        async def run(job: Any) -> None:
            seq, sent_at = decode_pair(job.args)
            if write:
                tx = await job.transaction()
                await tx.execute(INSERT_EFFECT, [seq], prepare=True)
            if io_wait:
                await asyncio.sleep(io_wait)
            ctx.hit(seq, sent_at)

        client = await que.AsyncClient.connect(url, max_connections=connections_for(self.settings))
        try:
            engine = _make_engine(client, {JOB_TYPE: run}, self.settings)
            await ctx.ready_async()
            await _maybe_await(engine.start())
            await ctx.wait_stop()
            await _maybe_await(engine.shutdown(timeout=30))
        finally:
            await client.close()


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
            f"que.{ENGINE} does not take the arguments bench/systems/que_batched_async.py "
            f"passes it ({exc}); adjust _make_engine there"
        ) from exc


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
