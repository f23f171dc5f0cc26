"""A worker serves several queues, each in Que's priority order, on every
engine and both faces; a comma separates queues or is refused."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

import que

from ..sides import AnyClient, Side, r, wait_until

WAIT = 60.0


def queue_of(conn: psycopg.Connection[Any], job_id: int) -> str:
    row = conn.execute("SELECT queue FROM que_jobs WHERE job_id = %s", [job_id]).fetchone()
    assert row is not None
    return str(row[0])


async def enqueue_three_queues(qc: AnyClient) -> None:
    jobs = []
    for queue in ("mail", "billing", "other"):
        # Enqueued in reverse priority: each queue must be worked 1, 2, ..., 10.
        jobs += [
            que.Job(type="Note", queue=queue, priority=p, args=[queue, p]) for p in range(10, 0, -1)
        ]
    await r(qc.enqueue_many(jobs))


def recorder() -> tuple[list[tuple[str, int]], Any]:
    done: list[tuple[str, int]] = []
    lock = threading.Lock()

    async def note(job: Any) -> None:
        with lock:
            done.append((job.args[0], job.args[1]))

    return done, note


def assert_served(done: list[tuple[str, int]]) -> None:
    assert sorted(done) == sorted([(q, p) for q in ("mail", "billing") for p in range(1, 11)])
    for queue in ("mail", "billing"):
        assert [p for q, p in done if q == queue] == list(range(1, 11)), "priority order"
    # Both queues were served from the start: neither waited for the other to empty.
    assert {q for q, _ in done[:6]} == {"mail", "billing"}


async def test_worker_serves_several_queues_in_turn(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await enqueue_three_queues(qc)
    done, note = recorder()
    worker = side.worker(qc, {"Note": side.handler(note)}, queue=["mail", "billing"], interval=0.05)
    assert worker.queues == ("mail", "billing") and worker.queue == "mail"
    loop = side.start(worker.work)
    try:
        await wait_until(lambda: len(done) == 20, WAIT, "both queues worked")
    finally:
        assert await side.call(worker.shutdown, 30)
        await loop
    assert_served(done)
    left = conn.execute("SELECT DISTINCT queue FROM que_jobs").fetchall()
    assert left == [("other",)]


async def test_batch_worker_serves_several_queues(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    await enqueue_three_queues(qc)
    done, note = recorder()
    engine = side.batch_worker(
        qc, {"Note": side.handler(note)}, queue=["mail", "billing"], concurrency=1, buffer=0
    )
    side.start_engine(engine)
    try:
        await wait_until(lambda: len(done) == 20, WAIT, "both queues worked")
        await wait_until(
            lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (10,),
            WAIT,
            "their rows deleted",
        )
    finally:
        assert await side.stop_engine(engine, 30)
    assert_served(done)
    left = conn.execute("SELECT DISTINCT queue FROM que_jobs").fetchall()
    assert left == [("other",)]


async def test_que_queue_separates_names_with_commas(
    side: Side, qc: AnyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUE_QUEUE", "mail, billing")
    assert side.worker(qc, {}).queues == ("mail", "billing")
    assert side.batch_worker(qc, {}).queues == ("mail", "billing")


async def test_a_comma_in_a_queue_name_is_refused(side: Side, qc: AnyClient) -> None:
    for make in (side.worker, side.batch_worker):
        with pytest.raises(ValueError, match="holds a comma: give several queues as a list"):
            make(qc, {}, queue="mail,billing")
        with pytest.raises(ValueError, match="at least one queue"):
            make(qc, {}, queue=[])
