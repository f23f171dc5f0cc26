"""The ``que`` command: migrate, schema, version, worker, enqueue, stats, demo, embedded.

Each ``cmd_*`` function runs one subcommand; _cli_parser declares their
arguments. Every failure is one line on stderr (``que: error: ...``) and a
non-zero exit code: 2 for bad arguments or configuration, 1 for anything else.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg

from . import embedded
from ._cli_database import Database, connector_from_setting, embedded_database, select_database
from ._cli_logging import configure_logging
from ._cli_manage import COMMANDS as MANAGE_COMMANDS
from ._cli_parser import build_parser
from ._cli_support import (
    EXIT_ERROR,
    EXIT_USAGE,
    CliError,
    UsageError,
    local_now,
    one_line,
    parse_args_json,
    parse_run_at,
    run_at_in,
)
from ._extension_base import EXTENSION_CONTENTS, EXTENSION_VERSION, extension_sql
from ._jobs import insert_params
from ._outcomes import RetryLimits
from ._schema_base import CURRENT_VERSION, schema_sql
from ._timeouts import Timeouts
from ._unique import Unique
from ._work import queue_name, queue_names, split_queues, wake_interval
from .client import Client
from .connect import Connector
from .errors import InvalidJobError, QueError
from .health import QueueStats
from .job_handle import Job
from .schema import (
    current_version,
    extension_version,
    install_notify,
    migrate,
    migrate_extension,
    uninstall_notify,
)

T = TypeVar("T")
EXIT_INTERRUPTED = 130


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
    extension_target = EXTENSION_VERSION if args.extension and target == CURRENT_VERSION else 0
    database = _database(args)
    with database.connector.connect() as conn:
        found = current_version(conn)
        found_extension = extension_version(conn) if found == CURRENT_VERSION else 0
        if found <= CURRENT_VERSION and target < found and not args.yes:
            loss = "drops que_jobs and every job in it" if target == 0 else "drops columns"
            raise UsageError(
                f"migrating down from version {found} to {target} {loss}; add --yes to confirm"
            )
        if extension_target < found_extension <= EXTENSION_VERSION and not args.yes:
            raise UsageError(
                "removing the que-pg extension drops que_dead_jobs and every dead job in it, "
                "unique keys, paused queues and schedule ticks; "
                "add --yes to confirm"
            )
        before = migrate(conn, target)
        if target == CURRENT_VERSION:
            migrate_extension(conn, extension_target)
        if args.notify:
            install_notify(conn)
        elif args.no_notify:
            uninstall_notify(conn)
    if before == target:
        print(f"que_jobs is already at schema version {target}")
    else:
        print(f"migrated que_jobs from schema version {before} to {target}")
    if extension_target == found_extension and extension_target:
        print(f"the que-pg extension is already at version {extension_target}")
    elif extension_target:
        for version in range(found_extension + 1, extension_target + 1):
            contents = EXTENSION_CONTENTS[version]
            print(f"installed the que-pg extension version {version}: {contents}")
    elif found_extension:
        print(
            "removed the que-pg extension (que_dead_jobs, que_cancel_requests, "
            "que_unique_keys, que_paused_queues, que_schedules)"
        )
    if args.notify:
        print("the wake-up trigger que_jobs_notify is installed")
    elif args.no_notify:
        print("the wake-up trigger que_jobs_notify is removed")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.extension:
        sys.stdout.write(extension_sql())
        return 0
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


def _listen_url(args: argparse.Namespace) -> str | None:
    """--listen-url, else $QUE_LISTEN_URL, checked; only with --pgbouncer."""
    from ._cli_settings import LISTEN_URL_ENV

    value, source = args.listen_url, "--listen-url"
    if value is None:
        value, source = os.environ.get(LISTEN_URL_ENV) or None, LISTEN_URL_ENV
    if value is None:
        return None
    if not args.pgbouncer:
        raise UsageError(
            f"{source} is for --pgbouncer: without PgBouncer, workers listen on their own pool"
        )
    return connector_from_setting(value, source).conninfo


def cmd_worker(args: argparse.Namespace) -> int:
    from ._cli_app import load_schedules, load_work_map
    from ._cli_settings import WorkerSettings
    from ._cli_worker import run_worker

    for name, value in (("--concurrency", args.concurrency), ("--processes", args.processes)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, not {value}")
    if args.buffer is not None and args.buffer < 0:
        raise UsageError(f"--buffer must be 0 or more, not {args.buffer}")
    if args.buffer is not None and args.engine == "classic":
        raise UsageError("--buffer is for the batch engine (the classic one claims one job a time)")
    if args.shutdown_timeout < 0:
        raise UsageError(f"--shutdown-timeout must not be negative, not {args.shutdown_timeout}")
    try:
        queues = queue_names(None if args.queue is None else _split_each(args.queue))
        interval = wake_interval(args.wake_interval)
    except (InvalidJobError, ValueError) as exc:
        raise UsageError(one_line(exc)) from exc
    listen_url = _listen_url(args)
    settings = WorkerSettings(
        app=args.app,
        queues=queues,
        concurrency=args.concurrency,
        processes=args.processes,
        interval=interval,
        shutdown_timeout=args.shutdown_timeout,
        log_level=args.log_level,
        engine=args.engine,
        buffer=args.buffer,
        timeouts=parse_timeouts(args.job_timeout),
        timeout_args=tuple(args.job_timeout),
        limits=parse_attempts(args.max_attempts),
        dead_retention_arg=args.dead_retention,
        dead_retention=_dead_retention(args.dead_retention),
        attempts_args=tuple(args.max_attempts),
        pgbouncer=args.pgbouncer,
        listen_url=listen_url,
        schedules_arg=args.schedules,
        # Loaded before the database is reached, as APP is: bad schedules fail fast.
        schedules=tuple(load_schedules(args.schedules)) if args.schedules else (),
        metrics_port=args.metrics_port,
    )
    _check_metrics_port(args)
    work_map = load_work_map(args.app)  # before the database: a bad APP fails fast
    configure_logging(args.log_level)  # after APP, whose own logging set-up comes first
    database = _database(args)
    if args.metrics_port is not None and settings.processes == 1:
        # With --processes N, each worker process serves its own (the supervisor none).
        _serve_metrics(args.metrics_port, database.connector)
    return run_worker(settings, database, work_map)


def _check_metrics_port(args: argparse.Namespace) -> None:
    from ._metrics_extra import missing_metrics_extra

    port = args.metrics_port
    if port is None:
        return
    problem = missing_metrics_extra("que worker --metrics-port")
    if problem is not None:
        raise UsageError(problem)
    if not 0 < port < 65536:
        raise UsageError(f"--metrics-port must be 1 to 65535, not {port}")
    last = port + args.processes - 1
    if last > 65535:
        raise UsageError(
            f"--metrics-port {port} with --processes {args.processes} needs ports {port} to "
            f"{last} (one per worker process), past 65535: choose a lower port"
        )


def _serve_metrics(port: int, connector: Connector) -> None:
    from ._metrics import serve_worker_metrics

    client: Client | None = None

    def read() -> list[QueueStats]:
        nonlocal client
        if client is None:  # on the first scrape: a worker starts without it
            client = Client(connector, max_connections=1)
        return client.queue_stats()

    serve_worker_metrics(port, read)


def _per_type(
    values: Sequence[str], option: str, form: str, convert: Callable[[str], T]
) -> tuple[T | None, dict[str, T]]:
    """Values of an option given as ``VALUE`` for every type or ``TYPE=VALUE`` for one."""
    default: T | None = None
    per_type: dict[str, T] = {}
    for value in values:
        job_type, sep, text = value.rpartition("=")
        try:
            converted = convert(text)
        except ValueError:
            raise UsageError(f"{option} takes {form}, not {value!r}") from None
        if sep:
            per_type[job_type] = converted
        else:
            default = converted
    return default, per_type


def parse_timeouts(values: Sequence[str]) -> Timeouts:
    """``--job-timeout`` values: ``SECONDS`` for every type, ``TYPE=SECONDS`` for one."""
    default, per_type = _per_type(values, "--job-timeout", "SECONDS or TYPE=SECONDS", float)
    try:
        return Timeouts(default, per_type)
    except ValueError as exc:
        raise UsageError(f"--job-timeout: {one_line(exc)}") from exc


def _dead_retention(value: str | None) -> float | None:
    from ._cli_manage_output import parse_duration

    if value is None:
        return None
    seconds = parse_duration(value, "--dead-retention").total_seconds()
    if seconds <= 0:
        raise UsageError(f"--dead-retention must be longer than zero, not {value!r}")
    return seconds


def parse_attempts(values: Sequence[str]) -> RetryLimits:
    """``--max-attempts`` values: ``N`` for every type, ``TYPE=N`` (or ``TYPE=none``) for one."""
    default, per_type = _per_type(values, "--max-attempts", "N or TYPE=N (or TYPE=none)", _attempts)
    try:
        return RetryLimits(default, per_type)
    except ValueError as exc:
        raise UsageError(f"--max-attempts: {one_line(exc)}") from exc


def _attempts(text: str) -> int | None:
    return None if text.strip().lower() == "none" else int(text)


def _split_each(values: Sequence[str]) -> list[str]:
    """The queues that repeated ``-q`` options name, each a list separated by commas."""
    return [name for value in values for name in split_queues(value, "-q")]


def cmd_enqueue(args: argparse.Namespace) -> int:
    job_args = parse_args_json(args.args_json)
    now = local_now()
    run_at = None
    if args.run_at is not None:
        run_at = parse_run_at(args.run_at, now)
    elif args.run_in is not None:
        run_at = run_at_in(args.run_in, now)
    try:
        queue = queue_name(args.queue)
    except (InvalidJobError, ValueError) as exc:
        raise UsageError(one_line(exc)) from exc
    job = Job(type=args.type, args=job_args, queue=queue, priority=args.priority, run_at=run_at)
    try:
        # Every check the client makes, made before touching the database.
        insert_params(job.type, job.args, job.queue, job.priority, job.run_at)
    except InvalidJobError as exc:
        raise UsageError(one_line(exc)) from exc
    unique = _unique_option(args)
    with Client(_database(args).connector, max_connections=1) as client:
        client.enqueue(job, unique=unique)
    print(job.id)
    if job.inserted is False:
        print(f"not enqueued: job {job.id} holds the unique key", file=sys.stderr)
    return 0


def _unique_option(args: argparse.Namespace) -> Unique | None:
    """The Unique spec of ``que enqueue``'s --unique options, or None without them."""
    options = (args.unique_key, args.unique_scope, args.unique_for)
    if not args.unique and all(option is None for option in options):
        return None
    if args.unique_scope is not None and args.unique_for is not None:
        raise UsageError("--unique-scope and --unique-for do not go together: pick one")
    try:
        return Unique(
            key=args.unique_key, scope=args.unique_scope or "active", period=args.unique_for
        )
    except (InvalidJobError, ValueError) as exc:
        raise UsageError(one_line(exc).replace("Unique period", "--unique-for")) from exc


