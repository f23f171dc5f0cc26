"""A finished job and its handle are freed as soon as nothing uses them, not
left for the cyclic garbage collector: an engine burning down short jobs
otherwise kept thousands alive between collections. On both sides."""

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import que

from ..sides import AnyClient, Side, r, wait_until


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_job_worked_by_the_engine_is_freed_without_the_collector(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], no_cyclic_gc: None
) -> None:
    jobs: list[weakref.ref[Any]] = []

    def work(job: Any) -> None:
        jobs.append(weakref.ref(job))

    await r(qc.enqueue_many([que.Job(type="W") for _ in range(20)]))
    engine = side.batch_worker(qc, {"W": work})
    side.start_engine(engine)
    try:
        await wait_until(lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,))
    finally:
        assert await side.stop_engine(engine)
    del engine
    assert len(jobs) == 20
    alive = [ref for ref in jobs if ref() is not None]
    assert alive == []


async def test_a_job_worked_by_a_worker_lets_go_of_its_handle_at_done(
    side: Side, qc: AnyClient, no_cyclic_gc: None
) -> None:
    jobs: list[Any] = []
    await r(qc.enqueue(que.Job(type="W")))
    worker = side.worker(qc, {"W": jobs.append})
    assert await side.call(worker.work_one) is True
    job = jobs.pop()
    ref = weakref.ref(job)
    assert job._handle is None  # let go at done()
    with pytest.raises(que.QueError, match="done\\(\\) ran"):
        await r(job.connection())
    del job
    assert ref() is None


async def test_a_locked_job_still_says_it_was_deleted_after_done(
    side: Side, qc: AnyClient, no_cyclic_gc: None
) -> None:
    await r(qc.enqueue(que.Job(type="W")))
    job = await r(qc.lock_job())
    assert job is not None
    await r(job.delete())
    await r(job.done())
    assert job._handle is None and job.deleted and not job.cancelled
