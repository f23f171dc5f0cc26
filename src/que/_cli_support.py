"""What the ``que`` subcommands share: errors, values from the command line, tables.

Nothing here parses arguments; ``cli.py`` does, and passes plain values in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

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
With no --database-url, URL variable or PG* variable, a command that needs a
database fails; --embedded makes it use the embedded PostgreSQL (the
que-pg[embedded] extra), started once and left running for later commands.
`que demo` uses it unless given --database-url. `que embedded stop` stops it
and `que embedded remove` deletes it."""


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
