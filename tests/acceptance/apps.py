"""Work maps for the acceptance tests, loaded by `que worker tests.acceptance.apps:...`.

Jobs leave marker files in the directory given as their first argument, so a
test can see which process started and finished each job, and a gated job
waits until the test creates the file ``open`` in that directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import que
from que import Job

GATE_TIMEOUT = 60.0


def _mark(job: Job, what: str) -> Path:
    folder = Path(job.args[0])
    marker = folder / f"{what}-{job.id}-{os.getpid()}"
    marker.write_text(str(job.error_count))
    return folder


def gate(job: Job) -> None:
    """Starts, then waits until the test opens the gate (or a minute passes)."""
    folder = _mark(job, "started")
    deadline = time.monotonic() + GATE_TIMEOUT
    while not (folder / "open").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.01)
    _mark(job, "done")


def quick(job: Job) -> None:
    _mark(job, "done")


def fail(job: Job) -> None:
    raise RuntimeError("this job always fails")


work_map = {"Gate": gate, "Quick": quick, "Fail": fail}


def make_work_map() -> dict[str, Any]:
    """The work map, from a function, as `module:function` may name."""
    return dict(work_map)


not_a_work_map = 42
not_callable_values = {"Gate": "not a function"}


async def quick_async(job: Any) -> None:
    """An async work function: the worker runs the asyncio engine for this map."""
    _mark(job, "done")


async_work_map = {"Quick": quick_async, "Fail": fail}


# Periodic "Quick" jobs for `que worker --schedules`: each leaves its marker in
# the directory the test names in QUE_TEST_SCHEDULE_DIR.
schedules = [
    que.Schedule(
        "Quick",
        every=1,
        args=[os.environ.get("QUE_TEST_SCHEDULE_DIR", "/nonexistent")],
        name="every second",
        missed="all",
    )
]
