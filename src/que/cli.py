"""The ``que`` command: migrate, schema, version, worker, enqueue, stats, demo, embedded.

Every failure is one line on stderr (``que: error: ...``) and a non-zero exit
code: 2 for bad arguments or configuration, 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import psycopg

from . import __version__, embedded
from ._cli_support import (
    ENVIRONMENT_HELP,
    EXIT_ERROR,
    EXIT_USAGE,
    CliError,
    Database,
    UsageError,
    configure_logging,
    connector_from_text,
    embedded_database,
    hide_password,
    local_now,
    one_line,
    parse_args_json,
    parse_run_at,
    run_at_in,
    select_database,
    stats_json,
    stats_table,
)
from ._jobs import insert_params
from ._timeouts import Timeouts
from ._work import queue_name, wake_interval
from .client import Client
from .errors import InvalidJobError, QueError
from .job import Job
from .schema import (
    CURRENT_VERSION,
    current_version,
    install_notify,
    migrate,
    schema_sql,
    uninstall_notify,
)

EXIT_INTERRUPTED = 130
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
    _add_demo_parser(commands)
    _add_embedded_parser(commands)
    return parser


class _Subcommands:
    """Adds subcommands that share the top parser's epilog and the database options."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self._epilog = parser.epilog
        # The same options after the subcommand name; given there, they win.
        self._common = _Parser(add_help=False)
        _add_database_options(self._common, argparse.SUPPRESS)
        self._sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p = commands.add("migrate", "migrate que_jobs to the current schema version (or --version N)")
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


def _add_version_parser(commands: _Subcommands) -> None:
    commands.add("version", "print the schema version of que_jobs in the database")


def _add_worker_parser(commands: _Subcommands) -> None:
    p = commands.add("worker", "work jobs with the work map APP until SIGTERM or SIGINT")
    p.add_argument(
        "app",
        metavar="APP",
        help="module:attribute naming a work map (a dict of job type to "
        "function) or a function returning one, e.g. myapp.jobs:work_map",
    )
    p.add_argument(
        "--queue",
        "-q",
        default=None,
        help="the queue to work (default: $QUE_QUEUE, else the '' queue)",
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
        "--engine",
        choices=("batch", "classic"),
        default="batch",
        help="batch: one locker session claims and finishes jobs in batches "
        "(the fast path; wakes on NOTIFY after `que migrate --notify`); classic: "
        "one connection and one claim per job, as Ruby que 0.x and Go do (default batch)",
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


def _add_stats_parser(commands: _Subcommands) -> None:
    p = commands.add("stats", "show jobs per queue and type: count, working, errored, oldest")
    p.add_argument("--json", action="store_true", help="print JSON, for scripts")


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
        "(default: $QUE_DATABASE_URL, $DATABASE_URL, PG* variables, "
        "else the embedded PostgreSQL)",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        default=default,
        help="use the embedded PostgreSQL even if a database is configured",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        default=default,
        help="log level (default INFO for worker, else WARNING)",
    )


# -- commands -------------------------------------------------------------------------


