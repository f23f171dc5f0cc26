"""pgqueuer with its documented fast settings.

Workers: several ``QueueManager``s per process, each on its own asyncpg
connection (its recommended driver, and a dedicated connection per manager
as its tuning guide advises), dequeuing ``batch_size`` jobs per round trip
with ``FOR UPDATE SKIP LOCKED``, on uvloop, with an async entrypoint (sync
ones are sent to a thread pool). Each manager runs every job it fetched at
once, as a task, unless ``max_concurrent_tasks`` caps its jobs in flight
(the io scenario needs that cap: it is what sets the ideal rate). Its
recommended autovacuum settings are applied after install. Durability
stays at its default (``durable``, all tables logged), the same as every
other system here.
Enqueue: ``Queries.enqueue`` with one job, or with lists for a batch.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from bench.systems.base import System, WorkerContext, decode_pair

ENTRYPOINT = "bench"


class PgQueuerSystem(System):
    name = "pgqueuer"
    label = "pgqueuer: QueueManagers on asyncpg, batched dequeue, uvloop"
    rank = 40
    packages = ("pgqueuer", "asyncpg", "uvloop")
    defaults: ClassVar[Mapping[str, Any]] = {
        "processes": 1,
        # QueueManagers per process, one asyncpg connection each.
        "managers": 2,
        # Jobs fetched per dequeue round trip (its default is 10).
        "batch_size": 200,
        "uvloop": True,
        # Run its documented autovacuum tuning after install.
        "autovac": True,
        # Jobs in flight per manager (its run(max_concurrent_tasks=...); at
        # least twice batch_size); None: unbounded, its default.
        "max_concurrent_tasks": None,
    }
    pending_sql = "SELECT count(*) FROM pgqueuer WHERE status IN ('queued', 'picked')"
    concurrency_key = "max_concurrent_tasks"

    def concurrency(self) -> int | None:
        per_manager = super().concurrency()
        if per_manager is None:
            return None
        return per_manager * int(self.settings["managers"])

    def install(self, url: str) -> None:
        async def install() -> None:
            import asyncpg  # type: ignore[import-untyped]
            from pgqueuer import AsyncpgDriver, Queries

            conn = await asyncpg.connect(dsn=url)
            try:
                queries = Queries(AsyncpgDriver(conn))
                await queries.install()
                if self.settings["autovac"]:
                    await queries.optimize_autovacuum()
            finally:
                await conn.close()

        self.run_async(install())

    def producer(self, url: str) -> PgQueuerProducer:
        return PgQueuerProducer(url)

    def work(self, url: str, ctx: WorkerContext) -> None:
        self.run_async(self._work(url, ctx))

    async def _work(self, url: str, ctx: WorkerContext) -> None:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

        io_wait = ctx.io_wait

        async def bench(job: Job) -> None:
            assert job.payload is not None
            if io_wait:
                await asyncio.sleep(io_wait)
            ctx.hit(*decode_pair(json.loads(job.payload)))

        conns = [await asyncpg.connect(dsn=url) for _ in range(int(self.settings["managers"]))]
        managers = []
        for conn in conns:
            manager = QueueManager(Queries(AsyncpgDriver(conn)))
            manager.entrypoint(ENTRYPOINT)(bench)
            managers.append(manager)
        await ctx.ready_async()
        batch_size = int(self.settings["batch_size"])
        cap = self.settings["max_concurrent_tasks"]
        tasks = [
            asyncio.create_task(
                manager.run(
                    batch_size=batch_size,
                    dequeue_timeout=timedelta(seconds=5),
                    max_concurrent_tasks=None if cap is None else int(cap),
                )
            )
            for manager in managers
        ]
        await ctx.wait_stop()
        for manager in managers:
            manager.shutdown.set()
        await asyncio.gather(*tasks)
        for conn in conns:
            await conn.close()


def _payload(seq: int, sent_at: float) -> bytes:
    return json.dumps([seq, sent_at]).encode()


class PgQueuerProducer:
    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = None
        self.queries: Any = None

    async def open(self) -> None:
        import asyncpg
        from pgqueuer import AsyncpgDriver, Queries

        self.conn = await asyncpg.connect(dsn=self.url)
        self.queries = Queries(AsyncpgDriver(self.conn))

    async def enqueue_one(self, seq: int, sent_at: float) -> None:
        await self.queries.enqueue(ENTRYPOINT, _payload(seq, sent_at))

    async def enqueue_urgent(self, seq: int, sent_at: float) -> None:
        # pgqueuer takes the highest priority first; batches go at 0.
        await self.queries.enqueue(ENTRYPOINT, _payload(seq, sent_at), priority=100)

    async def enqueue_batch(self, seqs: Sequence[int]) -> None:
        await self.queries.enqueue(
            [ENTRYPOINT] * len(seqs),
            [_payload(seq, 0.0) for seq in seqs],
            [0] * len(seqs),
        )

    async def close(self) -> None:
        await self.conn.close()
