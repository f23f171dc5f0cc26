"""``que demo``: enqueue a few thousand jobs and work them, showing progress and throughput.

The demo's jobs go to their own queue, ``que-demo``, so that they never meet
the jobs of an application sharing the database.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TextIO

from ._cli_database import Database
from ._cli_support import format_table, stats_table
from ._schema_base import CURRENT_VERSION
from .client import Client
from .engine import BatchWorker
from .job import JobStats
from .job_handle import Job
from .schema import current_version, migrate

DEMO_QUEUE = "que-demo"

RESIZE = "demo.ResizeImage"
EMAIL = "demo.SendEmail"
FLAKY = "demo.SyncInventory"
REPORT = "demo.HourlyReport"

# Of every ten jobs: four resizes, four emails, one that fails once, one
# scheduled a second ahead.
MIX = (RESIZE, EMAIL, RESIZE, EMAIL, FLAKY, RESIZE, EMAIL, RESIZE, EMAIL, REPORT)
SCHEDULED_AHEAD = timedelta(seconds=1)
BATCH = 1000
# Idle workers look again this often: scheduled jobs and retries start promptly.
WAKE_INTERVAL = 0.05
REFRESH = 0.5


class DemoFailure(Exception):
    """The error a demo job raises on purpose."""


@dataclass
class _TypeTally:
    done: int = 0
    failed: int = 0
    seconds: float = 0.0


@dataclass
class Tally:
    """What the demo's work functions did, counted from every worker thread."""

    first_wave: int
    started: float = field(default_factory=time.monotonic)
    first_wave_seconds: float | None = None
    attempts: int = 0
    by_type: dict[str, _TypeTally] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, job_type: str, seconds: float, failed: bool) -> None:
        with self._lock:
            entry = self.by_type.setdefault(job_type, _TypeTally())
            entry.seconds += seconds
            if failed:
                entry.failed += 1
            else:
                entry.done += 1
            self.attempts += 1
            if self.attempts == self.first_wave and self.first_wave_seconds is None:
                self.first_wave_seconds = time.monotonic() - self.started


def work_map(tally: Tally) -> dict[str, Callable[[Job], None]]:
    """The demo's job types; each reports to ``tally``."""

    def resize(job: Job) -> None:
        digest = str(job.args).encode()
        for _ in range(200):  # a little CPU work
            digest = hashlib.sha256(digest).digest()

    def email(job: Job) -> None:
        time.sleep(0.002)  # a little IO wait

    def sync_inventory(job: Job) -> None:
        if job.error_count == 0:
            raise DemoFailure("upstream timed out (demo: fails on the first attempt)")

    def report(job: Job) -> None:
        time.sleep(0.001)

    def timed(job_type: str, func: Callable[[Job], None]) -> Callable[[Job], None]:
        def run(job: Job) -> None:
            started = time.perf_counter()
            try:
                func(job)
            except Exception:
                tally.record(job_type, time.perf_counter() - started, failed=True)
                raise
            tally.record(job_type, time.perf_counter() - started, failed=False)

        return run

    return {
        RESIZE: timed(RESIZE, resize),
        EMAIL: timed(EMAIL, email),
        FLAKY: timed(FLAKY, sync_inventory),
        REPORT: timed(REPORT, report),
    }


def demo_jobs(count: int, now: datetime) -> list[Job]:
    """``count`` demo jobs in the MIX proportions; reports run a second after ``now``."""
    jobs = []
    for number in range(count):
        job_type = MIX[number % len(MIX)]
        run_at = now + SCHEDULED_AHEAD if job_type == REPORT else None
        jobs.append(Job(type=job_type, args=[number], queue=DEMO_QUEUE, run_at=run_at))
    return jobs


def _queue_stats(client: Client) -> list[JobStats]:
    return [s for s in client.stats() if s.queue == DEMO_QUEUE]


class Progress:
    """A bar redrawn in place on a terminal, a line a second otherwise."""

    WIDTH = 30

    def __init__(self, out: TextIO, total: int, live: bool) -> None:
        self.out = out
        self.total = max(total, 1)
        self.live = live
        self._last_line = 0.0

    def show(
        self, remaining: int, working: int, retrying: int, rate: float, final: bool = False
    ) -> None:
        done = self.total - remaining
        filled = int(self.WIDTH * done / self.total)
        text = (
            f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done:,}/{self.total:,} done, "
            f"{working} working, {retrying:,} waiting to retry, {rate:,.0f} jobs/s"
        )
        if self.live:
            self.out.write("\r" + text.ljust(100) + ("\n" if final else ""))
            self.out.flush()
            return
        now = time.monotonic()
        if final or now - self._last_line >= 1.0:
            self._last_line = now
            print(text, file=self.out, flush=True)


