"""worker_lifespan in a real Starlette app, through its real lifespan
(starlette's TestClient), on PostgreSQL: shutdown waits for a running job,
and a job still running at the shutdown timeout is left to be retried."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import que

from ..helpers import advisory_lock_count
from ..optional import require


class Stopping(logging.Handler):
    """Sets ``event`` when the lifespan starts to stop its worker, and
    ``timed_out`` when the worker did not stop in time."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()
        self.timed_out = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "stopping the que worker":
            self.event.set()
        elif record.getMessage().startswith("the que worker did not stop"):
            self.timed_out.set()


@pytest.fixture
def stopping() -> Iterator[Stopping]:
    handler = Stopping()
    log = logging.getLogger("que.contrib.asgi")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler
    log.removeHandler(handler)
    log.setLevel(level)


def app_with(db_url: str, work: Any, **options: Any) -> Any:
    require("starlette")
    from starlette.applications import Starlette

    from que.contrib.asgi import worker_lifespan

    return Starlette(lifespan=worker_lifespan(lambda: que.AsyncClient(db_url), work, **options))


def count_jobs(db_url: str) -> int:
    with que.Client(db_url) as client:
        return sum(stat.count for stat in client.stats())


def test_shutdown_waits_for_the_running_job(db_url: str, stopping: Stopping) -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    async def slow(job: que.AsyncJob) -> None:
        started.set()
        await asyncio.to_thread(release.wait, 60)
        finished.set()

    from starlette.testclient import TestClient

    with que.Client(db_url) as client:
        client.enqueue(que.Job(type="slow"))
    http = TestClient(app_with(db_url, {"slow": slow}))
    http.__enter__()
    assert started.wait(60), "the lifespan's worker never started the job"
    leaving = threading.Thread(target=http.__exit__, args=(None, None, None))
    leaving.start()
    try:
        assert stopping.event.wait(60), "the app never began its shutdown"
        assert leaving.is_alive()  # the shutdown waits for the job
        assert not finished.is_set()
    finally:
        release.set()
        leaving.join(60)
    assert not leaving.is_alive()
    assert finished.is_set()
    assert count_jobs(db_url) == 0
    assert advisory_lock_count(db_url) == 0


def test_a_job_running_at_the_shutdown_timeout_is_left_for_a_retry(
    db_url: str, stopping: Stopping
) -> None:
    started = threading.Event()

    async def stuck(job: que.AsyncJob) -> None:
        started.set()
        await asyncio.sleep(3600)  # cancelled when the app's event loop ends

    from starlette.testclient import TestClient

    with que.Client(db_url) as client:
        client.enqueue(que.Job(type="stuck"))
    with TestClient(app_with(db_url, {"stuck": stuck}, shutdown_timeout=0.1)):
        assert started.wait(60)
    assert stopping.timed_out.is_set()
    assert count_jobs(db_url) == 1  # still there, for another worker
    assert advisory_lock_count(db_url) == 0  # its lock went with the client
