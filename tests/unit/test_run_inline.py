"""An async work function without a timeout runs in the worker's own task.

A cancel request must cancel the job and nothing else: not the worker before
or after the job, and not a cancel of the worker itself that arrives with it.
"""

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

import pytest

from que import Job, JobCancelledError
from que._acompat import run_work

JOB = Job(type="Report", id=7)
COUNTS_CANCELS = sys.version_info >= (3, 11)


class Stops:
    """What the worker keeps of a running job: how to cancel it."""

    def __init__(self) -> None:
        self.stop: Callable[[], object] | None = None

    def __call__(self, stop: Callable[[], object]) -> None:
        self.stop = stop

    def request(self) -> None:
        assert self.stop is not None
        self.stop()


def cancelling() -> int:
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling() if COUNTS_CANCELS else 0


async def test_runs_in_the_callers_task_and_returns_its_result() -> None:
    tasks: list[Any] = []

    async def work(job: Job) -> str:
        tasks.append(asyncio.current_task())
        return f"done {job.id}"

    assert await run_work(work, JOB, None, None, Stops()) == "done 7"
    assert tasks == [asyncio.current_task()]


async def test_a_request_while_it_runs_is_a_job_cancelled_error() -> None:
    stops = Stops()
    started = asyncio.Event()
    reached: list[str] = []

    async def work(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)
        reached.append("after the sleep")

    async def request_when_started() -> None:
        await started.wait()
        stops.request()

    requester = asyncio.create_task(request_when_started())
    with pytest.raises(JobCancelledError, match="Report id=7 was cancelled on request"):
        await run_work(work, JOB, None, None, stops)
    await requester
    assert reached == []
    assert cancelling() == 0
    await asyncio.sleep(0)  # the worker's task goes on


async def test_a_request_after_it_ended_leaves_the_worker_alone() -> None:
    stops = Stops()

    async def work(job: Job) -> int:
        return 1

    assert await run_work(work, JOB, None, None, stops) == 1
    stops.request()  # late: the job is over
    await asyncio.sleep(0.01)  # would raise CancelledError had the task been cancelled
    assert cancelling() == 0


async def test_a_request_before_it_started_never_runs_it() -> None:
    ran: list[int] = []

    async def work(job: Job) -> None:
        ran.append(1)

    def asked_already(stop: Callable[[], object]) -> None:
        stop()  # the handle calls it at once when a request came first

    with pytest.raises(JobCancelledError):
        await run_work(work, JOB, None, None, asked_already)
    assert ran == []  # and its coroutine was closed: no "never awaited" warning
    await asyncio.sleep(0)


async def test_a_job_that_ignores_the_request_finishes_and_the_worker_goes_on() -> None:
    stops = Stops()
    started = asyncio.Event()

    async def work(job: Job) -> str:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # swallowed: it ends normally
            await asyncio.sleep(60)
        return "ended anyway"

    async def request_when_started() -> None:
        await started.wait()
        stops.request()

    requester = asyncio.create_task(request_when_started())
    assert await run_work(work, JOB, None, None, stops) == "ended anyway"
    await requester
    assert cancelling() == 0
    await asyncio.sleep(0.01)


async def test_the_worker_being_cancelled_is_not_a_job_outcome() -> None:
    started = asyncio.Event()

    async def work(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = asyncio.create_task(run_work(work, JOB, None, None, Stops()))
    await started.wait()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker


@pytest.mark.skipif(not COUNTS_CANCELS, reason="Python 3.10 does not count a task's cancels")
async def test_the_worker_cancelled_together_with_a_request_stays_cancelled() -> None:
    stops = Stops()
    started = asyncio.Event()

    async def work(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)

    worker = asyncio.create_task(run_work(work, JOB, None, None, stops))
    await started.wait()
    stops.request()
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker


async def test_interrupts_reach_the_caller() -> None:
    async def work(job: Job) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await run_work(work, JOB, None, None, Stops())
