"""``que worker``: load a work map, run a WorkerPool, stop gracefully on a signal.

With ``--processes N`` the command becomes a supervisor: it starts N copies
of itself (each a one-process worker with its own client), forwards the
first SIGTERM or SIGINT to them, waits, and replaces a process that dies.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from ._cli_app import WorkMap
from ._cli_overdue import EXIT_JOB_TIMEOUT, end_process_on_overdue
from ._cli_runners import Runner, make_runner
from ._cli_settings import WorkerSettings
from ._cli_signals import Signals, exit_now, ignore_repeat
from ._cli_support import (
    EXIT_ERROR,
    Database,
    child_environment,
    flush_logs,
)
from .client import Client

logger = logging.getLogger("que.cli")

# Set by a supervisor in the environment of the worker processes it starts.
PARENT_ENV = "QUE_WORKER_PARENT"
NUMBER_ENV = "QUE_WORKER_NUMBER"

# A worker process that fails this soon after it started is not restarted:
# the same failure would repeat (a crash at import, a database refusing it).
STARTUP_GRACE = 10.0
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
# How long a supervisor waits past --shutdown-timeout for its processes to exit.
EXIT_MARGIN = 10.0
POLL_INTERVAL = 0.2


# -- one process --------------------------------------------------------------------


def run_worker(settings: WorkerSettings, database: Database, work_map: WorkMap) -> int:
    """Work jobs until a signal; the exit code of ``que worker``."""
    parent = _supervisor_pid()
    if settings.processes > 1 and parent is None:
        return Supervisor(settings, database).run()
    return _run_threads(settings, database, work_map, parent)


def _supervisor_pid() -> int | None:
    """The supervisor's pid when this process is one of its workers, else None."""
    raw = os.environ.pop(PARENT_ENV, None)
    if raw is None or not raw.isdigit():
        return None
    pid = int(raw)
    return pid if pid == os.getppid() else None


def _run_threads(
    settings: WorkerSettings,
    database: Database,
    work_map: WorkMap,
    parent: int | None,
) -> int:
    # Only the supervisor decides to exit at once (it kills its workers), so
    # that a signal sent to the whole process group is not counted twice.
    signals = Signals(on_repeat=ignore_repeat if parent else exit_now)
    signals.install()
    try:
        # A worker process of a supervisor ends itself when a job hangs past its
        # timeout, so that the supervisor replaces it and the job is worked
        # again; a lone worker can only report it.
        on_overdue = end_process_on_overdue(database) if parent is not None else None
        runner = make_runner(settings, database, work_map, on_overdue)
        try:
            _work_until_stopped(settings, database, work_map, runner, signals, parent)
        finally:
            runner.close()
    finally:
        signals.restore()
    logger.info("que worker stopped")
    return 0


def _work_until_stopped(
    settings: WorkerSettings,
    database: Database,
    work_map: WorkMap,
    pool: Runner,
    signals: Signals,
    parent: int | None,
) -> None:
    number = os.environ.get(NUMBER_ENV)
    logger.info(
        "que worker%s started: queue %r, concurrency %d, %s engine%s, wake interval %gs, "
        "database %s, job types: %s",
        f" process {number}" if number else "",
        settings.queue,
        settings.concurrency,
        settings.engine,
        " (asyncio)" if pool.is_async else "",
        settings.interval,
        database.describe(),
        ", ".join(sorted(work_map)),
        extra={"queue": settings.queue, "concurrency": settings.concurrency},
    )
    pool.start()
    reason = ""
    while not reason:
        if signals.stop.wait(1.0):
            reason = f"{signals.name} received"
        elif parent is not None and os.getppid() != parent:
            reason = f"the supervising que worker (pid {parent}) is gone"
    logger.info(
        "%s: no new jobs are claimed; waiting up to %gs for running jobs",
        reason,
        settings.shutdown_timeout,
    )
    if not pool.shutdown(settings.shutdown_timeout):
        logger.warning(
            "jobs still running after %gs; exiting: their locks are released with the "
            "connections and they will be worked again",
            settings.shutdown_timeout,
        )
        flush_logs()
        os._exit(EXIT_ERROR)  # the threads still running jobs cannot be joined


# -- several processes --------------------------------------------------------------


