"""This library's one-job-per-claim path on asyncio: ``que.AsyncWorkerPool`` tasks.

The asyncio twin of que_classic: each task claims one job with the
advisory-lock walk, runs it, deletes it and unlocks it. Enqueue goes
through ``que.AsyncClient``. Skipped with a "not available" line until the
package exports both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bench.systems.base import System, WorkerContext, decode_pair
from bench.systems.que_classic import JOB_TYPE, install_que, missing_exports

NEEDED = ("AsyncClient", "AsyncWorkerPool")


class QueClassicAsync(System):
    name = "que_classic_async"
    label = "que: AsyncWorkerPool tasks, one job per claim (psycopg 3 async)"
    rank = 31
    # Not asked for by default: the sync que_classic is the compatibility baseline.
    default = False
    packages = ("que-pg", "psycopg", "psycopg-binary", "psycopg-pool")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # Worker tasks per process; each holds one pooled connection.
        "tasks": 8,
        # Seconds an idle worker sleeps between claims.
        "interval": 0.01,
        "uvloop": False,
        # One job per claim works some hundreds of jobs/s here: 50,000 would
        # take minutes per repetition. Its rate at 5,000 and at 50,000 jobs
        # measured about the same here.
        "max_jobs": 20_000,
        # Version of the optional que-pg extension (0: none).
        "extension": 0,
    }
    pending_sql = "SELECT count(*) FROM que_jobs"
    concurrency_key = "tasks"

    def unavailable(self) -> str | None:
        return missing_exports(NEEDED)

    def install(self, url: str) -> None:
        install_que(url, extension=int(self.settings["extension"]))

    def producer(self, url: str) -> QueAsyncProducer:
        return QueAsyncProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        self.run_async(self._work(url, ctx))

    async def _work(self, url: str, ctx: WorkerContext) -> None:
        import que

        io_wait = ctx.io_wait

        async def run(job: Any) -> None:
            if io_wait:
                await asyncio.sleep(io_wait)
            ctx.hit(*decode_pair(job.args))

        tasks = int(self.settings["tasks"])
        client = await que.AsyncClient.connect(url, max_connections=tasks)
        try:
            pool = que.AsyncWorkerPool(
                client, {JOB_TYPE: run}, tasks, interval=float(self.settings["interval"])
            )
            await ctx.ready_async()
            pool.start()
            await ctx.wait_stop()
            await pool.shutdown(timeout=30)
        finally:
            await client.close()


class QueAsyncProducer:
    """Enqueues through ``que.AsyncClient``; shared by the async que runners."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Any = None
        self.job: Any = None

    async def open(self) -> None:
        import que

        # Connected before the clock starts, as the raw-SQL producer is.
        self.client = await que.AsyncClient.connect(self.url, min_connections=1, max_connections=1)
        self.job = que.Job

    async def enqueue_one(self, seq: int, sent_at: float) -> None:
        await self.client.enqueue(self.job(type=JOB_TYPE, args=[seq, sent_at]))

    async def enqueue_urgent(self, seq: int, sent_at: float) -> None:
        await self.client.enqueue(self.job(type=JOB_TYPE, args=[seq, sent_at], priority=1))

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await self.client.enqueue_many([self.job(type=JOB_TYPE, args=[seq, 0.0]) for seq in seqs])

    async def close(self) -> None:
        await self.client.close()
