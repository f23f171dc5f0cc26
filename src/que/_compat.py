"""The sync side of the primitives the IO modules are written with: threads.

See ``_acompat``: the generated sync modules import these names instead.
"""

from __future__ import annotations

import inspect
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg_pool

from ._timeouts import Watchdog
from ._work import awaitable_message
from .job import BaseJob

ASYNC = False

Event = threading.Event
Queue = queue.SimpleQueue
QueueEmpty = queue.Empty
Background = threading.Thread


class Cancelled(BaseException):
    """Never raised: a thread cannot be cancelled (asyncio's CancelledError on the other face)."""


def wait_event(event: threading.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; whether it was set."""
    return event.wait(None if timeout is None else max(0.0, timeout))


def being_cancelled() -> bool:
    """A thread is never cancelled (see ``_acompat``)."""
    return False


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def check_can_start(what: str) -> None:
    """Threads can start anywhere."""


def spawn(func: Callable[[], None], name: str) -> threading.Thread:
    """Run ``func()`` in the background: a daemon thread."""
    thread = threading.Thread(target=func, name=name, daemon=True)
    thread.start()
    return thread


def join(workers: list[threading.Thread], timeout: float | None) -> list[str]:
    """Wait for background work to end; the names of those still running after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in workers:
        if thread is not threading.current_thread():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return [t.name for t in workers if t.is_alive() and t is not threading.current_thread()]


def run_work(
    func: Callable[[Any], Any],
    job: BaseJob,
    limit: float | None,
    watchdog: Watchdog | None,
    on_start: Callable[[Callable[[], object]], None] | None = None,
    job_task: bool = False,
) -> Any:
    """Run a work function in this thread (reported by ``watchdog`` past ``limit``)
    and return what it returned.

    A thread cannot be stopped, so ``limit`` only matters to the watchdog, and
    ``on_start`` and ``job_task`` (how the async face cancels a job, and where
    it runs one) are not used: a job in a thread checks ``job.cancelled`` itself.
    """
    watchdog = None if limit is None else watchdog  # no limit: nothing to watch
    if watchdog is not None:
        watchdog.started(job)
    try:
        result = func(job)
    finally:
        if watchdog is not None:
            watchdog.finished(job)
    if result is not None and inspect.isawaitable(result):
        close = getattr(result, "close", None)
        if callable(close):
            close()  # a coroutine never awaited: close it so no warning follows
        raise TypeError(awaitable_message(job.type))
    return result


# The other face, for the checks that refuse its types with a clear message.
OTHER_CLIENT = "que.AsyncClient"
OtherConnection = psycopg.AsyncConnection
OtherPool = psycopg_pool.AsyncConnectionPool
# The connections of an application this face runs statements on (the
# caller's connection of enqueue and job.delete), and the other face's.
CALLER_CONNECTIONS = (
    "a psycopg.Connection, a psycopg2 connection, a SQLAlchemy Connection or Session, "
    "or a Django connection"
)
OTHER_FACE_MODULES = ("asyncpg", "sqlalchemy.ext.asyncio")
