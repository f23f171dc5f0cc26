"""``que worker``: work jobs in this process until a signal, or, with
``--processes N``, hand over to the supervisor of N such processes."""

from __future__ import annotations

import logging
import os

from ._cli_app import WorkMap
from ._cli_database import Database
from ._cli_diagnostics import log_setup
from ._cli_logging import flush_logs
from ._cli_overdue import end_process_on_overdue
from ._cli_runners import Runner, make_runner
from ._cli_settings import WorkerSettings
from ._cli_signals import Signals, exit_now, ignore_repeat
from ._cli_supervisor import NUMBER_ENV, Supervisor, supervisor_pid
from ._cli_support import EXIT_ERROR
from ._work import describe_queues

# One logger name for everything the command logs, as users filter on it.
logger = logging.getLogger("que.cli")


def run_worker(settings: WorkerSettings, database: Database, work_map: WorkMap) -> int:
    """Work jobs until a signal; the exit code of ``que worker``."""
    parent = supervisor_pid()
    if settings.processes > 1 and parent is None:
        return Supervisor(settings, database).run()
    return _run_threads(settings, database, work_map, parent)


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
        "que worker%s started: %s, concurrency %d, %s engine%s%s, wake interval %gs, "
        "database %s%s, job types: %s",
        f" process {number}" if number else "",
        describe_queues(settings.queues),
        settings.concurrency,
        settings.engine,
        " (asyncio)" if pool.is_async else "",
        "" if settings.buffer is None else f", buffer {settings.buffer}",
        settings.interval,
        database.describe(),
        _pgbouncer_note(settings),
        ", ".join(sorted(work_map)),
        extra={"queues": list(settings.queues), "concurrency": settings.concurrency},
    )
    if settings.schedules:
        logger.info(
            "schedules: %s (every process with them takes part; one leads and enqueues)",
            "; ".join(f"{s.name} ({s.describe()})" for s in settings.schedules),
        )
    log_setup(settings, database, work_map, is_async=pool.is_async)
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


def _pgbouncer_note(settings: WorkerSettings) -> str:
    """How the worker runs behind PgBouncer, for its start-up line (no URL: it may
    hold a password)."""
    if not settings.pgbouncer:
        return ""
    wakes = "LISTEN on --listen-url" if settings.listen_url else "polling"
    return f" through PgBouncer (transaction-level locks, {wakes})"
