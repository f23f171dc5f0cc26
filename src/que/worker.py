"""Worker and WorkerPool: claim a job, run its work function, finish it, repeat."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from ._work import (
    awaitable_message,
    check_pool_count,
    check_work_map,
    failure_message,
    log_loop_error,
    log_outcome,
    queue_name,
    retry_delay,
    unknown_type_message,
    wake_interval,
)
from .client import Client
from .errors import QueError
from .job import Job

logger = logging.getLogger(__name__)

WorkFunc = Callable[[Job], Any]


class Worker:
    """Works jobs of one queue, one at a time, until ``shutdown()``.

    ``queue`` defaults to QUE_QUEUE (else ''), ``interval`` (seconds slept when
    the queue is empty) to QUE_WAKE_INTERVAL (else 5). A work function that
    returns normally has its job deleted (unless it deleted it itself); one
    that raises has the failure recorded and the job retried after backoff;
    a job whose type is not in the map fails the same way.
    """

    def __init__(
        self,
        client: Client,
        work_map: dict[str, WorkFunc],
        *,
        queue: str | None = None,
        interval: float | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"Worker needs a que.Client, not {type(client).__name__}")
        self.client = client
        self.work_map = check_work_map(work_map, worker="Worker", allow_async=False)
        self.queue = queue_name(queue)
        self.interval = wake_interval(interval)
        self._stop = threading.Event()
        self._state = threading.Condition()
        self._running = False

    def work(self) -> None:
        """Claim and run jobs until ``shutdown()``; database errors are logged and retried."""
        with self._state:
            if self._running:
                raise QueError("this Worker is already working; create one Worker per thread")
            self._running = True
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    worked = self.work_one()
                except (psycopg.Error, QueError) as exc:
                    failures += 1
                    delay = retry_delay(failures, self.interval)
                    log_loop_error(logger, self.queue, exc, failures, delay)
                    self._stop.wait(delay)
                    continue
                failures = 0
                if not worked:
                    self._stop.wait(self.interval)
        finally:
            with self._state:
                self._running = False
                self._state.notify_all()

    def work_one(self) -> bool:
        """Claim one job and run it. False when no job was due."""
        job = self.client.lock_job(self.queue)
        if job is None:
            return False
        with job:
            self._perform(job)
        return True

    def _perform(self, job: Job) -> None:
        started = time.monotonic()
        func = self.work_map.get(job.type)
        if func is None:
            job.error(unknown_type_message(job.type))
            log_outcome(job, started, "unknown type")
            return
        try:
            result = func(job)
            if inspect.isawaitable(result):
                _discard_awaitable(result)
                raise TypeError(awaitable_message(job.type))
        except Exception as exc:
            job.error(failure_message(exc))
            log_outcome(job, started, f"failed: {type(exc).__name__}: {exc}")
            return
        if not job.deleted:
            job.delete()
        log_outcome(job, started, "done")

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop claiming, let the running job finish, and wait for ``work()`` to return.

        Returns False if ``timeout`` seconds passed first. Returns at once for
        a worker that is not working.
        """
        self._stop.set()
        with self._state:
            return self._state.wait_for(lambda: not self._running, timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()


class WorkerPool:
    """``count`` Workers on one queue, each in its own thread."""

    def __init__(
        self,
        client: Client,
        work_map: dict[str, WorkFunc],
        count: int = 1,
        *,
        queue: str | None = None,
        interval: float | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"WorkerPool needs a que.Client, not {type(client).__name__}")
        check_pool_count(count, client.max_connections)
        self.workers = [
            Worker(client, work_map, queue=queue, interval=interval) for _ in range(count)
        ]
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start every worker in a daemon thread."""
        if self._threads:
            raise QueError("this WorkerPool was already started")
        for number, worker in enumerate(self.workers):
            thread = threading.Thread(
                target=_keep_working, args=(worker,), name=f"que-worker-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop every worker, letting running jobs finish; False if ``timeout`` ran out."""
        for worker in self.workers:
            worker._stop.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        stuck = [t.name for t in self._threads if t.is_alive()]
        if stuck:
            logger.warning("shutdown timed out; still working: %s", ", ".join(stuck))
        return not stuck


def _keep_working(worker: Worker) -> None:
    """A pool thread's loop. KeyboardInterrupt and SystemExit can only reach a
    thread from a work function: the job has been given back untouched (it
    runs again), and the thread carries on instead of dying silently."""
    while True:
        try:
            worker.work()
            return
        except (KeyboardInterrupt, SystemExit) as exc:
            logger.error(
                "a work function raised %s; its job was given back and the worker goes on",
                type(exc).__name__,
            )
            if worker.stopping:
                return


def _discard_awaitable(result: object) -> None:
    close = getattr(result, "close", None)
    if callable(close):
        close()  # a coroutine never awaited: close it so no warning is raised later
