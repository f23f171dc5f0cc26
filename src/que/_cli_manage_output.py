"""What ``que jobs`` and ``que dead`` print, and the durations they read; no IO.

Names, args and errors are data written by anyone: tables escape control
characters so a hostile queue name cannot forge lines, and JSON carries
everything as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from ._cli_support import DEFAULT_QUEUE_LABEL, UsageError, format_table, relative
from ._manage_base import DeadJobRecord, JobRecord, Page, record_dict

ARGS_WIDTH = 40

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str, option: str) -> timedelta:
    """A duration such as ``90s``, ``30m``, ``1h30m``, ``2d`` or ``1w``.

    >>> parse_duration("1h30m", "--in"), parse_duration("2d", "--older-than")
    (datetime.timedelta(seconds=5400), datetime.timedelta(days=2))
    """
    value = text.strip().lower()
    parts = _DURATION.findall(value)
    if not value or "".join(number + unit for number, unit in parts) != value:
        raise UsageError(
            f"{option} takes a duration such as 90s, 30m, 1h30m, 2d or 1w, not {text!r}"
        )
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds > 100 * 365 * 86400:
        raise UsageError(f"{option} {text!r} is more than a hundred years")
    return timedelta(seconds=seconds)


def cell(text: str) -> str:
    r"""``text`` for one table cell: control characters escaped, everything else as is.

    >>> print(cell("a\nb\tc ✓"))
    a\nb\tc ✓
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)


def _queue(name: str) -> str:
    return cell(name) if name else DEFAULT_QUEUE_LABEL


def _args(args: Any, width: int = ARGS_WIDTH) -> str:
    text = cell(json.dumps(args, ensure_ascii=False, separators=(",", ":")))
    return text if len(text) <= width else text[: width - 1] + "…"


def _time(moment: datetime, now: datetime) -> str:
    return f"{moment.isoformat(sep=' ', timespec='seconds')} ({relative(moment, now)})"


def job_state(record: JobRecord, now: datetime) -> str:
    if record.locked:
        return "running"
    return "scheduled" if record.run_at > now else "ready"


def jobs_table(page: Page[JobRecord], now: datetime) -> str:
    if not page.records:
        return "no jobs match"
    rows = [
        (
            str(r.id),
            _queue(r.queue),
            cell(r.type),
            str(r.priority),
            _time(r.run_at, now),
            str(r.error_count),
            job_state(r, now),
            _args(r.args),
        )
        for r in page.records
    ]
    header = ("ID", "QUEUE", "TYPE", "PRIORITY", "RUN_AT", "ERRORS", "STATE", "ARGS")
    return format_table(header, rows, right={0, 3, 5}) + _more(page)


def dead_table(page: Page[DeadJobRecord], now: datetime) -> str:
    if not page.records:
        return "no dead jobs match"
    rows = [
        (
            str(r.id),
            _queue(r.queue),
            cell(r.type),
            r.outcome,
            _time(r.died_at, now),
            str(r.error_count),
            cell(r.reason),
        )
        for r in page.records
    ]
    header = ("ID", "QUEUE", "TYPE", "OUTCOME", "DIED_AT", "ERRORS", "REASON")
    return format_table(header, rows, right={0, 5}) + _more(page)


def _more(page: Page[Any]) -> str:
    if page.next is None:
        return ""
    return f"\nmore: add --after {page.next}"


def page_json(page: Page[Any], key: str) -> str:
    """A page as ``{key: [records], "next": cursor or null}``."""
    return json.dumps({key: [record_dict(r) for r in page.records], "next": page.next}, indent=2)


def record_json(record: JobRecord | DeadJobRecord) -> str:
    return json.dumps(record_dict(record), indent=2)


def show(record: JobRecord | DeadJobRecord, now: datetime) -> str:
    """Every field of a job, one a line, with the whole last_error at the end."""
    lines = [
        ("id", str(record.id)),
        ("queue", _queue(record.queue)),
        ("type", cell(record.type)),
        ("priority", str(record.priority)),
        ("run_at", _time(record.run_at, now)),
    ]
    if isinstance(record, JobRecord):
        lines.append(("state", job_state(record, now)))
    else:
        lines += [
            ("died_at", _time(record.died_at, now)),
            ("outcome", record.outcome),
            ("reason", cell(record.reason)),
        ]
    lines += [
        ("args", cell(json.dumps(record.args, ensure_ascii=False))),
        ("error_count", str(record.error_count)),
    ]
    text = "\n".join(f"{name + ':':<12} {value}" for name, value in lines)
    if record.last_error is None:
        return text + "\nlast_error:  (none)"
    return text + "\nlast_error:\n" + record.last_error


def count(number: int, what: str) -> str:
    """
    >>> count(1, "job"), count(3, "job")
    ('1 job', '3 jobs')
    """
    return f"{number} {what}" if number == 1 else f"{number} {what}s"


def describe(filters: Sequence[tuple[str, str | None]]) -> str:
    """The filters given, for a message: `` of type 'T' in queue 'q'``."""
    words = {"type": "of type", "queue": "in queue", "outcome": "with outcome"}
    return "".join(f" {words[name]} {value!r}" for name, value in filters if value is not None)
