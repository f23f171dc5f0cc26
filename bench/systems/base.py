"""The one interface every benchmarked system implements.

A system is a small class that knows four things about one queue library:
how to install its schema in an empty database, how to enqueue jobs (one
at a time and in batches), how to run its workers in the current process
until told to stop, and how to count the jobs it has not finished yet.

Everything that imports the library itself happens inside those methods,
never at module import, so the harness can list systems (and say which are
not available) without importing any of them.

Every job carries a sequence number ``seq`` and the wall-clock time
``sent_at`` it was enqueued at (0.0 when the scenario does not measure
latency). A work function does nothing but call ``ctx.hit(seq, sent_at)``,
except in the io scenario: there it first waits ``ctx.io_wait`` seconds, with
``await asyncio.sleep`` on asyncio systems and ``time.sleep`` in threads,
and then calls ``hit``, so that a job counts as run once its wait is over.
``enqueue_urgent`` enqueues one job at the system's most urgent priority
(the others go at its default), for the priority scenario.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, Protocol

from bench.recorder import Recorder


class Producer(Protocol):
    """Enqueues jobs from a synchronous program."""

    def open(self) -> None: ...

    def enqueue_one(self, seq: int, sent_at: float) -> None: ...

    def enqueue_urgent(self, seq: int, sent_at: float) -> None: ...

    def enqueue_batch(self, seqs: Sequence[int]) -> None: ...

    def close(self) -> None: ...


class AsyncProducer(Protocol):
    """Enqueues jobs from an asyncio program."""

    async def open(self) -> None: ...

    async def enqueue_one(self, seq: int, sent_at: float) -> None: ...

    async def enqueue_urgent(self, seq: int, sent_at: float) -> None: ...

    async def enqueue_batch(self, seqs: Sequence[int]) -> None: ...

    async def close(self) -> None: ...


class WorkerContext:
    """What a worker process hands to ``System.work``.

    ``hit`` is the work function's only action, after a wait of ``io_wait``
    seconds when that is not 0 (the io scenario). Call ``ready()`` (or
    ``await ready_async()``) once connected and set up: it reports
    readiness and returns when the harness says go, which is when the clock
    starts. Return from ``work`` once ``stop`` is set, after a clean shutdown.
    """

    def __init__(
        self,
        recorder: Recorder,
        stop: threading.Event,
        announce_ready: Callable[[], None],
        go: threading.Event,
        io_wait: float = 0.0,
    ) -> None:
        self.recorder = recorder
        self.hit = recorder.hit
        self.stop = stop
        #: Seconds each job waits before its ``hit`` (0: no wait).
        self.io_wait = io_wait
        self._announce_ready = announce_ready
        self._go = go

    def ready(self) -> None:
        self._announce_ready()
        self._go.wait()

    async def ready_async(self) -> None:
        self._announce_ready()
        await asyncio.to_thread(self._go.wait)

    async def wait_stop(self) -> None:
        await asyncio.to_thread(self.stop.wait)


class System(ABC):
    """One queue library (or the raw-SQL baseline) behind the harness's interface."""

    #: Short name used on the command line and in results.
    name: ClassVar[str]
    #: One line saying what runs, for the README table and the report.
    label: ClassVar[str]
    #: Position in tables: lower first.
    rank: ClassVar[int] = 50
    #: Whether a run without --systems includes it.
    default: ClassVar[bool] = True
    #: Distributions whose versions go into every result line.
    packages: ClassVar[tuple[str, ...]] = ()
    #: Settings and their defaults: each system's documented fast settings.
    #: ``processes`` is how many worker processes the harness starts;
    #: ``max_jobs`` (optional) caps the burn-down size of a system too slow
    #: to work ``--jobs`` jobs within the time budget.
    defaults: ClassVar[Mapping[str, Any]] = {"processes": 1}
    #: SQL run by the harness: the number of jobs not finished yet.
    pending_sql: ClassVar[str]
    #: The setting that bounds how many jobs one worker process runs at once
    #: (its threads or tasks), or None if the system has none: the io
    #: scenario's ideal rate follows from it.
    concurrency_key: ClassVar[str | None] = None

    def __init__(
        self, overrides: Mapping[str, Any] | None = None, variant: str | None = None
    ) -> None:
        unknown = set(overrides or {}) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{self.name} has no setting {', '.join(sorted(unknown))}; "
                f"it has {', '.join(sorted(self.defaults))}"
            )
        self.settings: dict[str, Any] = {**self.defaults, **(overrides or {})}
        #: What sets this instance apart from others of the same system in one
        #: run (``processes=4`` for ``--vary que_batched_sync.processes=1,4``).
        self.variant = variant

    @property
    def run_name(self) -> str:
        """The name results and tables use: ``name``, or ``name.variant`` for a variant."""
        return self.name if self.variant is None else f"{self.name}.{self.variant}"

    @property
    def processes(self) -> int:
        return int(self.settings["processes"])

    def burndown_jobs(self, jobs: int) -> int:
        """How many jobs this system burns down when ``jobs`` are asked for."""
        cap = self.settings.get("max_jobs")
        return jobs if cap is None else min(jobs, int(cap))

    def unavailable(self) -> str | None:
        """Why this system cannot run here, or None if it can."""
        return None

    def concurrency(self) -> int | None:
        """How many jobs all worker processes run at once at most, or None
        when nothing bounds it (the io scenario needs a bound)."""
        if self.concurrency_key is None or self.settings[self.concurrency_key] is None:
            return None
        return self.processes * int(self.settings[self.concurrency_key])

    def not_applicable(self, scenario: str) -> str | None:
        """Why ``scenario`` does not apply to this system, or None if it does."""
        if scenario == "io" and self.concurrency() is None:
            if self.concurrency_key is None:
                return "it has no setting for how many jobs run at once"
            return (
                f"nothing bounds how many jobs run at once: set {self.name}.{self.concurrency_key}"
            )
        return None

    def run_async(self, main: Coroutine[Any, Any, None]) -> None:
        """Run a coroutine on a fresh event loop: uvloop's if the ``uvloop`` setting is on."""
        if self.settings.get("uvloop"):
            import uvloop

            uvloop.run(main)
        else:
            asyncio.run(main)

    @abstractmethod
    def install(self, url: str) -> None:
        """Create the system's schema in the empty database at ``url``."""

    @abstractmethod
    def producer(self, url: str) -> Producer | AsyncProducer:
        """A producer for the database at ``url`` (not yet opened)."""

    @abstractmethod
    def work(self, url: str, ctx: WorkerContext) -> None:
        """Run this process's workers until ``ctx.stop`` is set, then shut down cleanly."""


def decode_pair(raw: Any) -> tuple[int, float]:
    """The (seq, sent_at) pair from a decoded JSON array ``[seq, sent_at]``."""
    return int(raw[0]), float(raw[1])