@dataclass
class _Child:
    number: int
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    """Starts ``settings.processes`` worker processes and keeps them running until a signal."""

    def __init__(self, settings: WorkerSettings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.children: list[_Child] = []
        self._restarts: list[float] = []
        self.signals = Signals(on_repeat=self._kill_and_exit)

    def run(self) -> int:
        self.signals.install()
        try:
            # Fail here, once, rather than in every process: unreachable
            # database, wrong schema version.
            Client(self.database.connector, max_connections=1).close()
            logger.info(
                "que worker started: %d processes of %d threads each, queue %r, "
                "wake interval %gs, database %s",
                self.settings.processes,
                self.settings.concurrency,
                self.settings.queue,
                self.settings.interval,
                self.database.describe(),
            )
            self.children = [self._spawn(n) for n in range(1, self.settings.processes + 1)]
            code = self._watch()
            return self._stop_children() or code
        finally:
            self._kill_all()
            self.signals.restore()

    def _command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable,
            "-m",
            "que.cli",
            "worker",
            s.app,
            "--queue",
            s.queue,
            "--concurrency",
            str(s.concurrency),
            "--processes",
            "1",
            "--wake-interval",
            repr(s.interval),
            "--shutdown-timeout",
            repr(s.shutdown_timeout),
            "--log-level",
            logging.getLevelName(s.log_level),
            "--engine",
            s.engine,
            *[arg for value in s.timeout_args for arg in ("--job-timeout", value)],
        ]

    def _spawn(self, number: int) -> _Child:
        env = child_environment(
            self.database, {PARENT_ENV: str(os.getpid()), NUMBER_ENV: str(number)}
        )
        # A session of its own: a Ctrl-C in the terminal reaches the
        # supervisor only, which forwards it once.
        process = subprocess.Popen(self._command(), env=env, start_new_session=True)
        logger.info("started worker process %d (pid %d)", number, process.pid)
        return _Child(number, process, time.monotonic())

    def _watch(self) -> int:
        while not self.signals.stop.wait(POLL_INTERVAL):
            for index, child in enumerate(self.children):
                code = child.process.poll()
                if code is None:
                    continue
                lived = time.monotonic() - child.started
                if code > 0 and lived < STARTUP_GRACE and code != EXIT_JOB_TIMEOUT:
                    logger.error(
                        "worker process %d (pid %d) exited with code %d %.1fs after it "
                        "started; stopping the others",
                        child.number,
                        child.process.pid,
                        code,
                        lived,
                    )
                    return EXIT_ERROR
                if not self._may_restart():
                    logger.error(
                        "worker processes exited %d times within %gs; giving up",
                        MAX_RESTARTS,
                        RESTART_WINDOW,
                    )
                    return EXIT_ERROR
                logger.warning(
                    "worker process %d (pid %d) %s; starting a new one (the jobs it was "
                    "working are free again)",
                    child.number,
                    child.process.pid,
                    _exit_text(code),
                )
                self.children[index] = self._spawn(child.number)
        return 0

    def _may_restart(self) -> bool:
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW]
        self._restarts.append(now)
        return len(self._restarts) <= MAX_RESTARTS

    def _stop_children(self) -> int:
        """Forward SIGTERM, wait for every process; non-zero if one did not stop cleanly."""
        live = [c for c in self.children if c.process.poll() is None]
        if self.signals.stop.is_set():
            logger.info(
                "%s received: stopping %d worker processes (up to %gs for running jobs)",
                self.signals.name,
                len(live),
                self.settings.shutdown_timeout,
            )
        for child in live:
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout + EXIT_MARGIN
        result = 0
        for child in self.children:
            try:
                code = child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning(
                    "worker process %d (pid %d) did not stop; killing it",
                    child.number,
                    child.process.pid,
                )
                child.process.kill()
                child.process.wait()
                result = EXIT_ERROR
                continue
            # Killed by the forwarded SIGTERM before it could install its
            # handler: it had claimed nothing yet.
            if code not in (0, -signal.SIGTERM):
                logger.warning(
                    "worker process %d (pid %d) %s",
                    child.number,
                    child.process.pid,
                    _exit_text(code),
                )
                result = EXIT_ERROR
        if result == 0:
            logger.info("que worker stopped")
        return result

    def _kill_all(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
                child.process.wait()

    def _kill_and_exit(self, signum: int) -> None:
        logger.warning(
            "second %s: killing the worker processes; their jobs are released with their "
            "connections and will be worked again",
            signal.Signals(signum).name,
        )
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
        flush_logs()
        os._exit(128 + signum)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
