"""Pure worker logic shared by the sync and async workers: settings, messages, checks."""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._jobs import check_queue
from ._registry import work_function
from .job import BaseJob

DEFAULT_WAKE_INTERVAL = 5.0
MAX_RETRY_DELAY = 10.0

WorkMap = Mapping[str, Callable[..., Any]]


def wake_interval(value: float | None, environ: Mapping[str, str] | None = None) -> float:
    """Seconds an idle worker sleeps: ``value``, else QUE_WAKE_INTERVAL, else 5."""
    env = os.environ if environ is None else environ
    if value is None:
        raw = env.get("QUE_WAKE_INTERVAL")
        if raw is None or raw.strip() == "":
            return DEFAULT_WAKE_INTERVAL
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(
                f"QUE_WAKE_INTERVAL must be a number of seconds, not {raw!r}"
            ) from None
        source = "QUE_WAKE_INTERVAL"
    else:
        source = "interval"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 86400:
        raise ValueError(f"{source} must be a number of seconds in (0, 86400), not {value!r}")
    return float(value)


def queue_name(value: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The one queue a job goes to: ``value``, else QUE_QUEUE, else the default queue ''.

    A comma is refused rather than taken as part of the name, since a worker
    reads it as separating queues."""
    env = os.environ if environ is None else environ
    name = check_queue(env.get("QUE_QUEUE", "") if value is None else value)
    if "," in name:
        raise ValueError(f"queue {name!r} holds a comma: a job goes to one queue")
    return name


def split_queues(text: str, source: str) -> list[str]:
    """Queue names separated by commas, as QUE_QUEUE and ``que worker -q`` take them.

    >>> split_queues("mail, billing", "-q"), split_queues("", "-q")
    (['mail', 'billing'], [''])
    """
    if "," not in text:
        return [text]
    names = [name.strip() for name in text.split(",")]
    if "" in names:
        raise ValueError(
            f"{source} {text!r} has an empty name between commas; the default queue is "
            "named by an empty value on its own"
        )
    return names


def queue_names(
    value: str | Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The queues a worker works, in the order it tries them: ``value`` (one
    name or several), else QUE_QUEUE (names separated by commas), else ''.

    A comma is never silently part of a name: in QUE_QUEUE it separates
    names, and a name given in Python that holds one is refused.

    >>> queue_names(["mail", "billing", "mail"]), queue_names(None, {"QUE_QUEUE": "a, b"})
    (('mail', 'billing'), ('a', 'b'))
    """
    env = os.environ if environ is None else environ
    if value is None:
        names: list[str] = split_queues(env.get("QUE_QUEUE", ""), "QUE_QUEUE")
    elif isinstance(value, str):
        names = [value]
    else:
        names = list(value)
        if not names:
            raise ValueError("give at least one queue to work")
    for name in names:
        if "," in check_queue(name):
            raise ValueError(
                f"queue name {name!r} holds a comma: give several queues as a list, "
                "e.g. queue=['mail', 'billing']"
            )
    return tuple(dict.fromkeys(names))


def retry_delay(failures: int, interval: float) -> float:
    """Seconds to wait after ``failures`` database errors in a row: doubling, capped.

    >>> [retry_delay(n, 5.0) for n in (1, 2, 3, 6, 9)]
    [0.25, 0.5, 1.0, 8.0, 10.0]
    """
    doubled: float = 0.125 * 2.0 ** min(failures, 16)
    return min(doubled, max(interval, MAX_RETRY_DELAY))


class Outcome(enum.Enum):
    """What is left to write for a job whose work function has run."""

    DELETE = "delete"  # worked: delete the row, then unlock
    FAIL = "fail"  # raised: record the error, then unlock
    UNLOCK = "unlock"  # already written by the job itself, or given back unworked
    SNOOZE = "snooze"  # asked to run again later: move run_at, no failure counted
    BURY = "bury"  # dead (retry limit, que.Discard, cancelled): move to que_dead_jobs


def awaitable_message(job_type: str) -> str:
    return (
        f"work function for {job_type!r} returned an awaitable; "
        "async work functions need the async worker"
    )


def check_work_map(work_map: object, *, worker: str, allow_async: bool) -> dict[str, Any]:
    """A copy of ``work_map`` after checking that it maps job types to callables."""
    if not isinstance(work_map, Mapping):
        raise TypeError(
            f"{worker} needs a work map (a mapping of job type to callable), "
            f"not {type(work_map).__name__}"
        )
    checked: dict[str, Any] = {}
    for job_type, entry in work_map.items():
        func = work_function(entry)  # a @que.job function: its runner
        if not isinstance(job_type, str) or job_type == "":
            raise TypeError(f"work map keys must be non-empty job type strings, not {job_type!r}")
        if not callable(func):
            raise TypeError(f"work map entry {job_type!r} is not callable: {func!r}")
        if not allow_async and is_async_callable(func):
            raise TypeError(
                f"work map entry {job_type!r} is an async function; "
                f"{worker} runs sync functions only (use AsyncWorker)"
            )
        checked[job_type] = func
    return checked


def is_async_callable(func: object) -> bool:
    """Whether ``func`` (a function or a callable object) is async. Asked for
    every job, so the answer is kept per function; inspect's is not cheap."""
    try:
        return _is_async_kept(func)
    except TypeError:  # an unhashable callable object
        return _is_async(func)


def _is_async(func: object) -> bool:
    call = getattr(func, "__call__", None)  # noqa: B004 - also callable objects
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call)


