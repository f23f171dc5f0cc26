"""SIGTERM under load, and a minute of 50 producers against 4 worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import que

from .conftest import (
    Workers,
    assert_exactly_once,
    effects,
    enqueue_records,
    scalar,
    wait_for,
)

LOAD_SECONDS = float(os.environ.get("QUE_FAULT_LOAD_SECONDS", "60"))
# 50 producers each pausing this long between jobs offer about 400 jobs/s,
# below what four worker processes drain on a busy 2-core machine.
PRODUCER_PAUSE = 0.125


def working(url: str) -> int:
    return int(
        scalar(
            url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    )


def in_transaction(url: str) -> int:
    """Sessions of the test's database inside a transaction: jobs that are running."""
    return int(
        scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'",
        )
    )


def test_sigterm_with_50_jobs_running(workers: Workers, fault_db: str) -> None:
    ids = enqueue_records(fault_db, 120, seconds=2.0)
    worker = workers.start("--concurrency", "50", "--shutdown-timeout", "30")
    # 50 running (each has written its effect in its open transaction), 25 more
    # claimed ahead by the batched engine. Locks alone are not enough: a claimed
    # job may still wait in the engine's queue for a free thread.
    wait_for(
        lambda: working(fault_db) == 75 and in_transaction(fault_db) == 50,
        "50 jobs running and 25 claimed ahead",
        60,
    )
    stopped = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(60) == 0
    took = time.monotonic() - stopped
    assert took < 30  # within the shutdown timeout
    finished = effects(fault_db)
    left = scalar(fault_db, "SELECT count(*) FROM que_jobs")
    assert set(finished.values()) == {1}
    assert len(finished) + left == len(ids)  # each job either finished once or is still there
    assert len(finished) >= 50  # every job that was running finished
    assert working(fault_db) == 0
    print(
        f"\nSIGTERM with 50 running: exit 0 after {took:.2f}s, {len(finished)} finished, "
        f"{left} left for the next worker"
    )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_fifty_producers_four_worker_processes(workers: Workers, fault_db: str) -> None:
    processes = [workers.start("--concurrency", "4") for _ in range(4)]
    ids: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    stop = threading.Event()

    def produce(client: que.Client) -> None:
        try:
            while not stop.is_set():
                job = client.enqueue(que.Job(type="Record"))
                with lock:
                    ids.append(job.id)  # type: ignore[arg-type]
                time.sleep(PRODUCER_PAUSE)
        except BaseException as exc:  # reported below, never swallowed
            errors.append(exc)

    with que.Client(fault_db, max_connections=20) as client:
        producers = [threading.Thread(target=produce, args=(client,)) for _ in range(50)]
        for thread in producers:
            thread.start()
        time.sleep(5)  # let the workers reach their working size
        rss_start = [rss_kb(p.process.pid) for p in processes]
        time.sleep(max(0.0, LOAD_SECONDS - 5))
        rss_end = [rss_kb(p.process.pid) for p in processes]
        stop.set()
        for thread in producers:
            thread.join(60)
    assert not errors, errors[:3]
    wait_for(lambda: scalar(fault_db, "SELECT count(*) FROM que_jobs") == 0, "the queue to drain")
    assert workers.stop_all() == [0, 0, 0, 0]
    logs = "".join(p.stderr() for p in processes)
    assert "ERROR" not in logs and "Traceback" not in logs, logs[-2000:]
    assert_exactly_once(fault_db, ids)
    growth = [end - start for start, end in zip(rss_start, rss_end, strict=True)]
    print(
        f"\nload: {len(ids)} jobs from 50 producers in {LOAD_SECONDS:.0f}s; worker RSS "
        f"start {[k // 1024 for k in rss_start]} MB, end {[k // 1024 for k in rss_end]} MB"
    )
    assert max(growth) < 20 * 1024, f"worker memory grew by {growth} kB"
