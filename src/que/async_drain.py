"""Working a test's jobs synchronously: ``drain_async`` runs every due job with
the real worker code on the real table, and ``advance_async`` lets time pass.

The database's clock cannot be stopped or moved, so a test's clock moves the
jobs instead: advancing by N seconds subtracts N seconds from every run_at in
que_jobs, which is what N seconds passing looks like to a worker (retry
delays and scheduled jobs come due). Nothing else (dead jobs' times, the
extension's tables) is moved. Only for test databases: no worker may hold
a job meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from . import _durations, sql
from ._outcomes import check_limits
from ._registry import registry
from .async_client import AsyncClient
from .async_worker import AsyncWorker
from .errors import QueError

# A job is moved this much past the moment it comes due, so that it is due
# at the next claim whatever the rounding of seconds to microseconds.
_MARGIN = 0.001


async def advance_async(client: AsyncClient, by: timedelta | float) -> None:
    """Let ``by`` (a timedelta or seconds) pass for every job in que_jobs."""
    seconds = _durations.seconds(by, "by")
    async with client.connections.cursor() as cur:
        await cur.execute(sql.TESTING_ADVANCE, {"seconds": seconds})


async def drain_async(
    client: AsyncClient,
    work_map: Mapping[str, Callable[..., Any]] | None = None,
    *,
    queues: str | Sequence[str] | None = None,
    until: timedelta | float | None = None,
    max_jobs: int = 1000,
    **worker_options: Any,
) -> int:
    """Work every due job, one at a time in this task (or thread), until none
    is due; return how many were worked (a retried job counts each time).

    ``work_map`` defaults to every registered ``@que.job``; ``queues`` to every
    queue that holds a job. ``until`` (a timedelta or seconds) also lets that
    much time pass, job by job: each job due within it (a retry after its
    backoff, a job enqueued with a delay) runs in the order it comes due, and
    at the end the jobs left are ``until`` closer to their run_at.
    Jobs of other queues, of paused queues and jobs another session holds
    are left where they are; a due job the drain still cannot claim raises
    QueError. ``worker_options`` go to the worker (``max_attempts``,
    ``max_attempts_per_type``). More than ``max_jobs`` runs raise QueError:
    a job that keeps failing, or keeps enqueueing more, never ends a drain.
    """
    work_map = registry.work_map() if work_map is None else dict(work_map)
    horizon = 0.0 if until is None else _durations.seconds(until, "until")
    passed = 0.0
    worked = 0
    stalled = False
    while True:
        names = await _queues(client) if queues is None else _names(queues)
        before = worked
        if names:
            worker = AsyncWorker(client, dict(work_map), queue=names, **worker_options)
            check_limits(worker.limits, client.extension_version)
            # Job after job on one session, each delete written with the next
            # claim (two statements a job); settled before anything is read.
            try:
                while await _work_due(worker):
                    worked += 1
                    if worked > max_jobs:
                        raise QueError(
                            f"drain worked more than max_jobs={max_jobs} jobs; a job that keeps "
                            "failing or enqueueing more? Raise max_jobs if that is expected"
                        )
            except BaseException:
                await worker._settle_or_drop()
                raise
            await worker._settle()
        due = await _next_due(client, names)
        if due is None or due.wait > horizon - passed:
            if horizon > passed:  # the rest of the time passes too
                await advance_async(client, horizon - passed)
            return worked
        if due.wait <= 0 and worked == before:
            # A due job this pass did not claim: letting time pass cannot
            # help, so one more pass, then a clear error instead of a loop.
            if stalled:
                raise QueError(
                    f"drain cannot work job {due.job_id} of queue {due.queue!r}: it is due "
                    "but could not be claimed (is another session holding it?)"
                )
            stalled = True
            continue
        stalled = False
        step = max(due.wait, 0.0) + _MARGIN
        await advance_async(client, step)
        passed += step


async def _work_due(worker: AsyncWorker) -> bool:
    """Work one due job on the worker's kept session; False when none is due.
    The walk steps over the job the session still holds, so a job due again
    at once (snoozed for no time) is looked for once more: the claim that
    found nothing has unlocked it."""
    return await worker._work_next() or await worker._work_next()


def _names(queues: str | Sequence[str]) -> list[str]:
    return [queues] if isinstance(queues, str) else list(queues)


async def _queues(client: AsyncClient) -> list[str]:
    async with client.connections.cursor() as cur:
        await cur.execute(sql.TESTING_QUEUES)
        return [row["queue"] for row in await cur.fetchall()]


@dataclass(frozen=True)
class _Due:
    """The next job a drain could work: its id, queue, and seconds until due."""

    wait: float
    job_id: int
    queue: str


async def _next_due(client: AsyncClient, queues: Sequence[str]) -> _Due | None:
    """The next job of ``queues`` that working could reach: none of a paused
    queue, none another session holds (time passing never frees those)."""
    paused = sorted(await client.pauses.paused())
    async with client.connections.cursor() as cur:
        await cur.execute(sql.TESTING_NEXT_DUE, {"queues": list(queues), "paused": paused})
        row = await cur.fetchone()
    if row is None or row["wait"] is None:
        return None
    return _Due(float(row["wait"]), int(row["job_id"]), str(row["queue"]))