_is_async_kept = functools.lru_cache(maxsize=1024)(_is_async)


def check_pool_count(count: object, limit: int | None) -> int:
    """A worker pool's size. A client's own pool grows to fit it (``limit`` None);
    a pool the caller gave the client must already hold one connection per worker."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"worker pool count must be a positive int, not {count!r}")
    if limit is not None and count > limit:
        raise ValueError(
            f"worker pool count {count} exceeds the {limit} connections of the pool given "
            "to the client; each worker holds one while it works: give it a larger pool"
        )
    return count


# Every engine writes its one line per job to this logger, so one setting
# shows or hides them all.
JOB_LOGGER = logging.getLogger("que.worker")


def log_outcome(
    job: BaseJob, started: float, outcome: str, exc: BaseException | None = None
) -> None:
    """The one log line per job: type, id, queue, duration and outcome. A failure
    carries its exception (``exc_info``), so error reporters get the stack."""
    level = logging.INFO if outcome == "done" else logging.WARNING
    if not JOB_LOGGER.isEnabledFor(level):
        return
    elapsed = time.monotonic() - started
    JOB_LOGGER.log(
        level,
        "job %s id=%s queue=%r %.3fs %s",
        job.type,
        job.id,
        job.queue,
        elapsed,
        outcome,
        exc_info=exc,
        extra={
            "job_id": job.id,
            "job_type": job.type,
            "queue": job.queue,
            "duration": elapsed,
            "outcome": outcome,
        },
    )


def log_loop_error(
    logger: logging.Logger,
    queues: Sequence[str],
    exc: BaseException,
    failures: int,
    delay: float,
) -> None:
    logger.error(
        "worker on %s: %s: %s; retrying in %.2fs",
        describe_queues(queues),
        type(exc).__name__,
        exc,
        delay,
        extra={"queues": list(queues), "failures": failures},
    )


def rotated(items: Sequence[str], start: int) -> list[str]:
    """``items`` starting at index ``start`` (modulo their count), wrapping round.

    >>> rotated(["a", "b", "c"], 4)
    ['b', 'c', 'a']
    """
    count = len(items)
    return [items[(start + n) % count] for n in range(count)]


def describe_queues(queues: Sequence[str]) -> str:
    """``queue 'mail'``, or ``queues 'mail', 'billing'``.

    >>> describe_queues(["mail"]), describe_queues(["mail", ""])
    ("queue 'mail'", "queues 'mail', ''")
    """
    names = ", ".join(repr(name) for name in queues)
    return f"queue {names}" if len(queues) == 1 else f"queues {names}"
