"""What ``que worker`` was asked to do, as checked plain values: the one-process
worker, its engine adapters and the supervisor all read them, and the supervisor
turns them back into the command line of its worker processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._outcomes import RetryLimits
from ._schedule import Schedule
from ._timeouts import Timeouts

# Where ``que worker`` reads --listen-url's default, and how worker processes get it.
LISTEN_URL_ENV = "QUE_LISTEN_URL"


@dataclass(frozen=True)
class WorkerSettings:
    app: str
    queues: tuple[str, ...]
    concurrency: int
    processes: int
    interval: float
    shutdown_timeout: float
    log_level: int
    engine: str = "batch"
    # --buffer: jobs claimed beyond the free threads (None: sized by the engine).
    buffer: int | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    # What each --job-timeout said, to pass on to worker processes.
    timeout_args: tuple[str, ...] = ()
    limits: RetryLimits = field(default_factory=RetryLimits)
    # What each --max-attempts said, to pass on to worker processes.
    attempts_args: tuple[str, ...] = ()
    # --dead-retention as given (for worker processes), and in seconds.
    dead_retention_arg: str | None = None
    dead_retention: float | None = None
    pgbouncer: bool = False
    # A URL that may hold a password: worker processes get it in their
    # environment (QUE_LISTEN_URL), never on their command line.
    listen_url: str | None = None
    # --schedules as given (for worker processes), and the schedules it names.
    schedules_arg: str | None = None
    schedules: tuple[Schedule, ...] = ()
    # --metrics-port: the port of the first worker process; process N serves
    # its metrics on metrics_port + N - 1.
    metrics_port: int | None = None

    def metrics_port_of(self, number: int) -> int | None:
        """The port worker process ``number`` (1, 2, ...) serves its metrics on."""
        return None if self.metrics_port is None else self.metrics_port + number - 1
