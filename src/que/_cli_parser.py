"""What the ``que`` command accepts: the argparse tree of every subcommand, one
small function each, with the help text. What the subcommands do is in cli.py."""

from __future__ import annotations

import argparse
from typing import NoReturn

from . import __version__, embedded
from ._cli_manage import add_manage_parsers
from ._cli_support import ENVIRONMENT_HELP, UsageError
from ._schema_base import CURRENT_VERSION

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, like every other error of ``que``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _help_epilog() -> str:
    return ENVIRONMENT_HELP.format(data_dir=embedded.default_data_dir())


_FORMATTER = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``que`` command and its subcommands."""
    parser = _Parser(
        prog="que",
        description="A PostgreSQL job queue compatible with Ruby que 0.x and Go que-go.",
        epilog=_help_epilog(),
        formatter_class=_FORMATTER,
    )
    parser.add_argument("--version", action="version", version=f"que {__version__}")
    _add_database_options(parser, argparse.SUPPRESS)
    commands = _Subcommands(parser)
    _add_migrate_parser(commands)
    _add_schema_parser(commands)
    _add_version_parser(commands)
    _add_worker_parser(commands)
    _add_enqueue_parser(commands)
    _add_stats_parser(commands)
    _add_schedules_parser(commands)
    _add_web_parser(commands)
    _add_demo_parser(commands)
    _add_embedded_parser(commands)
    add_manage_parsers(commands)
    return parser


class _Subcommands:
    """Adds subcommands that share the top parser's epilog and the database options."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._epilog = parser.epilog
        # The same options after the subcommand name; given there, they win.
        self._common = _Parser(add_help=False)
        _add_database_options(self._common, argparse.SUPPRESS)
        self._sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    @property
    def common(self) -> argparse.ArgumentParser:
        """The database options, as a parent of nested subcommands (``que jobs list``)."""
        return self._common

    def add(self, name: str, help_text: str, *, database: bool = True) -> argparse.ArgumentParser:
        return self._sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=self._epilog,
            formatter_class=_FORMATTER,
            parents=[self._common] if database else [],
        )


def _add_migrate_parser(commands: _Subcommands) -> None:
    p = commands.add(
        "migrate",
        "migrate que_jobs to the current schema version (or --version N) and install "
        "the que-pg extension",
    )
    p.add_argument(
        "--version",
        type=int,
        dest="target",
        metavar="N",
        default=CURRENT_VERSION,
        help=f"target version, 0 to {CURRENT_VERSION}; lower than the "
        f"current one migrates down (default {CURRENT_VERSION})",
    )
    p.add_argument("--yes", action="store_true", help="confirm a migration down (drops data)")
    notify = p.add_mutually_exclusive_group()
    notify.add_argument(
        "--notify",
        action="store_true",
        help="also add the AFTER INSERT trigger that wakes idle workers at once "
        "(keeps the table compatible with Ruby and Go)",
    )
    notify.add_argument("--no-notify", action="store_true", help="remove that trigger again")
    p.add_argument(
        "--no-extension",
        dest="extension",
        action="store_false",
        help="leave out (or remove, with --yes: it drops the dead jobs) the que-pg "
        "extension: the dead-job and cancel-request tables and the autovacuum "
        "settings of que_jobs. Ruby and Go ignore it either way",
    )


def _add_schema_parser(commands: _Subcommands) -> None:
    p = commands.add("schema", "print the SQL of a migration instead of running it", database=False)
    p.add_argument(
        "--version",
        type=int,
        dest="target",
        metavar="N",
        default=CURRENT_VERSION,
        help=f"the version to migrate to (default {CURRENT_VERSION})",
    )
    p.add_argument(
        "--from",
        type=int,
        dest="found",
        metavar="N",
        default=0,
        help="the version the database is at (default 0: no table yet)",
    )
    p.add_argument(
        "--extension",
        action="store_true",
        help="print the SQL that installs the que-pg extension instead "
        "(que_jobs must be at version 3)",
    )


def _add_version_parser(commands: _Subcommands) -> None:
    commands.add("version", "print the schema version of que_jobs in the database")