@contextmanager
def _quiet_worker_log(verbose: bool) -> Iterator[None]:
    """Without ``verbose``, keep the per-job lines (and the planned failures) off screen."""
    worker_log = logging.getLogger("que.worker")
    before = worker_log.level
    if not verbose:
        worker_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        worker_log.setLevel(before)


def run_demo(
    database: Database,
    *,
    jobs: int,
    concurrency: int,
    out: TextIO,
    live: bool,
    verbose: bool = False,
) -> int:
    """The whole demo; returns the exit code."""
    with database.connector.connect() as conn:
        found = current_version(conn)
        if found != CURRENT_VERSION:
            migrate(conn)
            print(f"migrated que_jobs from schema version {found} to {CURRENT_VERSION}", file=out)
    with Client(database.connector, max_connections=concurrency + 3) as client:
        leftover = sum(s.count for s in _queue_stats(client))
        if leftover:
            print(
                f"{leftover:,} jobs were left in queue {DEMO_QUEUE!r} by an earlier demo; "
                "they are worked too",
                file=out,
            )
        batch = demo_jobs(jobs, datetime.now(timezone.utc))
        started = time.monotonic()
        for first in range(0, len(batch), BATCH):
            client.enqueue_many(batch[first : first + BATCH])
        print(
            f"enqueued {jobs:,} jobs in {time.monotonic() - started:.2f}s "
            f"({sum(j.type == FLAKY for j in batch):,} fail once and are retried after "
            f"backoff, {sum(j.type == REPORT for j in batch):,} are scheduled "
            f"{SCHEDULED_AHEAD.total_seconds():g}s ahead):",
            file=out,
        )
        print(stats_table(_queue_stats(client), datetime.now(timezone.utc).astimezone()), file=out)
        total = leftover + jobs
        due = total - sum(j.type == REPORT for j in batch)
        print(f"\nworking them with a BatchWorker of {concurrency} threads...", file=out)
        tally, elapsed = _work(client, total, due, concurrency, out, live, verbose)
        _report(client, tally, elapsed, concurrency, out)
    return 0


def _work(
    client: Client, total: int, due: int, concurrency: int, out: TextIO, live: bool, verbose: bool
) -> tuple[Tally, float]:
    tally = Tally(first_wave=due)
    pool = BatchWorker(
        client, work_map(tally), concurrency=concurrency, queue=DEMO_QUEUE, interval=WAKE_INTERVAL
    )
    progress = Progress(out, total, live)
    with _quiet_worker_log(verbose):
        tally.started = time.monotonic()
        pool.start()
        try:
            while True:
                stats = _queue_stats(client)
                remaining = sum(s.count for s in stats)
                elapsed = time.monotonic() - tally.started
                rate = tally.attempts / elapsed if elapsed > 0 else 0.0
                progress.show(
                    remaining,
                    sum(s.count_working for s in stats),
                    sum(s.count_errored for s in stats),
                    rate,
                    final=remaining == 0,
                )
                if remaining == 0:
                    break
                time.sleep(REFRESH)  # the display's refresh rate
        finally:
            pool.shutdown(timeout=30)
    return tally, time.monotonic() - tally.started


def _report(client: Client, tally: Tally, elapsed: float, concurrency: int, out: TextIO) -> None:
    rows = []
    for job_type, entry in sorted(tally.by_type.items()):
        attempts = entry.done + entry.failed
        mean_ms = 1000 * entry.seconds / attempts if attempts else 0.0
        rows.append(
            (job_type, f"{entry.done:,}", f"{attempts:,}", f"{entry.failed:,}", f"{mean_ms:.2f}")
        )
    done = sum(e.done for e in tally.by_type.values())
    failed = sum(e.failed for e in tally.by_type.values())
    print(
        f"\nworked {done:,} jobs in {elapsed:.2f}s ({tally.attempts:,} attempts; "
        f"{failed:,} failed and were retried after the backoff):",
        file=out,
    )
    print(
        format_table(("TYPE", "DONE", "ATTEMPTS", "FAILED", "MEAN MS"), rows, right={1, 2, 3, 4}),
        file=out,
    )
    left = _queue_stats(client)
    print("\nque stats for queue 'que-demo' now:", file=out)
    print(
        stats_table(left, datetime.now(timezone.utc).astimezone())
        if left
        else "no jobs left: every job was worked and deleted",
        file=out,
    )
    first = tally.first_wave_seconds or elapsed
    wave = min(tally.first_wave, tally.attempts)
    rate = wave / first if first > 0 else 0.0
    print(
        f"\nthroughput: {rate:,.0f} jobs/s ({wave:,} jobs due at the start worked in "
        f"{first:.2f}s by {concurrency} threads; the rest of the {elapsed:.1f}s was spent "
        "waiting for scheduled jobs and retries)",
        file=out,
    )
