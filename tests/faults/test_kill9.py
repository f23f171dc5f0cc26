"""kill -9 of worker processes in the middle of a run loses nothing and records
each job's effect exactly once."""

from __future__ import annotations

import random
import signal
import time

from .conftest import Workers, assert_exactly_once, enqueue_records, others, scalar, wait_for

JOBS = 20_000
PROCESSES = 4


def test_kill_9_every_second_loses_nothing(workers: Workers, fault_db: str) -> None:
    ids = enqueue_records(fault_db, JOBS, seconds=0.001)
    slots = [workers.start("--concurrency", "4") for _ in range(PROCESSES)]
    kills = 0
    started = time.monotonic()
    chooser = random.Random(20261129)
    deadline = started + 600
    while scalar(fault_db, "SELECT count(*) FROM que_jobs") > 0:
        assert time.monotonic() < deadline, "the run did not finish in 10 minutes"
        time.sleep(1.0)
        victim = chooser.randrange(PROCESSES)
        slots[victim].process.send_signal(signal.SIGKILL)
        slots[victim].process.wait()
        kills += 1
        slots[victim] = workers.start("--concurrency", "4")
    elapsed = time.monotonic() - started
    codes = workers.stop_all()
    assert codes.count(-signal.SIGKILL) == kills
    # A replacement stopped before it installed its signal handler dies of the
    # SIGTERM itself: it had not claimed anything yet.
    assert all(code in (0, -signal.SIGTERM) for code in codes if code != -signal.SIGKILL)
    wait_for(lambda: others(fault_db) == 0, "the killed workers' sessions to end", 30)
    assert_exactly_once(fault_db, ids)
    print(f"\nkill -9: {JOBS} jobs, {PROCESSES} processes, {kills} kills, {elapsed:.1f}s")
    assert kills >= 1
