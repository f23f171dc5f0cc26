"""One behaviour suite for both sides of que: Client/Worker and AsyncClient/AsyncWorker.

A test takes the ``side`` fixture (parametrised "sync" and "async") and the
``qc`` fixture (a Client, or an opened AsyncClient, on the test's database)
and writes each call once; ``r()`` awaits what the async side returns and
passes the sync side's values through::

    job = await r(qc.lock_job())
    await r(job.delete())

Code that must run the way the side runs it (a worker's blocking loop, a
claimer racing others) goes through ``side.call``: the sync side runs it in a
thread of its own, the async side awaits it on the test's event loop.
Work functions are written once as ``async def`` and given to workers through
``side.handler``, which runs them with ``asyncio.run`` inside the sync
worker's thread. Tests that need a plain sync work function use one directly.

The batched engines (BatchWorker, AsyncBatchWorker) are made with
``side.batch_worker`` and started and shut down with ``side.start_engine`` and
``side.stop_engine``, so that the sync engine's blocking shutdown never stalls
the test's event loop. ``Engines`` starts any of the workers for a test and
stops each at its end.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg_pool

import que

T = TypeVar("T")

SIDES = ("sync", "async")

AnyClient = que.Client | que.AsyncClient
AnyJob = que.Job | que.AsyncJob
AnyConnection = psycopg.Connection[Any] | psycopg.AsyncConnection[Any]


_active: Side | None = None  # the side under test; set by the side fixture


async def r(value: Awaitable[T] | T) -> T:
    """``await`` an awaitable (the async side); return anything else as it is.

    While a side is active it is also an assertion: the async side's calls
    must return awaitables and the sync side's must not, so a method of the
    wrong kind cannot pass unnoticed.
    """
    awaitable = inspect.isawaitable(value)
    side = _active
    if side is not None and awaitable != side.is_async:
        if inspect.iscoroutine(value):
            value.close()  # refused: do not leave it never awaited
        kind = "an awaitable" if awaitable else "a plain value"
        raise AssertionError(f"a call on the {side.name} side returned {kind}: {value!r}")
    if awaitable:
        return await value
    return value


async def one(conn: AnyConnection, query: Any, params: Any = None) -> Any:
    """The first row of ``query`` run on a connection of either side."""
    cur = await r(conn.execute(query, params))
    return await r(cur.fetchone())


@asynccontextmanager
async def using(job: AnyJob) -> AsyncIterator[Any]:
    """Enter the job's own context manager (``with job`` / ``async with job``)."""
    if isinstance(job, que.AsyncJob):
        async with job:
            yield job
    else:
        with job:
            yield job


