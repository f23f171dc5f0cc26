"""Work maps for the fault tests. Every job records its effect through job.tx, in
the same transaction as its delete, so a test can count effects per job."""

from __future__ import annotations

import os
import time
from pathlib import Path

from que import Job

RESULTS_TABLE = """
CREATE TABLE results (
    job_id bigint NOT NULL,
    pid integer NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


def record(job: Job) -> None:
    """Record the effect, then take args[0] seconds (default none)."""
    job.tx.execute("INSERT INTO results (job_id, pid) VALUES (%s, %s)", [job.id, os.getpid()])
    seconds = float(job.args[0]) if job.args else 0.0
    if seconds:
        time.sleep(seconds)


def hang_once(job: Job) -> None:
    """Hangs on its first attempt (as if stuck on a dead socket); records its effect after."""
    if job.error_count == 0:
        time.sleep(120)
    record(job)


def hang_first_run(job: Job) -> None:
    """Hangs on its first run, marked by creating the file args[0] (the test kills
    that worker); records its effect on the next run."""
    marker = Path(job.args[0])
    if not marker.exists():
        marker.touch()
        time.sleep(120)
    job.tx.execute("INSERT INTO results (job_id, pid) VALUES (%s, %s)", [job.id, os.getpid()])


work_map = {"Record": record, "HangOnce": hang_once, "HangFirstRun": hang_first_run}
