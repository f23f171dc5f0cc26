"""``que worker --processes N``: a supervisor that starts N one-process workers
(each a copy of the command with its own client), forwards the first SIGTERM or
SIGINT to them, waits, and replaces a process that dies.

Its worker processes learn from their environment that they are supervised.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from ._cli_database import Database, child_environment
from ._cli_logging import flush_logs
from ._cli_overdue import EXIT_JOB_TIMEOUT
from ._cli_settings import LISTEN_URL_ENV, WorkerSettings
from ._cli_signals import Signals
from ._cli_support import EXIT_ERROR
from ._work import describe_queues
from .client import Client

# One logger name for everything the command logs, as users filter on it.
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


def supervisor_pid() -> int | None:
    """The supervisor's pid when this process is one of its workers, else None."""
    raw = os.environ.pop(PARENT_ENV, None)
    if raw is None or not raw.isdigit():
        return None
    pid = int(raw)
    return pid if pid == os.getppid() else None


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
            Client(
                self.database.connector, max_connections=1, pgbouncer=self.settings.pgbouncer
            ).close()
            logger.info(
                "que worker started: %d processes of %d threads each, %s, "
                "wake interval %gs, database %s",
                self.settings.processes,
                self.settings.concurrency,
                describe_queues(self.settings.queues),
                self.settings.interval,
                self.database.describe(),
            )
            self.children = [self._spawn(n) for n in range(1, self.settings.processes + 1)]
            code = self._watch()
            return self._stop_children() or code
        finally:
            self._kill_all()
            self.signals.restore()

    def _command(self, number: int) -> list[str]:
        s = self.settings
        metrics_port = s.metrics_port_of(number)
        return [
            sys.executable,
            "-m",
            "que.cli",
            "worker",
            s.app,
            *[arg for queue in s.queues for arg in ("--queue", queue)],
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
            *(["--buffer", str(s.buffer)] if s.buffer is not None else []),
            *[arg for value in s.timeout_args for arg in ("--job-timeout", value)],
            *[arg for value in s.attempts_args for arg in ("--max-attempts", value)],
            *(["--dead-retention", s.dead_retention_arg] if s.dead_retention_arg else []),
            *(["--schedules", s.schedules_arg] if s.schedules_arg else []),
            *(["--pgbouncer"] if s.pgbouncer else []),
            *(["--metrics-port", str(metrics_port)] if metrics_port is not None else []),
        ]

    def _spawn(self, number: int) -> _Child:
        extra = {PARENT_ENV: str(os.getpid()), NUMBER_ENV: str(number)}
        if self.settings.listen_url is not None:
            extra[LISTEN_URL_ENV] = self.settings.listen_url
        env = child_environment(self.database, extra)
        # A session of its own: a Ctrl-C in the terminal reaches the
        # supervisor only, which forwards it once.
        process = subprocess.Popen(self._command(number), env=env, start_new_session=True)
        metrics_port = self.settings.metrics_port_of(number)
        logger.info(
            "started worker process %d (pid %d)%s",
            number,
            process.pid,
            "" if metrics_port is None else f", metrics on port {metrics_port}",
        )
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