@asynccontextmanager
async def claimed(client: AnyClient, queue: str = "") -> AsyncIterator[Any]:
    """Claim the next job of ``queue`` (there must be one) and release it at the end."""
    job = await r(client.lock_job(queue))
    assert job is not None, f"no job to claim in queue {queue!r}"
    async with using(job):
        yield job


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await _result(condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {what or condition}")
        await asyncio.sleep(0.01)


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def wait_event(event: threading.Event, timeout: float = 30.0) -> bool:
    """Wait for a threading.Event without blocking the running event loop."""
    return await asyncio.to_thread(event.wait, timeout)


class Side:
    """How the tests drive one side of the library."""

    def __init__(self, name: str) -> None:
        assert name in SIDES
        self.name = name
        self.is_async = name == "async"

    def __repr__(self) -> str:
        return f"Side({self.name!r})"

    @contextmanager
    def active(self) -> Iterator[Side]:
        """Make ``r()`` check that calls return what this side should return."""
        global _active  # noqa: PLW0603 - read by r() in the test's threads too
        previous, _active = _active, self
        try:
            yield self
        finally:
            _active = previous

    @property
    def worker_logger(self) -> str:
        return "que.async_worker" if self.is_async else "que.worker"

    @property
    def job_class(self) -> type[AnyJob]:
        return que.AsyncJob if self.is_async else que.Job

    @asynccontextmanager
    async def client(self, source: Any, **options: Any) -> AsyncIterator[Any]:
        """A client of this side, open for the ``async with`` block."""
        if self.is_async:
            async with que.AsyncClient(source, **options) as client:
                yield client
        else:
            with que.Client(source, **options) as client:
                yield client

    @asynccontextmanager
    async def connection(self, url: str) -> AsyncIterator[Any]:
        """A caller's own connection of this side (not autocommit), closed at the end."""
        if self.is_async:
            async with await psycopg.AsyncConnection.connect(url) as aconn:
                yield aconn
        else:
            with psycopg.connect(url) as conn:
                yield conn

    @asynccontextmanager
    async def pool(self, url: str, **options: Any) -> AsyncIterator[Any]:
        """A psycopg_pool pool of this side with psycopg's defaults (tuple rows, no
        autocommit), as a caller would make one."""
        if self.is_async:
            async with psycopg_pool.AsyncConnectionPool(url, **options) as apool:
                yield apool
        else:
            with psycopg_pool.ConnectionPool(url, **options) as pool:
                yield pool

    def worker(self, client: AnyClient, work_map: dict[str, Any], **options: Any) -> Any:
        if self.is_async:
            assert isinstance(client, que.AsyncClient)
            return que.AsyncWorker(client, work_map, **options)
        assert isinstance(client, que.Client)
        return que.Worker(client, work_map, **options)

    def worker_pool(
        self, client: AnyClient, work_map: dict[str, Any], count: int = 1, **options: Any
    ) -> Any:
        if self.is_async:
            assert isinstance(client, que.AsyncClient)
            return que.AsyncWorkerPool(client, work_map, count, **options)
        assert isinstance(client, que.Client)
        return que.WorkerPool(client, work_map, count, **options)

    @property
    def batch_worker_class(self) -> type[Any]:
        """The batched engine of this side: AsyncBatchWorker or BatchWorker."""
        return que.AsyncBatchWorker if self.is_async else que.BatchWorker

    def batch_worker(self, client: AnyClient, work_map: dict[str, Any], **options: Any) -> Any:
        """A batched engine of this side on ``client``, not started yet."""
        if self.is_async:
            assert isinstance(client, que.AsyncClient)
            return que.AsyncBatchWorker(client, work_map, **options)
        assert isinstance(client, que.Client)
        return que.BatchWorker(client, work_map, **options)

    def start_engine(self, engine: Any) -> None:
        """Start a batched engine the way its side starts.

        BatchWorker.start() starts its threads and returns at once, so it may be
        called on the test's loop; AsyncBatchWorker.start() creates its tasks on
        the running loop, so it must be.
        """
        result = engine.start()
        if inspect.iscoroutine(result):
            result.close()  # refused below: do not leave it never awaited
        assert result is None, f"{type(engine).__name__}.start() returned {result!r}"

    async def stop_engine(self, engine: Any, timeout: float = 30.0) -> bool:
        """Shut a batched engine down; whether it finished within ``timeout``.

        BatchWorker.shutdown() blocks until its threads are done, so it runs in
        a thread of its own; AsyncBatchWorker.shutdown() is awaited on the loop.
        """
        if self.is_async:
            return bool(await engine.shutdown(timeout))
        return bool(await asyncio.to_thread(engine.shutdown, timeout))

    async def call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func(*args)`` as this side runs code and return its result.

        Async side: call it on the running loop and await the result if it is
        awaitable. Sync side: call it in a thread of its own (so a blocking
        call never stalls the loop), running a returned coroutine there with
        ``asyncio.run``.
        """
        if self.is_async:
            return await _result(func(*args))

        def blocking() -> Any:
            result = func(*args)
            return asyncio.run(result) if inspect.iscoroutine(result) else result

        return await asyncio.to_thread(blocking)

    def start(self, func: Callable[[], Any]) -> asyncio.Task[Any]:
        """Run ``func()`` (a worker's ``work`` loop) in the background: a task or a thread."""
        return asyncio.create_task(self.call(func))

    def handler(self, func: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Any]:
        """A work function of this side made from an ``async def`` written once.

        The async worker awaits ``func`` itself; the sync worker calls a plain
        function that runs it to completion with ``asyncio.run`` in the
        worker's own thread.
        """
        if self.is_async:
            return func

        @functools.wraps(func)
        def run(job: que.Job) -> Any:
            return asyncio.run(func(job))

        return run


class Engines:
    """Starts workers of one side for a test and stops each one after it.

    Tests that run the same behaviour on several workers name the worker by a
    word: "batch" is a batched engine, "pool" a WorkerPool of two, "worker" one
    Worker whose loop runs in the background, and "classic" whichever of "pool"
    and "worker" the fixture chose. Options a call does not give are taken from
    the fixture's defaults, so each test passes only what it is about.
    """

    def __init__(
        self,
        side: Side,
        client: AnyClient | None = None,
        *,
        interval: float,
        classic: str = "pool",
        concurrency: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        assert classic in ("pool", "worker"), classic
        self.side = side
        self.client = client
        self.interval = interval
        self.classic = classic
        self.concurrency = concurrency
        self.timeout = timeout
        self._stops: list[Callable[[], Awaitable[bool]]] = []

    async def __call__(
        self,
        engine: str,
        work_map: dict[str, Any],
        *,
        client: AnyClient | None = None,
        **options: Any,
    ) -> Any:
        """Start the worker ``engine`` names on ``client`` (or the default one) and
        return it; it is stopped after the test."""
        client = self.client if client is None else client
        assert client is not None, "no client given and none by default"
        side, timeout = self.side, self.timeout
        options.setdefault("interval", self.interval)
        kind = self.classic if engine == "classic" else engine
        if kind == "batch":
            if self.concurrency is not None:
                options.setdefault("concurrency", self.concurrency)
            batch = side.batch_worker(client, work_map, **options)
            side.start_engine(batch)
            self._stops.append(lambda: side.stop_engine(batch, timeout))
            return batch
        if kind == "pool":
            pool = side.worker_pool(client, work_map, 2, **options)
            pool.start()
            self._stops.append(lambda: side.call(pool.shutdown, timeout))
            return pool
        if kind == "worker":
            worker = side.worker(client, work_map, **options)
            task = side.start(worker.work)

            async def stop() -> bool:
                done = await side.call(worker.shutdown, timeout)
                await task
                return bool(done)

            self._stops.append(stop)
            return worker
        raise ValueError(f"unknown engine {engine!r}")

    async def stop_all(self) -> None:
        """Stop every worker started, in order; each must finish within the timeout."""
        for stop in self._stops:
            assert await stop()
