"""Jobs as decorated functions: ``@que.job``, the registry of job types, and
enqueueing a job by calling ``.enqueue(...)`` on its function.

A decorated function keeps working as a plain function. Its job type is the
name stored in ``que_jobs.job_class`` (``module.function`` unless ``name=``
says otherwise, e.g. a Ruby constant path), and its arguments are stored as a
JSON array, as Ruby (``run(*args)``) and Go expect. A worker calls it with the
job's args unpacked; ``que.current_job()`` gives it the job itself.

Enqueueing needs a client: ``que.configure(client)`` once (a Client, an
AsyncClient, or both by calling it twice), or ``.options(client=...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from . import _durations
from ._jobs import DEFAULT_PRIORITY, check_priority, check_queue, check_run_at
from .backoff import RetryInterval, _is_delay
from .errors import QueError

if TYPE_CHECKING:
    from .async_job_handle import AsyncJob
    from .job_handle import Job

P = ParamSpec("P")
R = TypeVar("R")


class SyncEnqueuer(Protocol):
    """What a decorated job enqueues through on the sync face: a que.Client,
    or ``que.testing.InlineQueue``."""

    def enqueue(self, job: Job, *, conn: Any = None) -> Job: ...


class AsyncEnqueuer(Protocol):
    """What a decorated job enqueues through on the async face: a que.AsyncClient,
    or ``que.testing.InlineQueue.async_face``."""

    async def enqueue(self, job: AsyncJob, *, conn: Any = None) -> AsyncJob: ...


_current: ContextVar[Any] = ContextVar("que_current_job")


def current_job() -> Job | AsyncJob:
    """The job whose decorated work function is running (in this thread or task).

    Raises QueError outside one: a work function that takes a job from a work
    map gets it as its argument instead."""
    try:
        job: Job | AsyncJob = _current.get()
    except LookupError:
        raise QueError(
            "que.current_job() is only set while a worker runs a @que.job function"
        ) from None
    return job


@dataclass(frozen=True)
class EnqueueOptions:
    """Per-call settings of ``JobFunction.options``: where and when the job goes."""

    client: Any = None
    conn: Any = None
    queue: str | None = None
    priority: int | None = None
    run_at: datetime | None = None
    delay: timedelta | float | None = None


class JobFunction(Generic[P, R]):
    """A function registered as a job type; what ``@que.job`` returns.

    Call it as before to run it directly; ``enqueue(*args)`` writes a job
    that a worker runs with those args. ``options(...)`` sets the client, the
    caller's connection (``conn=``, the job commits with its transaction),
    queue, priority, ``run_at`` or ``delay`` for one enqueue.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str,
        queue: str,
        priority: int,
        retry: RetryInterval | None,
        max_attempts: int | None,
        registry: Registry,
    ) -> None:
        self.func = func
        self.name = name
        self.queue = queue
        self.priority = priority
        self.retry = retry
        self.max_attempts = max_attempts
        self.registry = registry
        self.signature = inspect.signature(func)
        self.runner: Callable[[Any], Any] = (
            _AsyncRunner(self) if inspect.iscoroutinefunction(func) else _SyncRunner(self)
        )
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", name)
        self.__qualname__ = getattr(func, "__qualname__", name)
        self.__module__ = getattr(func, "__module__", __name__)
        self.__wrapped__ = func

    def __repr__(self) -> str:
        return f"<que job {self.name!r} ({self.__module__}.{self.__qualname__})>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def options(
        self,
        *,
        client: Any = None,
        conn: Any = None,
        queue: str | None = None,
        priority: int | None = None,
        run_at: datetime | None = None,
        delay: timedelta | float | None = None,
    ) -> BoundJob[P, R]:
        """This job with settings for the next enqueue: ``client``, the caller's
        ``conn`` (a connection of any driver ``enqueue`` takes), ``queue``,
        ``priority``, and ``run_at`` (an aware datetime) or ``delay`` (seconds
        or a timedelta from now, by this machine's clock)."""
        if run_at is not None and delay is not None:
            raise ValueError("give run_at or delay, not both")
        if delay is not None:
            _durations.seconds(delay, "delay")
        if queue is not None:
            check_queue(queue)
        if priority is not None:
            check_priority(priority)
        if run_at is not None:
            check_run_at(run_at)
        return BoundJob(self, EnqueueOptions(client, conn, queue, priority, run_at, delay))

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Write a job that runs this function with these arguments (sync face)."""
        return BoundJob(self, EnqueueOptions()).enqueue(*args, **kwargs)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> AsyncJob:
        """Write a job that runs this function with these arguments (async face)."""
        return await BoundJob(self, EnqueueOptions()).enqueue_async(*args, **kwargs)

    def job_args(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> list[Any]:
        """The JSON array stored for a call with these arguments: keyword
        arguments become positional ones, as a worker passes them back. A
        default skipped before an argument given by name is stored as it is
        now (``k(1, c=5)`` of ``def k(a, b=1, c=2)`` stores ``[1, 1, 5]``);
        trailing defaults are not stored, so the function's own apply."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"job {self.name!r}: {exc}") from None
        params = self.signature.parameters.values()
        positional = [p.name for p in params if p.kind in _POSITIONAL]
        refused = sorted(name for name in bound.kwargs if name not in positional)
        if refused:
            raise TypeError(
                f"job {self.name!r}: keyword-only arguments {refused} cannot be "
                "stored in the job's args, a JSON array; make them positional"
            )
        given = [i for i, name in enumerate(positional) if name in bound.arguments]
        bound.apply_defaults()
        stored = [bound.arguments[name] for name in positional[: max(given, default=-1) + 1]]
        for p in params:
            if p.kind is inspect.Parameter.VAR_POSITIONAL:
                stored.extend(bound.arguments[p.name])
        return stored


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class BoundJob(Generic[P, R]):
    """A JobFunction with the settings of one ``options(...)`` call."""

    def __init__(self, job: JobFunction[P, R], options: EnqueueOptions) -> None:
        self.job = job
        self.settings = options

    def options(self, **changes: Any) -> BoundJob[P, R]:
        """These settings with some changed."""
        merged = {**self.settings.__dict__, **changes}
        return self.job.options(**merged)

    def _fields(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        job, opts = self.job, self.settings
        run_at = opts.run_at
        if opts.delay is not None:
            delay = (
                opts.delay if isinstance(opts.delay, timedelta) else timedelta(seconds=opts.delay)
            )
            run_at = datetime.now(timezone.utc) + delay
        return {
            "type": job.name,
            "args": job.job_args(args, kwargs),
            "queue": job.queue if opts.queue is None else opts.queue,
            "priority": job.priority if opts.priority is None else opts.priority,
            "run_at": run_at,
        }

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Write the job through the sync client (``client=``, else the configured one)."""
        from .job_handle import Job

        new = Job(**self._fields(args, kwargs))
        client = self.settings.client or self.job.registry.sync_client(self.job.name)
        if self.settings.conn is None:
            return client.enqueue(new)
        return client.enqueue(new, conn=self.settings.conn)

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> AsyncJob:
        """Write the job through the async client (``client=``, else the configured one)."""
        from .async_job_handle import AsyncJob

        new = AsyncJob(**self._fields(args, kwargs))
        client = self.settings.client or self.job.registry.async_client(self.job.name)
        if self.settings.conn is None:
            return await client.enqueue(new)
        return await client.enqueue(new, conn=self.settings.conn)


def positional_args(job: Any) -> list[Any]:
    """A claimed job's args as positional arguments: its JSON array."""
    if not isinstance(job.args, list):
        raise TypeError(
            f"job {job.type!r} has args of type {type(job.args).__name__}; a @que.job "
            "function takes them from a JSON array"
        )
    return job.args


class _SyncRunner:
    """The work-map entry of a sync job function: sets current_job, unpacks args."""

    def __init__(self, job: JobFunction[Any, Any]) -> None:
        self.job = job

    def __call__(self, claimed: Any) -> Any:
        token = _current.set(claimed)
        try:
            return self.job.func(*positional_args(claimed))
        finally:
            _current.reset(token)


class _AsyncRunner:
    """The work-map entry of an async job function: sets current_job, unpacks args."""

    def __init__(self, job: JobFunction[Any, Any]) -> None:
        self.job = job

    async def __call__(self, claimed: Any) -> Any:
        token = _current.set(claimed)
        try:
            return await self.job.func(*positional_args(claimed))
        finally:
            _current.reset(token)


def registered_job(entry: object) -> JobFunction[Any, Any] | None:
    """The JobFunction behind a work-map entry, or None for a plain work function."""
    if isinstance(entry, JobFunction):
        return entry
    if isinstance(entry, _SyncRunner | _AsyncRunner):
        return entry.job
    wrapped = getattr(entry, "__wrapped__", None)  # functools.wraps: a wrapper keeps its job
    return None if wrapped is None else registered_job(wrapped)


def work_function(entry: Any) -> Any:
    """A work-map entry as a worker calls it: a JobFunction placed in a map by
    hand becomes its runner (args unpacked), anything else stays as it is."""
    return entry.runner if isinstance(entry, JobFunction) else entry


def attempts_per_type(
    work_map: Mapping[str, object], explicit: Mapping[str, int | None] | None
) -> dict[str, int | None]:
    """The per-type retry limits of a worker: each decorated job's
    ``max_attempts``, overridden by what the worker was given.

    >>> attempts_per_type({"T": 1}, {"U": 2})
    {'U': 2}
    """
    limits: dict[str, int | None] = {}
    for job_type, entry in work_map.items():
        found = registered_job(entry)
        if found is not None and found.max_attempts is not None:
            limits[job_type] = found.max_attempts
    limits.update(explicit or {})
    return limits


class Registry:
    """Job types by name, the clients they enqueue through, and their retry
    intervals (which every client in the process applies, under its own
    ``retry_intervals``)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobFunction[Any, Any]] = {}
        self.retry_intervals: dict[str, RetryInterval] = {}
        self.client: SyncEnqueuer | None = None
        self.aclient: AsyncEnqueuer | None = None

    def register(self, job: JobFunction[Any, Any]) -> None:
        known = self.jobs.get(job.name)
        if known is not None and _origin(known.func) != _origin(job.func):
            raise ValueError(
                f"job type {job.name!r} is already registered by {_origin(known.func)}; "
                f"give {_origin(job.func)} another name= "
            )
        self.jobs[job.name] = job
        if job.retry is None:
            self.retry_intervals.pop(job.name, None)
        else:
            self.retry_intervals[job.name] = job.retry

    def unregister(self, name: str) -> None:
        """Forget a job type (and its retry interval); for tests that register their own."""
        self.jobs.pop(name, None)
        self.retry_intervals.pop(name, None)

    def work_map(self) -> dict[str, Callable[[Any], Any]]:
        """Every registered job type and what a worker calls for it."""
        return {name: job.runner for name, job in self.jobs.items()}

    def sync_client(self, name: str) -> SyncEnqueuer:
        if self.client is None:
            raise QueError(
                f"no client to enqueue job {name!r} with: call que.configure(client) once, "
                "or pass .options(client=...)"
            )
        return self.client

    def async_client(self, name: str) -> AsyncEnqueuer:
        if self.aclient is None:
            raise QueError(
                f"no async client to enqueue job {name!r} with: call "
                "que.configure(async_client) once, or pass .options(client=...)"
            )
        return self.aclient


def _origin(func: object) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"


registry = Registry()
"""The registry ``@que.job`` adds to unless given another."""


def configure(client: Any, *, registry: Registry | None = None) -> None:
    """Make ``client`` the one decorated jobs enqueue through: a que.Client for
    ``enqueue``, a que.AsyncClient for ``enqueue_async`` (call once for each);
    None forgets both."""
    from .async_client import AsyncClient

    target = _default() if registry is None else registry
    if client is None:
        target.client = target.aclient = None
    elif isinstance(client, AsyncClient) or getattr(client, "is_async", False):
        target.aclient = client
    else:
        target.client = client


def _default() -> Registry:
    return registry


@overload
def job(func: Callable[P, R], /) -> JobFunction[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
    queue: str = "",
    priority: int = DEFAULT_PRIORITY,
    retry: RetryInterval | None = None,
    max_attempts: int | None = None,
    registry: Registry | None = None,
) -> Callable[[Callable[P, R]], JobFunction[P, R]]: ...


def job(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = "",
    priority: int = DEFAULT_PRIORITY,
    retry: RetryInterval | None = None,
    max_attempts: int | None = None,
    registry: Registry | None = None,
) -> Any:
    """Register a function (sync or async) as a job type.

    ``name``: the stored job type (default ``module.function``; a Ruby
    constant path such as ``Mailer::Welcome`` to share jobs with Ruby).
    ``queue`` and ``priority``: enqueue defaults. ``retry``: seconds between
    attempts, or a function of the error count (as ``retry_intervals``).
    ``max_attempts``: runs before the job is buried in que_dead_jobs (needs
    the que-pg extension), unless the worker sets one for this type.
    """
    target = _default() if registry is None else registry
    check_queue(queue)
    check_priority(priority)
    if retry is not None and not callable(retry) and not _is_delay(retry):
        raise ValueError(f"retry must be seconds (>= 0) or a callable, not {retry!r}")
    if max_attempts is not None and (
        isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
    ):
        raise ValueError(f"max_attempts must be a positive int or None, not {max_attempts!r}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValueError(f"name must be a non-empty job type, not {name!r}")

    def decorate(f: Callable[..., Any]) -> JobFunction[Any, Any]:
        if not callable(f):
            raise TypeError(f"@que.job decorates a function, not {type(f).__name__}")
        wrapped = JobFunction(
            f,
            name=name or f"{f.__module__}.{f.__qualname__}",
            queue=queue,
            priority=priority,
            retry=retry,
            max_attempts=max_attempts,
            registry=target,
        )
        target.register(wrapped)
        return wrapped

    return decorate if func is None else decorate(func)


__all__ = [
    "BoundJob",
    "EnqueueOptions",
    "JobFunction",
    "Registry",
    "configure",
    "current_job",
    "job",
    "registry",
]