def _add_worker_parser(commands: _Subcommands) -> None:
    p = commands.add("worker", "work the jobs of APP until SIGTERM or SIGINT")
    p.add_argument(
        "app",
        metavar="APP",
        help="module:attribute naming a work map (a dict of job type to "
        "function) or a function returning one, e.g. myapp.jobs:work_map; or a module "
        "(a package: with its submodules) whose @que.job functions to work, e.g. myapp.jobs",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on PORT (jobs worked and failed, durations, claims, "
        "connection errors, queue depths); with --processes N, worker process n serves "
        "its own on PORT+n-1; needs prometheus-client (the metrics extra)",
    )
    p.add_argument(
        "--queue",
        "-q",
        action="append",
        default=None,
        help="a queue to work; repeat it or separate names with commas to work several "
        "(default: $QUE_QUEUE, names separated by commas, else the '' queue)",
    )
    p.add_argument(
        "--concurrency",
        "-c",
        type=int,
        default=1,
        metavar="N",
        help="worker threads per process (default 1)",
    )
    p.add_argument(
        "--processes",
        "-p",
        type=int,
        default=1,
        metavar="N",
        help="worker processes, each with its own threads and connections, to "
        "use more than one CPU core (default 1)",
    )
    _add_worker_timing_options(p)
    p.add_argument(
        "--buffer",
        type=int,
        default=None,
        metavar="N",
        help="jobs each process claims beyond its free threads, so that a thread "
        "finds its next job waiting (default: sized as it runs, from none for jobs of "
        "seconds to 256 for jobs of a millisecond). A lower value lets an urgent job "
        "enqueued during a backlog start sooner, at a cost in throughput "
        "(docs/operations.md); batch engine only",
    )
    p.add_argument(
        "--engine",
        choices=("batch", "classic"),
        default="batch",
        help="batch: one locker session claims and finishes jobs in batches "
        "(the fast path; wakes on NOTIFY after `que migrate --notify`); classic: "
        "one connection and one claim per job, as Ruby que 0.x and Go do (default batch)",
    )
    p.add_argument(
        "--max-attempts",
        action="append",
        default=[],
        metavar="[TYPE=]N",
        help="how many times a job may run before it moves to que_dead_jobs: N for "
        "every type, TYPE=N for one, TYPE=none for no limit (repeatable; default: no "
        "limit, as Ruby and Go behave). Needs the que-pg extension (`que migrate`)",
    )
    p.add_argument(
        "--dead-retention",
        default=None,
        metavar="DURATION",
        help="delete dead jobs (que_dead_jobs) older than this, e.g. 30d, every ten "
        "minutes (default: keep them until `que dead purge`)",
    )
    p.add_argument(
        "--schedules",
        default=None,
        metavar="MODULE:ATTR",
        help="periodic jobs to enqueue: a list of que.Schedule (or a function returning "
        "one), e.g. myapp.jobs:schedules. Every process takes part; one leads and "
        "enqueues each tick once (see docs/schedules.md)",
    )
    p.add_argument(
        "--pgbouncer",
        action="store_true",
        help="the database URL goes through PgBouncer in transaction pooling: claims "
        "hold transaction-level locks, nothing is prepared server-side, and workers "
        "poll unless --listen-url is given (see docs/deploy.md)",
    )
    p.add_argument(
        "--listen-url",
        default=None,
        metavar="URL",
        help="with --pgbouncer: a direct connection to PostgreSQL (not through "
        "PgBouncer) for LISTEN, so workers wake at once on new jobs "
        "(default: $QUE_LISTEN_URL)",
    )


def _add_worker_timing_options(p: argparse.ArgumentParser) -> None:
    """How long ``que worker`` idles, runs a job, and waits for jobs when stopping."""
    p.add_argument(
        "--wake-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long an idle worker waits before looking for jobs again "
        "(default: $QUE_WAKE_INTERVAL, else 5)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long running jobs may take to finish before "
        "the worker exits anyway (default 30)",
    )
    p.add_argument(
        "--job-timeout",
        action="append",
        default=[],
        metavar="[TYPE=]SECONDS",
        help="how long a job may run: SECONDS for every type, TYPE=SECONDS for one "
        "(repeatable). An async job past it is cancelled and retried after the "
        "backoff; a job in a thread is reported, and with --processes its process "
        "is ended and replaced so the job is worked again",
    )


def _add_enqueue_parser(commands: _Subcommands) -> None:
    p = commands.add("enqueue", "add a job to que_jobs and print its id")
    p.add_argument("type", metavar="TYPE", help="the job type (Ruby: the job class name)")
    p.add_argument(
        "args_json",
        metavar="ARGS_JSON",
        nargs="?",
        default=None,
        help="the job's args as JSON, by convention an array (default [])",
    )
    p.add_argument(
        "--queue", "-q", default=None, help="the queue (default: $QUE_QUEUE, else the '' queue)"
    )
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="lower is more urgent, -32768 to 32767 (default 100)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--run-at",
        metavar="ISO8601",
        default=None,
        help="when the job is due, e.g. 2030-01-31T09:00:00+00:00 (local time without an offset)",
    )
    when.add_argument(
        "--in",
        dest="run_in",
        type=float,
        metavar="SECONDS",
        default=None,
        help="the job is due this many seconds from now",
    )
    unique = p.add_argument_group(
        "unique jobs (docs/unique-jobs.md; need the que-pg extension version 2)"
    )
    unique.add_argument(
        "--unique",
        action="store_true",
        help="enqueue nothing while a live job holds the key (by default the type and args)",
    )
    unique.add_argument(
        "--unique-key", metavar="KEY", default=None, help="the key (implies --unique)"
    )
    unique.add_argument(
        "--unique-scope",
        choices=("queued", "active"),
        default=None,
        help="while the key holds: until a worker starts the job (queued) or until the job "
        "is deleted (active, the default); implies --unique",
    )
    unique.add_argument(
        "--unique-for",
        metavar="SECONDS",
        type=float,
        default=None,
        help="the key holds for this long after the enqueue, whatever becomes of the job "
        "(instead of a scope); implies --unique",
    )


