"""The engine ``que worker`` runs, behind one small interface: a batch or classic
worker, on a sync Client or, when a work function is async, on an AsyncClient
in an event loop of its own, so the main thread is free to wait for signals."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from ._cli_app import WorkMap
from ._cli_database import Database
from ._cli_settings import WorkerSettings
from ._cli_support import UsageError
from ._timeouts import OverdueCallback
from ._work import is_async_callable
from .async_client import AsyncClient
from .async_engine import AsyncBatchWorker
from .async_scheduler import AsyncScheduler
from .async_worker import AsyncWorkerPool
from .client import Client
from .engine import BatchWorker
from .scheduler import Scheduler
from .worker import WorkerPool

T = TypeVar("T")


class Runner:
    """A worker of either engine on either side, and the scheduler of --schedules,
    behind start/shutdown/close."""

    is_async = False

    def __init__(
        self, client: Client, worker: BatchWorker | WorkerPool, scheduler: Scheduler | None
    ) -> None:
        self._client = client
        self._worker = worker
        self._scheduler = scheduler

    def start(self) -> None:
        self._worker.start()
        if self._scheduler is not None:
            self._scheduler.start()

    def shutdown(self, timeout: float) -> bool:
        if self._scheduler is not None:
            self._scheduler.shutdown(timeout)
        return self._worker.shutdown(timeout)

    def close(self) -> None:
        self._client.close()


class AsyncRunner(Runner):
    """Runs an async work map: an event loop in a thread of its own holds the
    AsyncClient and the async worker, while the main thread waits for signals."""

    is_async = True

    def __init__(
        self,
        settings: WorkerSettings,
        database: Database,
        work_map: WorkMap,
        on_overdue: OverdueCallback | None,
    ) -> None:
        self._on_overdue = on_overdue
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="que-asyncio", daemon=True
        )
        self._thread.start()
        try:
            self._aclient, self._aworker = self._call(self._open(settings, database, work_map))
            self._ascheduler = (
                AsyncScheduler(self._aclient, settings.schedules) if settings.schedules else None
            )
        except BaseException:
            self._stop_loop()
            raise

    async def _open(
        self, settings: WorkerSettings, database: Database, work_map: WorkMap
    ) -> tuple[AsyncClient, AsyncBatchWorker | AsyncWorkerPool]:
        client = await AsyncClient.connect(database.connector, **_client_options(settings))
        worker: AsyncBatchWorker | AsyncWorkerPool
        if settings.engine == "classic":
            worker = AsyncWorkerPool(client, work_map, settings.concurrency, **_where(settings))
        else:
            worker = AsyncBatchWorker(
                client, work_map, **_batch_options(settings, self._on_overdue)
            )
        return client, worker

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _start(self) -> None:
        self._aworker.start()
        if self._ascheduler is not None:
            self._ascheduler.start()

    async def _shutdown(self, timeout: float) -> bool:
        if self._ascheduler is not None:
            await self._ascheduler.shutdown(timeout)
        return await self._aworker.shutdown(timeout)

    def start(self) -> None:
        self._call(self._start())

    def shutdown(self, timeout: float) -> bool:
        return self._call(self._shutdown(timeout))

    def close(self) -> None:
        try:
            self._call(self._aclient.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def _client_options(settings: WorkerSettings) -> dict[str, Any]:
    return {
        "max_connections": settings.concurrency + 3,
        "pgbouncer": settings.pgbouncer,
        "listen_url": settings.listen_url,
    }


def _where(settings: WorkerSettings) -> dict[str, Any]:
    return {
        "queue": list(settings.queues),
        "interval": settings.interval,
        "max_attempts": settings.limits.default,
        "max_attempts_per_type": settings.limits.per_type,
        "dead_retention": settings.dead_retention,
    }


def _batch_options(settings: WorkerSettings, on_overdue: OverdueCallback | None) -> dict[str, Any]:
    return {
        **_where(settings),
        "concurrency": settings.concurrency,
        "buffer": settings.buffer,
        "timeout": settings.timeouts.default,
        "timeouts": settings.timeouts.per_type,
        "on_overdue": on_overdue,
    }


def make_runner(
    settings: WorkerSettings,
    database: Database,
    work_map: WorkMap,
    on_overdue: OverdueCallback | None = None,
) -> Runner:
    """The engine the settings ask for; the asyncio one when any work function is async."""
    if settings.timeouts.enabled and settings.engine == "classic":
        raise UsageError("--job-timeout needs the batch engine (drop --engine classic)")
    if any(is_async_callable(func) for func in work_map.values()):
        return AsyncRunner(settings, database, work_map, on_overdue)
    client = Client(database.connector, **_client_options(settings))
    try:
        worker: BatchWorker | WorkerPool
        if settings.engine == "classic":
            worker = WorkerPool(client, work_map, settings.concurrency, **_where(settings))
        else:
            worker = BatchWorker(client, work_map, **_batch_options(settings, on_overdue))
        scheduler = Scheduler(client, settings.schedules) if settings.schedules else None
    except BaseException:
        client.close()
        raise
    return Runner(client, worker, scheduler)
