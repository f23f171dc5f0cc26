"""Where the CPU went during a measured window: the machine, the PostgreSQL server, the harness.

Worker processes count their own CPU (bench/child.py). This adds the
figures that say whether the machine ran out of cores and who used them:
the harness's own CPU (it polls the workers' progress and the table), the
busy time of every core (``/proc/stat``), and the CPU time of the
PostgreSQL server's processes (its postmaster and every child: backends,
WAL writer, checkpointer, autovacuum), read from ``/proc`` when the server
runs on this machine. A child that exits during the window is still
counted: the kernel adds its time to the postmaster's ``cutime``/``cstime``
when the postmaster reaps it. Elsewhere (no ``/proc``, a remote server)
the figures are left out.

The server's figure covers all of its databases, so any other work on the
same server during the window counts too. The backends of the benchmark's
own database (the workers' sessions, the harness's poller) are therefore
also counted on their own: those connected when the window starts or ends
(a session that both opens and closes inside the window is missed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# A process every running server has, whose parent is the postmaster.
FIND_SERVER_CHILD = "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
DATABASE_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"


class CpuWindow:
    """CPU seconds used between ``start()`` and ``stop()``: machine, server and harness."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postmaster = _postmaster(url)
        self._machine: float | None = None
        self._server: float | None = None
        self._backends: dict[int, float] = {}
        self._harness = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._machine = _machine_busy()
        self._server = _server_cpu(self.postmaster)
        self._backends = _backend_cpu(self.url, self.postmaster)
        self._harness = time.process_time()
        self._wall = time.perf_counter()

    def stop(self) -> dict[str, float]:
        """``machine_cores``, ``server_cores``, ``backend_cores``, ``harness_cores``:
        CPU seconds per second of the window. On 2 cores, ``machine_cores`` near
        2 means the machine had none to spare.
        """
        wall = time.perf_counter() - self._wall
        harness = time.process_time() - self._harness
        machine, server = _machine_busy(), _server_cpu(self.postmaster)
        backends = _backend_cpu(self.url, self.postmaster)
        if wall <= 0:
            return {}
        result = {"harness_cores": harness / wall}
        if machine is not None and self._machine is not None:
            result["machine_cores"] = (machine - self._machine) / wall
        if server is not None and self._server is not None:
            result["server_cores"] = (server - self._server) / wall
        if backends:
            used = sum(cpu - self._backends.get(pid, 0.0) for pid, cpu in backends.items())
            result["backend_cores"] = used / wall
        return result


def _machine_busy() -> float | None:
    """Seconds every core has spent busy since boot (not idle, not waiting for IO)."""
    try:
        fields = (PROC / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    # cpu user nice system idle iowait irq softirq steal (guest time is inside user).
    ticks = [int(value) for value in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def _postmaster(url: str) -> int | None:
    """The pid of the server's postmaster when it runs on this machine, else None."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(FIND_SERVER_CHILD).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    stat = _stat(int(row[0]))
    if stat is None:
        return None  # not visible here: a remote server, or another pid namespace
    parent = int(stat[2])
    parent_stat = _stat(parent)
    if parent_stat is None or not parent_stat[0].startswith(("postgres", "postmaster")):
        return None
    return parent


def _server_cpu(postmaster: int | None) -> float | None:
    """CPU seconds of the postmaster, its live children, and its reaped ones."""
    if postmaster is None:
        return None
    own = _stat(postmaster)
    if own is None:
        return None
    # utime, stime, cutime, cstime (fields 14-17 of /proc/PID/stat).
    ticks = sum(int(value) for value in own[12:16])
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == postmaster:
            continue
        stat = _stat(int(entry.name))
        if stat is not None and int(stat[2]) == postmaster:
            ticks += int(stat[12]) + int(stat[13])
    return ticks / TICK


def _backend_cpu(url: str, postmaster: int | None) -> dict[int, float]:
    """CPU seconds of each backend connected to the database at ``url``, by pid."""
    if postmaster is None:
        return {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            pids = [int(row[0]) for row in conn.execute(DATABASE_BACKENDS)]
            mine = conn.info.backend_pid
    except psycopg.Error:
        return {}
    found = {}
    for pid in pids:
        stat = _stat(pid)
        if pid != mine and stat is not None and int(stat[2]) == postmaster:
            found[pid] = (int(stat[12]) + int(stat[13])) / TICK
    return found


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat from ``comm`` on (``comm`` first, then state, ppid...),
    with the parentheses around ``comm`` removed; None if the process is not visible."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    start, end = text.find("("), text.rfind(")")
    # [comm, state, ppid, ...]: field N of proc(5) is at index N - 2.
    return [text[start + 1 : end], *text[end + 2 :].split()]