def _add_stats_parser(commands: _Subcommands) -> None:
    p = commands.add(
        "stats",
        "show jobs per queue and type (ready, scheduled, locked, failed, dead, how long "
        "the oldest due job has waited), then the health of que_jobs with warnings",
    )
    p.add_argument(
        "--json",
        nargs="?",
        const="jobs",
        default=None,
        choices=("jobs", "all"),
        help="print JSON, for scripts: `--json` the array of (queue, type) objects; "
        "`--json all` one object with them, the per-queue totals and the table's health",
    )
    p.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        default=None,
        type=float,
        metavar="SECONDS",
        help="refresh every SECONDS (default 2) until Ctrl-C, in place on a terminal",
    )


def _add_schedules_parser(commands: _Subcommands) -> None:
    p = commands.add(
        "schedules",
        "list periodic jobs: with --schedules, each declared schedule with its last and "
        "next tick and the session leading them; without, the ticks que_schedules records",
    )
    p.add_argument(
        "--schedules",
        default=None,
        metavar="MODULE:ATTR",
        help="the schedules the workers run (as given to `que worker --schedules`)",
    )
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")


def _add_web_parser(commands: _Subcommands) -> None:
    p = commands.add(
        "web",
        "serve the dashboard (queues, jobs, dead jobs, schedules; retry, delete, cancel) "
        "and /metrics; needs the web extra. Any address but a loopback one needs "
        "QUE_WEB_TOKEN, or QUE_WEB_USERNAME and QUE_WEB_PASSWORD",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.add_argument(
        "--refresh",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="seconds between live updates of a page (default 3; 0 turns them off)",
    )
    p.add_argument(
        "--schedules",
        metavar="MODULE:ATTR",
        help="the schedules the workers run (as given to `que worker --schedules`): the "
        "schedules page then shows each with its next tick and the session leading them",
    )


def _add_demo_parser(commands: _Subcommands) -> None:
    p = commands.add(
        "demo",
        "enqueue and work a few thousand demo jobs (embedded PostgreSQL "
        "unless --database-url is given)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=3000,
        metavar="N",
        help="how many jobs to enqueue (default 3000)",
    )
    p.add_argument(
        "--concurrency", "-c", type=int, default=8, metavar="N", help="worker threads (default 8)"
    )
    p.add_argument("--verbose", action="store_true", help="log every job")


def _add_embedded_parser(commands: _Subcommands) -> None:
    p = commands.add(
        "embedded", "start, stop, show or delete the embedded PostgreSQL", database=False
    )
    p.add_argument(
        "action",
        choices=("status", "start", "stop", "remove"),
        help="status: where it is and whether it runs; start: start it and "
        "print its URL; stop: stop it; remove: stop it and delete its data",
    )


def _add_database_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        default=default,
        help="postgresql:// URL or libpq conninfo of the database "
        "(default: $QUE_DATABASE_URL, $DATABASE_URL, else the PG* variables)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        default=default,
        help="use the embedded PostgreSQL (started if needed) instead of a configured database",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        default=default,
        help="log level (default INFO for worker, else WARNING)",
    )
