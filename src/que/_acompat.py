"""The asyncio side of the primitives the IO modules are written with.

The IO modules are written once, as asyncio code, against these names;
scripts/generate_sync.py makes their sync twins, which import the same names
from ``_compat`` (threads instead of tasks). These two small modules, and the
``if ASYNC:`` blocks in the sources, are the only places the faces differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import psycopg
import psycopg_pool

from ._timeouts import Watchdog, run_with_timeout
from ._work import is_async_callable
from .errors import JobCancelledError, QueError
from .job import BaseJob

ASYNC = True

Event = asyncio.Event
Queue = asyncio.Queue
QueueEmpty = asyncio.QueueEmpty
Cancelled = asyncio.CancelledError
Background = asyncio.Task[None]


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it was set."""
    if timeout is None:
        await event.wait()
        return True
    # asyncio.TimeoutError: what wait_for raises on Python 3.10, where it is
    # not yet the builtin TimeoutError (it is an alias from 3.11 on).
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(event.wait(), max(0.0, timeout))
    return event.is_set()


def being_cancelled() -> bool:
    """Whether the running task was asked to stop. A CancelledError that a work
    function raises without that (from a task of its own) is a job failure.
    Python 3.10 cannot tell: there, every CancelledError stops the task."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return cancelling is None or bool(cancelling())


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def check_can_start(what: str) -> None:
    """Raise a clear error when there is no running event loop to start tasks on."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise QueError(f"{what} needs a running event loop: call it from async code") from None


def spawn(func: Callable[[], Coroutine[Any, Any, None]], name: str) -> asyncio.Task[None]:
    """Run ``func()`` in the background: a task on the running loop."""
    return asyncio.get_running_loop().create_task(func(), name=name)


async def join(workers: list[asyncio.Task[None]], timeout: float | None) -> list[str]:
    """Wait for background work to end; the names of those still running after ``timeout``."""
    if not workers:
        return []
    _, pending = await asyncio.wait(workers, timeout=timeout)
    return [task.get_name() for task in workers if task in pending]


async def run_work(
    func: Callable[[Any], Any],
    job: BaseJob,
    limit: float | None,
    watchdog: Watchdog | None,
    on_start: Callable[[Callable[[], object]], None] | None = None,
    job_task: bool = False,
) -> Any:
    """Run a work function and return what it returned: an async one as a task
    of its own (cancelled past ``limit``, or when the function ``on_start``
    was given is called), a sync one in a thread (reported by ``watchdog``
    past ``limit``). ``job_task``: the calling task was made for this job
    alone, so an async function runs in it, which saves a task per job."""
    run = _run_here if job_task else _run_task
    if is_async_callable(func):
        return await run(_limited(func(job), job, limit), job, on_start)
    watchdog = None if limit is None else watchdog  # no limit: nothing to watch
    if watchdog is not None:
        watchdog.started(job)
    try:
        result = await asyncio.to_thread(func, job)
    finally:
        if watchdog is not None:
            watchdog.finished(job)
    if result is not None and inspect.isawaitable(result):  # a sync function's coroutine
        return await run(_limited(result, job, limit), job, on_start)
    return result


def _limited(work: Awaitable[Any], job: BaseJob, limit: float | None) -> Coroutine[Any, Any, Any]:
    """``work`` as a coroutine, cancelled past ``limit``; a coroutine with no
    limit is left as it is (one frame less on every step of the job)."""
    if limit is None and inspect.iscoroutine(work):
        return work
    return run_with_timeout(work, job, limit)


async def _run_here(
    work: Coroutine[Any, Any, Any],
    job: BaseJob,
    on_start: Callable[[Callable[[], object]], None] | None,
) -> Any:
    """Await ``work`` in the running task, which belongs to this job alone: a
    cancel request cancels that task while the work runs, and comes out as
    JobCancelledError; any other cancellation goes on as it came."""
    task = asyncio.current_task()
    assert task is not None
    running = stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            if running:
                task.cancel()

    if on_start is not None:
        on_start(stop)
    if stopped:  # asked before it started: it never starts
        work.close()
        raise _cancelled_on_request(job)
    running = True
    try:
        return await work
    except asyncio.CancelledError:
        if stopped and cancel_count(task) <= 1:  # the request's own, none from outside
            raise _cancelled_on_request(job) from None
        raise
    finally:
        running = False
        if stopped:
            _uncancel(task)


def cancel_count(task: asyncio.Task[Any]) -> int:
    """How many cancels ``task`` was asked for (0 where Python does not count
    them: 3.10, where a request cannot be told from a cancel from outside)."""
    cancelling = getattr(task, "cancelling", None)
    return 0 if cancelling is None else int(cancelling())


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Take back the one cancel a request made (Python 3.11 counts them; 3.10 does not)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


def _cancelled_on_request(job: BaseJob) -> JobCancelledError:
    return JobCancelledError(f"job {job.type} id={job.id} was cancelled on request")


async def _run_task(
    work: Coroutine[Any, Any, Any],
    job: BaseJob,
    on_start: Callable[[Callable[[], object]], None] | None,
) -> Any:
    task = asyncio.get_running_loop().create_task(_carried(work))
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        task.cancel()

    if on_start is not None:
        on_start(stop)
    try:
        result = await task
    except asyncio.CancelledError:
        if stopped and task.cancelled():
            # Cancelled on request, not the worker being stopped: a job outcome.
            raise _cancelled_on_request(job) from None
        raise
    if isinstance(result, _Interrupt):
        raise result.exc
    return result


class _Interrupt:
    """A KeyboardInterrupt or SystemExit from a work function, carried out of its
    task: raised inside a task, asyncio would hand it to the event loop itself."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _carried(work: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await work
    except (KeyboardInterrupt, SystemExit) as exc:
        return _Interrupt(exc)


# The other face, for the checks that refuse its types with a clear message.
OTHER_CLIENT = "que.Client"
OtherConnection = psycopg.Connection
OtherPool = psycopg_pool.ConnectionPool
# The connections of an application this face runs statements on (the
# caller's connection of enqueue and job.delete), and the other face's.
CALLER_CONNECTIONS = (
    "a psycopg.AsyncConnection, an asyncpg connection, "
    "or a SQLAlchemy AsyncConnection or AsyncSession"
)
OTHER_FACE_MODULES = ("psycopg2", "django", "sqlalchemy.engine", "sqlalchemy.orm")
