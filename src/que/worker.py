# Generated from async_worker.py by scripts/generate_sync.py: edit that file, not this one.
"""Worker and WorkerPool: claim a job, run its work function, finish it, repeat.

On asyncio an
async work function is called on the loop and a sync one runs in a thread
(``asyncio.to_thread``), never on the loop; the sync face runs sync work
functions in its worker threads and refuses async ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from . import sql
from ._compat import (
    ASYNC,
    Background,
    Event,
    check_can_start,
    join,
    spawn,
    wait_event,
)
from ._jobs import id_array
from ._observe import observers
from ._outcomes import (
    DeadPurge,
    RetryLimits,
    check_limits,
    retention_seconds,
    settle,
)
from ._registry import attempts_per_type
from ._unique import unique_purge_due
from ._work import (
    Outcome,
    check_pool_count,
    check_work_map,
    log_loop_error,
    queue_names,
    retry_delay,
    wake_interval,
)
from .cancel import CancelWatch, purge_expired_dead_jobs
from .claimer import Claimer
from .client import Client
from .errors import QueError
from .job_handle import Job, finish, perform
from .unique import purge_stale_unique_keys

logger = logging.getLogger(__name__)

WorkFunc = Callable[[Job], Any]


class Worker:
    """Works jobs one at a time until ``shutdown()``.

    ``queue`` is a queue name or a list of them (default: QUE_QUEUE, names
    separated by commas, else ''); each queue is worked in Que's priority
    order, and the worker takes turns among them. ``interval`` (seconds slept
    when no queue has a due job) defaults to QUE_WAKE_INTERVAL (else 5). A work function that
    returns normally has its job deleted (unless it deleted it itself); one
    that raises has the failure recorded and the job retried after backoff;
    a job whose type is not in the map fails the same way.

    ``max_attempts`` (all types) and ``max_attempts_per_type`` (None: no
    limit, the default, as Ruby and Go behave) bury a job that fails that
    many times in que_dead_jobs; so does ``que.Discard``, and a cancel request
    for a running job that does not finish. ``que.Snooze(seconds)`` runs a
    job again later. ``dead_retention`` (a timedelta or seconds) deletes dead
    jobs older than that, every ten minutes. Retry limits need the que-pg
    extension (``que migrate``).

    A paused queue (``client.pause_queue``, ``que pause``) is skipped: the
    worker looks at most once a second (its client shares the answer among
    its workers) and claims from it again within about a second of
    ``resume_queue``. Pauses need version 2 of the extension; without it
    the worker does not look.
    """

    def __init__(
        self,
        client: Client,
        work_map: dict[str, WorkFunc],
        *,
        queue: str | Sequence[str] | None = None,
        interval: float | None = None,
        max_attempts: int | None = None,
        max_attempts_per_type: Mapping[str, int | None] | None = None,
        dead_retention: timedelta | float | None = None,
        cancel_watch: CancelWatch | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"Worker needs a que.Client, not {type(client).__name__}")
        self.client = client
        self.work_map = check_work_map(work_map, worker="Worker", allow_async=ASYNC)
        self.queues = queue_names(queue)
        self.limits = RetryLimits(
            max_attempts, attempts_per_type(self.work_map, max_attempts_per_type)
        )
        self._dead_purge = DeadPurge(retention_seconds(dead_retention))
        # A pool's workers share one watch.
        self._cancel_watch = cancel_watch or CancelWatch(client.connections)
        # Keeps the session between jobs (two statements a job); behind
        # PgBouncer each claim is a transaction of its own instead.
        self._claimer = None if client.pgbouncer else Claimer(client)
        self._turn = 0
        self.interval = wake_interval(interval)
        self._stop = Event()
        self._idle = Event()
        self._idle.set()

    def work(self) -> None:
        """Claim and run jobs until ``shutdown()``; database errors are logged and retried."""
        self.client.connections.check_open()
        check_limits(self.limits, self.client.extension_version)
        if not self._idle.is_set():
            raise QueError("this Worker is already working; run one work() per worker")
        self._idle.clear()
        failures = 0
        watching = self.client.extension_version > 0
        self.client.pauses.watch(self.queues)
        try:
            self.client.connections.reserve(1)
            if watching:
                self._cancel_watch.start()
            while not self._stop.is_set():
                try:
                    if watching and self._dead_purge.ready(time.monotonic()):
                        with self.client.connections.cursor() as cur:
                            purge_expired_dead_jobs(cur.connection, self._dead_purge)
                    purge = self.client.unique_purge
                    if unique_purge_due(self.client.extension_version, purge, time.monotonic()):
                        with self.client.connections.cursor() as cur:
                            purge_stale_unique_keys(cur.connection, purge)
                    worked = self._work_next()
                    if not worked:
                        self._settle()
                except Exception as exc:  # logged and retried: a worker never dies silently
                    self._settle_or_drop()
                    failures += 1
                    delay = retry_delay(failures, self.interval)
                    log_loop_error(logger, self.queues, exc, failures, delay)
                    observers.loop_error("worker", exc)
                    wait_event(self._stop, delay)
                    continue
                failures = 0
                if not worked:
                    wait_event(self._stop, self._idle_seconds())
        finally:
            self._settle_or_drop()
            if watching:
                self._cancel_watch.stop()
            self.client.connections.unreserve(1)
            self._idle.set()

    @property
    def queue(self) -> str:
        """The first of ``queues``."""
        return self.queues[0]

    def work_one(self) -> bool:
        """Claim one job and run it. False when no queue had a job due.

        The queues take turns: each call starts with the one after the queue
        tried first last time, so a busy queue never starves the others.
        Paused queues are skipped."""
        try:
            worked = self._work_next()
        except BaseException:
            self._drop_session()
            raise
        self._settle()
        return worked

    def _work_next(self) -> bool:
        """``work_one`` without the last writes: the job's delete and unlock
        may still be owed on the claimer's session (see ``_settle``)."""
        count = len(self.queues)
        paused = self.client.pauses.paused()
        for _ in range(count):
            queue = self.queues[self._turn % count]
            self._turn += 1
            if queue in paused:
                continue
            if self._claimer is None:
                job = self.client.lock_job(queue)
            else:
                job = self._claimer.claim(queue)
            if job is not None:
                with job:
                    self._perform(job)
                return True
        return False

    def _idle_seconds(self) -> float:
        """How long to sleep when no job was due: the wake interval, but no
        longer than a pause check period while one of the queues is paused, so
        a resume is noticed within about a second."""
        pauses = self.client.pauses
        if any(pauses.is_paused(queue) for queue in self.queues):
            return min(self.interval, pauses.period)
        return self.interval

    def _perform(self, job: Job) -> None:
        handle = job._claimed()
        error_count = job.error_count
        self._cancel_watch.watch(handle)
        try:
            verdict = perform(job, self.work_map.get(job.type), None, None)
        finally:
            self._cancel_watch.unwatch(handle)
        verdict = settle(
            verdict,
            job.type,
            error_count,
            self.limits,
            cancelled=handle.cancelled,
            extension=self.client.extension_version > 0,
        )
        if handle.cancelled:  # the request is answered: forget it before the row goes
            with self.client.connections.cursor() as cur:
                cur.execute(sql.FORGET_CANCEL_REQUESTS, {"ids": id_array([job.id or 0])})
        if verdict.outcome is Outcome.DELETE and self._claimer is not None:
            self._claimer.owe_delete(job)  # written with the next claim
        else:
            finish(job, verdict)

    def _settle(self) -> None:
        """Write the last job's owed delete and unlock, and give its session back."""
        if self._claimer is not None:
            self._claimer.settle()

    def _drop_session(self) -> None:
        if self._claimer is not None:
            self._claimer.drop()

    def _settle_or_drop(self) -> None:
        """``_settle`` after an error or as the worker stops, logging a failure:
        the claimer has closed the session then, which releases its locks (a
        delete it owed is lost: that job runs again)."""
        try:
            self._settle()
        except Exception as exc:
            logger.warning("could not write the last job's delete and unlock: %s", exc)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop claiming, let the running job finish, and wait for ``work()`` to return.

        Returns False if ``timeout`` seconds passed first; at once for a worker
        that is not working.
        """
        self._stop.set()
        return wait_event(self._idle, timeout)

    @property
    def working(self) -> bool:
        """True while ``work()`` runs."""
        return not self._idle.is_set()

    @property
    def stopping(self) -> bool:
        """True once ``shutdown()`` was asked for."""
        return self._stop.is_set()


class WorkerPool:
    """``count`` AsyncWorkers on one queue, each in a task of its own (a thread on
    the sync face)."""

    def __init__(
        self,
        client: Client,
        work_map: dict[str, WorkFunc],
        count: int = 1,
        *,
        queue: str | Sequence[str] | None = None,
        interval: float | None = None,
        max_attempts: int | None = None,
        max_attempts_per_type: Mapping[str, int | None] | None = None,
        dead_retention: timedelta | float | None = None,
    ) -> None:
        if not isinstance(client, Client):
            raise TypeError(f"WorkerPool needs a que.Client, not {type(client).__name__}")
        check_pool_count(count, client.connections.limit)
        watch = CancelWatch(client.connections)
        self.workers = [
            Worker(
                client,
                work_map,
                queue=queue,
                interval=interval,
                max_attempts=max_attempts,
                max_attempts_per_type=max_attempts_per_type,
                # One worker purges for the pool.
                dead_retention=dead_retention if number == 0 else None,
                cancel_watch=watch,
            )
            for number in range(count)
        ]
        self._tasks: list[Background] = []

    def start(self) -> None:
        """Start every worker in the background."""
        if self._tasks:
            raise QueError("this WorkerPool was already started")
        # Checked before any worker coroutine exists, so none is left never called.
        check_can_start("WorkerPool.start()")
        for number, worker in enumerate(self.workers):
            self._tasks.append(spawn(_keep_working(worker), f"que-worker-{number}"))

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop every worker, letting running jobs finish; False if ``timeout`` ran out."""
        for worker in self.workers:
            worker._stop.set()
        stuck = join(self._tasks, timeout)
        if stuck:
            logger.warning("shutdown timed out; still working: %s", ", ".join(stuck))
        return not stuck


def _keep_working(worker: Worker) -> Callable[[], Any]:
    """What a pool runs in the background for one worker."""

    def run() -> None:
        # KeyboardInterrupt and SystemExit can only reach a worker thread
        # from a work function: its job was given back untouched (it runs
        # again), and the thread carries on instead of dying silently.
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

    return run
