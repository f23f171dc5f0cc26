"""The leader of a set of schedules, killed with SIGKILL among several worker
processes: another takes over within seconds and no tick is enqueued twice
or lost (missed="all" makes up the ticks of the hand-over)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import psycopg

from ..sides import wait_until

SCRIPT = """
import sys, time, que
with que.Client(sys.argv[1], max_connections=2) as client:
    scheduler = que.Scheduler(client, [que.Schedule("Beat", every=1, missed="all")])
    scheduler.start()
    leading = False
    while True:
        if scheduler.leading != leading:
            leading = scheduler.leading
            print("leading" if leading else "following", flush=True)
        time.sleep(0.05)
"""

LEADER_LOCKS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class Process:
    """A scheduler in a process of its own, and what it said last."""

    def __init__(self, db_url: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, db_url], stdout=subprocess.PIPE, text=True
        )
        self.said: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.said.append(line.strip())

    @property
    def leading(self) -> bool:
        return bool(self.said) and self.said[-1] == "leading"

    def end(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
        self.popen.wait(30)
        self._reader.join(30)
        assert self.popen.stdout is not None
        self.popen.stdout.close()


def beats(conn: psycopg.Connection[Any]) -> list[Any]:
    rows = conn.execute("SELECT run_at FROM que_jobs WHERE job_class = 'Beat' ORDER BY 1")
    return [row[0] for row in rows.fetchall()]


async def test_a_killed_leader_hands_over_and_every_tick_is_enqueued_once(
    db_url: str, conn: psycopg.Connection[Any]
) -> None:
    processes = [Process(db_url) for _ in range(3)]
    try:
        await wait_until(lambda: any(p.leading for p in processes), 60, "a leader")
        await wait_until(lambda: len(beats(conn)) >= 3, 60, "three ticks")
        leaders = [p for p in processes if p.leading]
        assert len(leaders) == 1
        assert conn.execute(LEADER_LOCKS).fetchone() == (1,)
        leaders[0].end(signal.SIGKILL)
        killed_at = time.monotonic()
        rest = [p for p in processes if p is not leaders[0]]
        await wait_until(lambda: any(p.leading for p in rest), 60, "a new leader")
        print(f"hand-over took {time.monotonic() - killed_at:.2f}s")
        count = len(beats(conn))
        await wait_until(lambda: len(beats(conn)) >= count + 3, 60, "ticks go on")
        assert sum(p.leading for p in rest) == 1
        assert conn.execute(LEADER_LOCKS).fetchone() == (1,)
    finally:
        for process in processes:
            process.end(signal.SIGTERM)
    found = beats(conn)
    assert len(found) == len(set(found)), "a tick was enqueued twice"
    for earlier, later in itertools.pairwise(found):
        assert later - earlier == timedelta(seconds=1), f"ticks lost after {earlier}"