def _database(args: argparse.Namespace) -> Database:
    return select_database(
        getattr(args, "database_url", None),
        getattr(args, "embedded", False),
        os.environ,
        notes=sys.stderr,
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    target: int = args.target
    if not 0 <= target <= CURRENT_VERSION:
        raise UsageError(f"--version must be 0 to {CURRENT_VERSION}, not {target}")
    # Every option is checked before the table is touched.
    if (args.notify or args.no_notify) and target != CURRENT_VERSION:
        flag = "--notify" if args.notify else "--no-notify"
        raise UsageError(
            f"{flag} needs --version {CURRENT_VERSION}, not {target}; nothing was changed"
        )
    database = _database(args)
    with database.connector.connect() as conn:
        found = current_version(conn)
        if found <= CURRENT_VERSION and target < found and not args.yes:
            loss = "drops que_jobs and every job in it" if target == 0 else "drops columns"
            raise UsageError(
                f"migrating down from version {found} to {target} {loss}; add --yes to confirm"
            )
        before = migrate(conn, target)
        if args.notify:
            install_notify(conn)
        elif args.no_notify:
            uninstall_notify(conn)
    if before == target:
        print(f"que_jobs is already at schema version {target}")
    else:
        print(f"migrated que_jobs from schema version {before} to {target}")
    if args.notify:
        print("the wake-up trigger que_jobs_notify is installed")
    elif args.no_notify:
        print("the wake-up trigger que_jobs_notify is removed")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    for name, value in (("--version", args.target), ("--from", args.found)):
        if not 0 <= value <= CURRENT_VERSION:
            raise UsageError(f"{name} must be 0 to {CURRENT_VERSION}, not {value}")
    if args.target == args.found:
        raise UsageError(f"--from and --version are both {args.target}: there is nothing to do")
    sys.stdout.write(schema_sql(args.target, args.found))
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    database = _database(args)
    with database.connector.connect() as conn:
        found = current_version(conn)
    print(found)
    if found == 0:
        print("que: que_jobs does not exist; `que migrate` creates it", file=sys.stderr)
    elif found < CURRENT_VERSION:
        print(
            f"que: this library needs version {CURRENT_VERSION}; `que migrate` upgrades it",
            file=sys.stderr,
        )
    elif found > CURRENT_VERSION:
        print(
            f"que: version {found} is Ruby que 1.x or later, which this library "
            f"(version {CURRENT_VERSION}, que 0.x) cannot use",
            file=sys.stderr,
        )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ._cli_app import load_work_map
    from ._cli_settings import WorkerSettings
    from ._cli_worker import run_worker

    for name, value in (("--concurrency", args.concurrency), ("--processes", args.processes)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, not {value}")
    if args.shutdown_timeout < 0:
        raise UsageError(f"--shutdown-timeout must not be negative, not {args.shutdown_timeout}")
    try:
        queue = queue_name(args.queue)
        interval = wake_interval(args.wake_interval)
    except (InvalidJobError, ValueError) as exc:
        raise UsageError(one_line(exc)) from exc
    settings = WorkerSettings(
        app=args.app,
        queue=queue,
        concurrency=args.concurrency,
        processes=args.processes,
        interval=interval,
        shutdown_timeout=args.shutdown_timeout,
        log_level=logging.getLogger("que").getEffectiveLevel(),
        engine=args.engine,
        timeouts=parse_timeouts(args.job_timeout),
        timeout_args=tuple(args.job_timeout),
    )
    work_map = load_work_map(args.app)  # before the database: a bad APP fails fast
    return run_worker(settings, _database(args), work_map)


def parse_timeouts(values: Sequence[str]) -> Timeouts:
    """``--job-timeout`` values: ``SECONDS`` for every type, ``TYPE=SECONDS`` for one."""
    default: float | None = None
    per_type: dict[str, float] = {}
    for value in values:
        job_type, sep, seconds = value.rpartition("=")
        try:
            number = float(seconds)
        except ValueError:
            raise UsageError(
                f"--job-timeout takes SECONDS or TYPE=SECONDS, not {value!r}"
            ) from None
        if sep:
            per_type[job_type] = number
        else:
            default = number
    try:
        return Timeouts(default, per_type)
    except ValueError as exc:
        raise UsageError(f"--job-timeout: {one_line(exc)}") from exc


def cmd_enqueue(args: argparse.Namespace) -> int:
    job_args = parse_args_json(args.args_json)
    now = local_now()
    run_at = None
    if args.run_at is not None:
        run_at = parse_run_at(args.run_at, now)
    elif args.run_in is not None:
        run_at = run_at_in(args.run_in, now)
    queue = args.queue if args.queue is not None else os.environ.get("QUE_QUEUE", "")
    job = Job(type=args.type, args=job_args, queue=queue, priority=args.priority, run_at=run_at)
    try:
        # Every check the client makes, made before touching the database.
        insert_params(job.type, job.args, job.queue, job.priority, job.run_at)
    except InvalidJobError as exc:
        raise UsageError(one_line(exc)) from exc
    with Client(_database(args).connector, max_connections=1) as client:
        client.enqueue(job)
    print(job.id)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with Client(_database(args).connector, max_connections=1) as client:
        stats = client.stats()
    print(stats_json(stats) if args.json else stats_table(stats, local_now()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    if not 1 <= args.jobs <= 1_000_000:
        raise UsageError(f"--jobs must be 1 to 1000000, not {args.jobs}")
    if not 1 <= args.concurrency <= 256:
        raise UsageError(f"--concurrency must be 1 to 256, not {args.concurrency}")
    if args.verbose:
        logging.getLogger("que").setLevel(logging.INFO)
    url = getattr(args, "database_url", None)
    if url is not None:
        if getattr(args, "embedded", False):
            raise UsageError("--database-url and --embedded contradict each other; give one")
        database = Database(connector_from_text(url, "--database-url"), "--database-url")
    else:
        # A demo never writes to a database it was not pointed at explicitly.
        database = embedded_database(notes=sys.stdout)
    return run_demo(
        database,
        jobs=args.jobs,
        concurrency=args.concurrency,
        out=sys.stdout,
        live=sys.stdout.isatty(),
        verbose=args.verbose,
    )


def cmd_embedded(args: argparse.Namespace) -> int:
    action: str = args.action
    if action == "start":
        before = embedded.status()
        server = embedded.start(before.data_dir, keep_running=True)
        print(embedded.url(server))
        state = "was already running" if before.running else "started"
        print(f"que: the embedded PostgreSQL in {before.data_dir} {state}", file=sys.stderr)
    elif action == "stop":
        data_dir = embedded.status().data_dir
        if embedded.stop(data_dir):
            print(f"stopped the embedded PostgreSQL in {data_dir}")
        else:
            print(f"the embedded PostgreSQL in {data_dir} is not running")
    elif action == "remove":
        data_dir = embedded.status().data_dir
        if embedded.remove(data_dir):
            print(f"deleted the embedded PostgreSQL in {data_dir}")
        else:
            print(f"there is no embedded PostgreSQL in {data_dir}")
    else:
        current = embedded.status()
        print(f"data directory: {current.data_dir}")
        if current.running:
            print(f"state: running (pid {current.pid})")
            print(f"url: {current.url}")
        else:
            print("state: " + ("stopped" if current.initialised else "not created yet"))
    return 0


COMMANDS = {
    "migrate": cmd_migrate,
    "schema": cmd_schema,
    "version": cmd_version,
    "worker": cmd_worker,
    "enqueue": cmd_enqueue,
    "stats": cmd_stats,
    "demo": cmd_demo,
    "embedded": cmd_embedded,
}

# Commands that log their progress at INFO by default.
_CHATTY = ("worker",)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``que`` command; returns its exit code."""
    debug = False
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        default_level = "INFO" if args.command in _CHATTY else "WARNING"
        level = getattr(args, "log_level", None) or default_level
        debug = level == "DEBUG"
        configure_logging(logging.getLevelName(level))
        return COMMANDS[args.command](args)
    except CliError as exc:
        return _fail(one_line(exc), exc.code, debug)
    except InvalidJobError as exc:
        return _fail(one_line(exc), EXIT_USAGE, debug)
    except QueError as exc:
        return _fail(hide_password(one_line(exc)), EXIT_ERROR, debug)
    except psycopg.Error as exc:
        return _fail(f"database error: {hide_password(one_line(exc))}", EXIT_ERROR, debug)
    except KeyboardInterrupt:
        print("\nque: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _fail(
            f"unexpected {type(exc).__name__}: {hide_password(one_line(exc))} "
            "(--log-level DEBUG shows the traceback)",
            EXIT_ERROR,
            debug,
        )


def _fail(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"que: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
