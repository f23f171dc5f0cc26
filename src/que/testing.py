"""Testing code that enqueues and works jobs; see docs/testing.md.

- ``InlineQueue``: jobs enqueued through it (by ``@que.job`` functions once
  it is active, or by code handed it as its client) are collected instead of
  written, and ``assert_enqueued`` checks them. No database needed.
- ``drain`` / ``drain_async``: work every due job now, in the test, with the
  real worker on the real table; ``until=`` and ``advance`` let time pass
  for retries and scheduled jobs.
- The pytest plugin (``que.pytest_plugin``) gives each test a migrated
  database and these as fixtures.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from ._registry import JobFunction, Registry, registry
from .async_drain import advance_async, drain_async
from .drain import advance, drain
from .job import BaseJob

_UNSET: Any = object()


class InlineQueue:
    """Collects the jobs enqueued through it instead of writing them.

    It has the enqueue methods of a que.Client (``enqueue``,
    ``enqueue_many``, ``enqueue_in_tx``); ``async_face`` has those of a
    que.AsyncClient, and both collect into ``jobs``. A collected job gets an
    id (counting from 1) and, when it had none, ``run_at`` of the moment it
    was collected. A ``conn=`` is accepted and ignored: a job collected in a
    transaction that rolls back stays collected.
    """

    def __init__(self) -> None:
        self.jobs: list[BaseJob] = []
        self._ids = itertools.count(1)
        self.async_face = AsyncInlineQueue(self)

    def _collect(self, job: Any) -> Any:
        if not isinstance(job, BaseJob):
            raise TypeError(f"enqueue takes a que.Job, not {type(job).__name__}")
        job.id = next(self._ids)
        if job.run_at is None:
            job.run_at = datetime.now(timezone.utc)
        self.jobs.append(job)
        return job

    def enqueue(self, job: Any, *, conn: Any = None, **options: Any) -> Any:
        return self._collect(job)

    def enqueue_in_tx(self, job: Any, conn: Any) -> Any:
        return self._collect(job)

    def enqueue_many(self, jobs: Iterable[Any], *, conn: Any = None, **options: Any) -> list[Any]:
        return [self._collect(job) for job in list(jobs)]

    def clear(self) -> None:
        """Forget the jobs collected so far."""
        self.jobs.clear()

    def enqueued(
        self,
        job: JobFunction[Any, Any] | str | None = None,
        *,
        args: Any = _UNSET,
        queue: str | None = None,
        priority: int | None = None,
    ) -> list[BaseJob]:
        """The collected jobs of a type (a ``@que.job`` function or a type name;
        None: any) that match every field given."""
        name = job.name if isinstance(job, JobFunction) else job
        return [
            found
            for found in self.jobs
            if (name is None or found.type == name)
            and (args is _UNSET or found.args == list(args))
            and (queue is None or found.queue == queue)
            and (priority is None or found.priority == priority)
        ]

    def assert_enqueued(
        self,
        job: JobFunction[Any, Any] | str | None = None,
        *,
        args: Any = _UNSET,
        queue: str | None = None,
        priority: int | None = None,
        count: int | None = None,
    ) -> list[BaseJob]:
        """Fail unless a collected job matches (exactly ``count`` of them, when
        given); return the matches. The message lists what was collected."""
        found = self.enqueued(job, args=args, queue=queue, priority=priority)
        if (count is None and found) or (count is not None and len(found) == count):
            return found
        name = job.name if isinstance(job, JobFunction) else job
        wanted = ", ".join(
            f"{key}={value!r}"
            for key, value in (
                ("type", name),
                ("args", None if args is _UNSET else list(args)),
                ("queue", queue),
                ("priority", priority),
            )
            if value is not None
        )
        times = "at least once" if count is None else f"{count} time(s), found {len(found)}"
        collected = "\n".join(
            f"  {j.type} args={j.args!r} queue={j.queue!r} priority={j.priority}" for j in self.jobs
        )
        raise AssertionError(
            f"expected a job with {wanted or 'any fields'} enqueued {times}; "
            f"enqueued:\n{collected or '  (nothing)'}"
        )

    def assert_nothing_enqueued(self) -> None:
        self.assert_enqueued(count=0)

    @contextmanager
    def active(self, target: Registry | None = None) -> Iterator[InlineQueue]:
        """Make this queue where ``@que.job`` functions enqueue (both faces)
        for the block; the registry's clients come back after."""
        reg = registry if target is None else target
        before = (reg.client, reg.aclient)
        reg.client, reg.aclient = self, self.async_face
        try:
            yield self
        finally:
            reg.client, reg.aclient = before


class AsyncInlineQueue:
    """The async face of an InlineQueue: ``await enqueue(job)`` collects into it."""

    is_async = True

    def __init__(self, inline: InlineQueue) -> None:
        self.inline = inline

    async def enqueue(self, job: Any, *, conn: Any = None, **options: Any) -> Any:
        return self.inline._collect(job)

    async def enqueue_in_tx(self, job: Any, conn: Any) -> Any:
        return self.inline._collect(job)

    async def enqueue_many(
        self, jobs: Iterable[Any], *, conn: Any = None, **options: Any
    ) -> list[Any]:
        return self.inline.enqueue_many(jobs)


__all__ = [
    "AsyncInlineQueue",
    "InlineQueue",
    "advance",
    "advance_async",
    "drain",
    "drain_async",
]
