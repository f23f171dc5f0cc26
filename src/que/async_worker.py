"""AsyncWorker and AsyncWorkerPool: the asyncio twins of Worker and WorkerPool.

Async work functions are awaited on the event loop; a sync work function
runs in a thread (``asyncio.to_thread``), never on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ._work import (
    check_pool_count,
    check_work_map,
    failure_message,
    is_async_callable,
    log_loop_error,
    log_outcome,
    queue_name,
    retry_delay,
    unknown_type_message,
    wake_interval,
)
from .async_client import AsyncClient
from .errors import QueError
from .job import AsyncJob

logger = logging.getLogger(__name__)

AsyncWorkFunc = Callable[[AsyncJob], Any]


class AsyncWorker:
    """Works jobs of one queue, one at a time, until ``shutdown()``; see Worker."""

    def __init__(
        self,
        client: AsyncClient,
        work_map: dict[str, AsyncWorkFunc],
        *,
        queue: str | None = None,
        interval: float | None = None,
    ) -> None:
        if not isinstance(client, AsyncClient):
            raise TypeError(f"AsyncWorker needs a que.AsyncClient, not {type(client).__name__}")
        self.client = client
        self.work_map = check_work_map(work_map, worker="AsyncWorker", allow_async=True)
        self.queue = queue_name(queue)
        self.interval = wake_interval(interval)
        self._stop = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    async def work(self) -> None:
        """Claim and run jobs until ``shutdown()``; database errors are logged and retried."""
        self.client._check_open()
        if not self._idle.is_set():
            raise QueError("this AsyncWorker is already working; create one per task")
        self._idle.clear()
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    worked = await self.work_one()
                except (psycopg.Error, QueError) as exc:
                    failures += 1
                    delay = retry_delay(failures, self.interval)
                    log_loop_error(logger, self.queue, exc, failures, delay)
                    await self._sleep(delay)
                    continue
                failures = 0
                if not worked:
                    await self._sleep(self.interval)
        finally:
            self._idle.set()

    async def work_one(self) -> bool:
        """Claim one job and run it. False when no job was due."""
        job = await self.client.lock_job(self.queue)
        if job is None:
            return False
        async with job:
            await self._perform(job)
        return True

    async def _perform(self, job: AsyncJob) -> None:
        started = time.monotonic()
        func = self.work_map.get(job.type)
        if func is None:
            await job.error(unknown_type_message(job.type))
            log_outcome(job, started, "unknown type")
            return
        try:
            if is_async_callable(func):
                result = await func(job)
            else:
                result = await asyncio.to_thread(func, job)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            await job.error(failure_message(exc))
            log_outcome(job, started, f"failed: {type(exc).__name__}: {exc}")
            return
        if not job.deleted:
            await job.delete()
        log_outcome(job, started, "done")

    async def _sleep(self, seconds: float) -> None:
        # asyncio.TimeoutError: what wait_for raises on Python 3.10, where it
        # is not yet the builtin TimeoutError (it is an alias from 3.11 on).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop claiming, let the running job finish, and wait for ``work()`` to return.

        Returns False if ``timeout`` seconds passed first; at once for a worker
        that is not working.
        """
        self._stop.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class AsyncWorkerPool:
    """``count`` AsyncWorkers on one queue, each in its own task."""

    def __init__(
        self,
        client: AsyncClient,
        work_map: dict[str, AsyncWorkFunc],
        count: int = 1,
        *,
        queue: str | None = None,
        interval: float | None = None,
    ) -> None:
        if not isinstance(client, AsyncClient):
            raise TypeError(f"AsyncWorkerPool needs a que.AsyncClient, not {type(client).__name__}")
        check_pool_count(count, client.max_connections)
        self.workers = [
            AsyncWorker(client, work_map, queue=queue, interval=interval) for _ in range(count)
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every worker as a task on the running event loop."""
        if self._tasks:
            raise QueError("this AsyncWorkerPool was already started")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Checked before any worker coroutine exists, so none is left never awaited.
            raise QueError(
                "AsyncWorkerPool.start() needs a running event loop: call it from async code"
            ) from None
        for number, worker in enumerate(self.workers):
            task = loop.create_task(worker.work(), name=f"que-async-worker-{number}")
            task.add_done_callback(_log_crash)
            self._tasks.append(task)

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop every worker, letting running jobs finish; False if ``timeout`` ran out."""
        for worker in self.workers:
            worker._stop.set()
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(self._tasks, timeout=timeout)
        if pending:
            names = ", ".join(t.get_name() for t in pending)
            logger.warning("shutdown timed out; still working: %s", names)
        return not pending


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "%s stopped on an unexpected error", task.get_name(), exc_info=task.exception()
        )
