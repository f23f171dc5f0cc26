"""An async work function run in its job's own task (``run_work(..., job_task=True)``),
as AsyncBatchWorker runs every job: how a cancel request, a cancellation from
outside and a CancelledError of the function's own come out of it."""

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Any

import pytest

from que import Job
from que._acompat import run_work
from que.errors import JobCancelledError

JOB = Job(type="Report", id=7)

needs_cancel_count = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10 does not count a task's cancel requests"
)


class Stopper:
    """Plays the job handle's part: keeps the stop function run_work hands it."""

    def __init__(self, already_asked: bool = False) -> None:
        self.stop: Callable[[], object] | None = None
        self.already_asked = already_asked

    def on_start(self, stop: Callable[[], object]) -> None:
        self.stop = stop
        if self.already_asked:
            stop()

    def request(self) -> None:
        assert self.stop is not None, "the work never started"
        self.stop()


def cancel_count() -> int:
    task = asyncio.current_task()
    assert task is not None
    return int(task.cancelling())  # type: ignore[attr-defined,unused-ignore]  # 3.11+


def waiting_work(entered: asyncio.Event) -> Callable[[Any], Any]:
    """A work function that says it started, then waits a minute."""

    async def waits(job: Any) -> None:
        entered.set()
        await asyncio.sleep(60)

    return waits


async def in_job_task(func: Callable[[Any], Any], stopper: Stopper) -> Any:
    """Run ``func`` the way the engine does, in a task made for the job."""
    return await asyncio.create_task(
        run_work(func, JOB, None, None, stopper.on_start, job_task=True)
    )


async def test_a_request_cancels_the_running_work_as_a_job_outcome() -> None:
    stopper = Stopper()
    entered = asyncio.Event()
    counts: list[int] = []
    waits = waiting_work(entered)

    async def job_task() -> None:
        with pytest.raises(JobCancelledError, match="job Report id=7 was cancelled on request"):
            await run_work(waits, JOB, None, None, stopper.on_start, job_task=True)
        if sys.version_info >= (3, 11):
            counts.append(cancel_count())
        await asyncio.sleep(0)  # the task goes on: nothing is left to cancel it

    task = asyncio.create_task(job_task())
    await entered.wait()
    stopper.request()
    await asyncio.wait_for(task, 5)
    assert not task.cancelled()
    assert counts == ([0] if sys.version_info >= (3, 11) else [])


async def test_a_job_asked_to_stop_before_it_starts_never_starts() -> None:
    entered: list[int] = []

    async def work(job: Any) -> None:
        entered.append(job.id)

    with pytest.raises(JobCancelledError):
        await in_job_task(work, Stopper(already_asked=True))
    assert entered == []


@needs_cancel_count
async def test_work_that_swallows_the_request_returns_and_leaves_no_cancel_behind() -> None:
    stopper = Stopper()
    entered = asyncio.Event()

    async def finishes_anyway(job: Any) -> str:
        entered.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await asyncio.sleep(0)
        return "done"

    async def job_task() -> tuple[str, int]:
        result = await run_work(finishes_anyway, JOB, None, None, stopper.on_start, job_task=True)
        return result, cancel_count()

    task = asyncio.create_task(job_task())
    await entered.wait()
    stopper.request()
    assert await asyncio.wait_for(task, 5) == ("done", 0)


async def test_a_cancel_from_outside_goes_on_as_a_cancel() -> None:
    entered = asyncio.Event()
    waits = waiting_work(entered)

    task = asyncio.create_task(in_job_task(waits, Stopper()))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_cancelled_error_of_the_function_its_own_is_not_a_request() -> None:
    """Raised without a request: it comes out as it is, for perform to judge."""

    async def raises(job: Any) -> None:
        raise asyncio.CancelledError()

    async def job_task() -> str:
        try:
            await run_work(raises, JOB, None, None, Stopper().on_start, job_task=True)
        except asyncio.CancelledError:
            return "CancelledError"
        return "nothing"

    assert await asyncio.create_task(job_task()) == "CancelledError"


async def test_a_request_after_the_work_ended_cancels_nothing() -> None:
    stopper = Stopper()

    async def quick(job: Any) -> int:
        return 42

    async def job_task() -> int:
        result = await run_work(quick, JOB, None, None, stopper.on_start, job_task=True)
        stopper.request()  # too late: the work is over
        await asyncio.sleep(0)
        return int(result)

    assert await asyncio.create_task(job_task()) == 42


@needs_cancel_count
async def test_a_request_and_a_cancel_from_outside_at_once_end_as_a_cancel() -> None:
    """The cancel from outside (a loop torn down, say) wins: the task ends
    cancelled, with that cancel still counted."""
    stopper = Stopper()
    entered = asyncio.Event()
    counts: list[int] = []
    waits = waiting_work(entered)

    async def job_task() -> None:
        try:
            await run_work(waits, JOB, None, None, stopper.on_start, job_task=True)
        except asyncio.CancelledError:
            counts.append(cancel_count())
            raise

    task = asyncio.create_task(job_task())
    await entered.wait()
    stopper.request()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert counts == [1]
