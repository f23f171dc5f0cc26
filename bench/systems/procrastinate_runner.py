"""procrastinate with its documented fast settings.

Workers: one asyncio worker per process (``App.run_worker_async``) running
an async task with ``concurrency`` jobs in flight, on the async psycopg
connector (the one its docs recommend), LISTEN/NOTIFY on, and
``delete_jobs="always"`` so finished rows leave the table as que's do.
Schema: its own ``SchemaManager.apply_schema_async``.
Enqueue: ``Task.defer_async`` and ``Task.batch_defer_async``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from bench.systems.base import System, WorkerContext

if TYPE_CHECKING:
    import procrastinate

TASK_NAME = "bench"


class ProcrastinateSystem(System):
    name = "procrastinate"
    label = "procrastinate: async worker, concurrency N, async psycopg connector"
    rank = 41
    packages = ("procrastinate", "psycopg", "psycopg-pool")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # Jobs one worker runs at once (async tasks).
        "concurrency": 10,
        "uvloop": False,
        # It works ~200 jobs/s here: 50,000 would take minutes per repetition.
        # A smaller table can only help it, so the ratios stay conservative.
        "max_jobs": 5_000,
        # Largest connection pool: it wants concurrency + 4 (every finishing
        # job writes through one), which at a high concurrency would pass the
        # server's max_connections; finishing jobs then wait for a connection.
        "max_pool": 100,
    }
    pending_sql = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
    concurrency_key = "concurrency"

    def install(self, url: str) -> None:
        async def install() -> None:
            app = _app(url, pool_size=1)
            async with app.open_async():
                await app.schema_manager.apply_schema_async()

        self.run_async(install())

    def producer(self, url: str) -> ProcrastinateProducer:
        return ProcrastinateProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        self.run_async(self._work(url, ctx))

    async def _work(self, url: str, ctx: WorkerContext) -> None:
        concurrency = int(self.settings["concurrency"])
        # Fetchers, finishers, the listener and the heartbeat each want a connection.
        app = _app(url, pool_size=min(concurrency + 4, int(self.settings["max_pool"])))
        io_wait = ctx.io_wait

        @app.task(name=TASK_NAME)
        async def bench(seq: int, sent_at: float) -> None:
            if io_wait:
                await asyncio.sleep(io_wait)
            ctx.hit(seq, sent_at)

        async with app.open_async():
            await ctx.ready_async()
            worker = asyncio.create_task(
                app.run_worker_async(
                    concurrency=concurrency,
                    wait=True,
                    listen_notify=True,
                    delete_jobs="always",
                    install_signal_handlers=False,
                )
            )
            await ctx.wait_stop()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker


def _app(url: str, *, pool_size: int) -> procrastinate.App:
    import procrastinate

    connector = procrastinate.PsycopgConnector(conninfo=url, min_size=1, max_size=pool_size)
    return procrastinate.App(connector=connector)


class ProcrastinateProducer:
    def __init__(self, url: str) -> None:
        self.app = _app(url, pool_size=1)
        self.task: Any = None

    async def open(self) -> None:
        await self.app.open_async()

        @self.app.task(name=TASK_NAME)
        async def bench(seq: int, sent_at: float) -> None:
            raise AssertionError("the producer never runs jobs")

        self.task = bench

    async def enqueue_one(self, seq: int, sent_at: float) -> None:
        await self.task.defer_async(seq=seq, sent_at=sent_at)

    async def enqueue_urgent(self, seq: int, sent_at: float) -> None:
        # procrastinate takes the highest priority first; the default is 0.
        await self.task.configure(priority=100).defer_async(seq=seq, sent_at=sent_at)

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await self.task.batch_defer_async(*({"seq": seq, "sent_at": 0.0} for seq in seqs))

    async def close(self) -> None:
        await self.app.close_async()