def cmd_stats(args: argparse.Namespace) -> int:
    from ._cli_stats import run_stats

    if args.watch is not None and not args.watch > 0:
        raise UsageError(f"--watch takes a positive number of seconds, not {args.watch}")
    return run_stats(
        _database(args).connector, json_what=args.json, watch=args.watch, out=sys.stdout
    )


def cmd_schedules(args: argparse.Namespace) -> int:
    from ._cli_app import load_schedules
    from ._cli_schedules import run_schedules

    schedules = load_schedules(args.schedules) if args.schedules else []
    return run_schedules(_database(args).connector, schedules, as_json=args.json, out=sys.stdout)


def cmd_web(args: argparse.Namespace) -> int:
    from ._cli_app import load_schedules
    from ._cli_web import run_web

    # Loaded before the database is reached: bad schedules fail fast.
    schedules = load_schedules(args.schedules) if args.schedules else []
    return run_web(
        _database(args).connector,
        host=args.host,
        port=args.port,
        refresh=args.refresh,
        environ=os.environ,
        schedules=schedules,
    )


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
        database = Database(connector_from_setting(url, "--database-url"), "--database-url")
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
    "web": cmd_web,
    "schedules": cmd_schedules,
    "demo": cmd_demo,
    "embedded": cmd_embedded,
    **MANAGE_COMMANDS,
}

# Commands that log their progress at INFO by default.
_CHATTY = ("worker",)
# Commands that set up logging only after importing APP, which may configure it.
_APP_CONFIGURES_LOGGING = ("worker",)


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
        args.log_level = logging.getLevelName(level)
        if args.command not in _APP_CONFIGURES_LOGGING:
            configure_logging(args.log_level)
        return COMMANDS[args.command](args)
    except CliError as exc:
        return _fail(one_line(exc), exc.code, debug)
    except InvalidJobError as exc:
        return _fail(one_line(exc), EXIT_USAGE, debug)
    except QueError as exc:
        # The library's messages never quote a connection string or password.
        return _fail(one_line(exc), EXIT_ERROR, debug)
    except psycopg.Error as exc:
        # Errors of the server or libpq after connecting; the server never
        # learns a password it could repeat (it gets a hash or a SCRAM proof).
        return _fail(f"database error: {one_line(exc)}", EXIT_ERROR, debug)
    except KeyboardInterrupt:
        print("\nque: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return _fail(
            f"unexpected {type(exc).__name__}: {one_line(exc)} "
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
