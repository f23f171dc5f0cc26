"""Lifecycle hooks (``que.before_job``, ``after_job``, ``on_job_failure``) on the
classic worker and the batched engine, on both faces."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import que

from ..sides import AnyClient, Side, r, wait_until

ENGINES = ("classic", "batch")


def hook_errors(caplog: pytest.LogCaptureFixture) -> list[BaseException]:
    """The exceptions of hooks that raised, as logged on que.hooks."""
    return [
        rec.exc_info[1]
        for rec in caplog.records
        if rec.name == "que.hooks" and rec.exc_info and rec.exc_info[1] is not None
    ]


@pytest.fixture
def registered() -> Iterator[Callable[..., Any]]:
    """Registers hooks for one test and removes them after it."""
    added: list[Any] = []

    def register(kind: Callable[[Any], Any], hook: Any) -> Any:
        added.append(hook)
        return kind(hook)

    yield register
    for hook in added:
        que.remove_hook(hook)


@pytest.mark.parametrize("engine", ENGINES)
async def test_hooks_see_each_job_and_its_outcome(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    run: Any,
    registered: Any,
    engine: str,
) -> None:
    lock = threading.Lock()
    seen: list[tuple[str, Any, Any]] = []

    def note(kind: str, job: Any, detail: Any = None) -> None:
        with lock:
            seen.append((kind, job.type, detail))

    registered(que.before_job, lambda job: note("before", job))
    registered(que.after_job, lambda job, result: note("after", job, result))
    registered(que.on_job_failure, lambda job, exc: note("failure", job, exc))

    async def ok(job: Any) -> None:
        note("work", job)

    async def broken(job: Any) -> None:
        raise ValueError("<b>broken</b>")

    async def snooze(job: Any) -> None:
        raise que.Snooze(3600)

    for job_type in ("Ok", "Broken", "Snooze"):
        await r(qc.enqueue(side.job_class(type=job_type)))
    work = {"Ok": side.handler(ok), "Broken": side.handler(broken), "Snooze": side.handler(snooze)}
    await run(engine, work)
    await wait_until(lambda: sum(kind == "after" for kind, _, _ in seen) == 3, 30, "3 jobs run")

    by_type: dict[str, list[tuple[str, Any]]] = {}
    for kind, job_type, detail in seen:
        by_type.setdefault(job_type, []).append((kind, detail))
    assert [kind for kind, _ in by_type["Ok"]] == ["before", "work", "after"]
    done = by_type["Ok"][2][1]
    assert isinstance(done, que.JobResult) and done.outcome == "done" and done.error is None
    assert done.duration >= 0
    assert [kind for kind, _ in by_type["Broken"]] == ["before", "failure", "after"]
    exc = by_type["Broken"][1][1]
    assert isinstance(exc, ValueError) and str(exc) == "<b>broken</b>"
    failed = by_type["Broken"][2][1]
    assert (failed.outcome, failed.error) == ("failed", exc)
    assert [kind for kind, _ in by_type["Snooze"]] == ["before", "after"]  # not a failure
    assert by_type["Snooze"][1][1].outcome == "snoozed"


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_hook_that_raises_is_logged_and_the_job_still_works(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    run: Any,
    registered: Any,
    engine: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_hook(job: Any, *rest: Any) -> None:
        raise RuntimeError("reporter down")

    registered(que.before_job, bad_hook)
    registered(que.after_job, bad_hook)
    worked = threading.Event()

    async def ok(job: Any) -> None:
        worked.set()

    await r(qc.enqueue(side.job_class(type="Ok")))
    await run(engine, {"Ok": side.handler(ok)})
    await wait_until(
        lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,),
        30,
        "the job deleted",
    )
    assert worked.is_set()
    await wait_until(lambda: len(hook_errors(caplog)) >= 2, 30, "both hook failures logged")
    assert all("reporter down" in str(exc) for exc in hook_errors(caplog))


async def test_async_hooks_are_awaited_by_the_async_worker_and_refused_by_the_sync_one(
    side: Side,
    qc: AnyClient,
    conn: psycopg.Connection[Any],
    run: Any,
    registered: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    awaited = threading.Event()

    async def async_hook(job: Any) -> None:
        awaited.set()

    registered(que.before_job, async_hook)

    async def ok(job: Any) -> None:
        pass

    await r(qc.enqueue(side.job_class(type="Ok")))
    await run("classic", {"Ok": side.handler(ok)})
    await wait_until(
        lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,),
        30,
        "the job deleted",
    )
    if side.is_async:
        assert awaited.is_set()
    else:
        assert not awaited.is_set()
        assert any("is async" in str(exc) for exc in hook_errors(caplog))
