"""``que stats``: jobs by state per queue and type, then the health of que_jobs;
once, or refreshed in place with ``--watch``.

The rendering functions are pure (they take ``now``); ``run_stats`` does the IO.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TextIO

from ._cli_support import DEFAULT_QUEUE_LABEL, format_table, relative
from .client import Client
from .connect import Connector
from .health import QueueStats, TableHealth, duration, queue_totals

# Home the cursor and clear the screen, as `top` does between frames.
CLEAR_SCREEN = "\x1b[H\x1b[2J"

HEADER = ("QUEUE", "TYPE", "READY", "SCHEDULED", "LOCKED", "FAILED", "DEAD", "OLDEST DUE")
ALL_TYPES = "(all types)"


@dataclass(frozen=True)
class Snapshot:
    """What one run of ``que stats`` shows."""

    stats: list[QueueStats]
    health: TableHealth
    # Paused queues and when each was paused (empty without extension version 2).
    paused: Mapping[str, datetime] = field(default_factory=dict)


def take_snapshot(client: Client) -> Snapshot:
    paused = client.paused_queues() if client.extension_version >= 2 else {}
    return Snapshot(client.queue_stats(), client.table_health(), paused)


def queue_table(stats: Sequence[QueueStats], paused: Collection[str] = ()) -> str:
    """Jobs by state per queue and type, with a total line for each queue of several
    types; a paused queue's name is marked.

    >>> from datetime import timedelta
    >>> mail = QueueStats("", "Mail", 3, 1, 1, 0, None, timedelta(seconds=42), 0, None)
    >>> print(queue_table([mail]))
    QUEUE      TYPE  READY  SCHEDULED  LOCKED  FAILED  DEAD  OLDEST DUE
    (default)  Mail      3          1       1       0     -  42s
    >>> print(queue_table([mail], paused={""}))
    QUEUE               TYPE  READY  SCHEDULED  LOCKED  FAILED  DEAD  OLDEST DUE
    (default) (paused)  Mail      3          1       1       0     -  42s
    """
    if not stats:
        return "no jobs in que_jobs"
    totals = {t.queue: t for t in queue_totals(stats)}
    rows: list[tuple[str, ...]] = []
    for i, s in enumerate(stats):
        rows.append(_cells(s, s.queue in paused))
        last_of_queue = i + 1 == len(stats) or stats[i + 1].queue != s.queue
        if last_of_queue and sum(1 for o in stats if o.queue == s.queue) > 1:
            rows.append(_cells(totals[s.queue], s.queue in paused))
    return format_table(HEADER, rows, right={2, 3, 4, 5, 6})


def _cells(s: QueueStats, paused: bool = False) -> tuple[str, ...]:
    name = s.queue if s.queue else DEFAULT_QUEUE_LABEL
    return (
        name + " (paused)" if paused else name,
        ALL_TYPES if s.type is None else s.type,
        str(s.ready),
        str(s.scheduled),
        str(s.locked),
        str(s.failed),
        "-" if s.dead is None else str(s.dead),
        "-" if s.oldest_due_age is None else duration(s.oldest_due_age),
    )


def health_text(health: TableHealth) -> str:
    """The health of que_jobs in a few lines, warnings last."""
    now = health.checked_at
    on = {True: "on", False: "off"}
    lines = [
        f"que_jobs: {health.live_rows:,} live rows, {health.dead_rows:,} dead rows "
        f"(estimates), {size(health.total_bytes)} on disk",
        f"vacuum: {_when(health.last_autovacuum, now)} by autovacuum, "
        f"{_when(health.last_vacuum, now)} by hand; analyze: "
        f"{_when(health.last_autoanalyze, now)} by autovacuum, "
        f"{_when(health.last_analyze, now)} by hand",
        f"autovacuum: {on[health.autovacuum_server]} on the server, "
        f"{on[health.autovacuum_table]} for que_jobs; queue settings of the que-pg extension: "
        + ("in place" if not health.missing_settings else "missing"),
    ]
    if health.warnings:
        lines.append("warnings:")
        lines.extend(f"  - {warning}" for warning in health.warnings)
    else:
        lines.append("no warnings")
    return "\n".join(lines)


def _when(moment: datetime | None, now: datetime) -> str:
    return "never" if moment is None else relative(moment, now)


def size(count: int) -> str:
    """Bytes in a short human form.

    >>> [size(n) for n in (512, 8192, 3 * 2**20 + 2**19, 5 * 2**30)]
    ['512 B', '8.0 kB', '3.5 MB', '5.0 GB']
    """
    if count < 1024:
        return f"{count} B"
    amount = count / 1024
    for unit in ("kB", "MB"):
        if amount < 1024:
            return f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GB"


def paused_text(paused: Mapping[str, datetime], now: datetime) -> str:
    """One line naming the paused queues, or nothing.

    >>> from datetime import timezone
    >>> now = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)
    >>> print(paused_text({"mail": now - timedelta(minutes=5), "": now}, now))
    paused queues: '' since now, 'mail' since 5m ago (`que resume QUEUE` resumes one)
    """
    if not paused:
        return ""
    names = ", ".join(f"{queue!r} since {relative(paused[queue], now)}" for queue in sorted(paused))
    return f"paused queues: {names} (`que resume QUEUE` resumes one)"


def snapshot_text(snapshot: Snapshot) -> str:
    table = queue_table(snapshot.stats, snapshot.paused)
    paused = paused_text(snapshot.paused, snapshot.health.checked_at)
    if paused:
        table += "\n" + paused
    return table + "\n\n" + health_text(snapshot.health)


# -- JSON ---------------------------------------------------------------------------


def job_rows_json(stats: Sequence[QueueStats]) -> list[dict[str, Any]]:
    """One object per (queue, type): the keys `que stats --json` always had
    (those of JobStats) and the new ones."""
    return [_stats_json(s) for s in stats]


def _stats_json(s: QueueStats) -> dict[str, Any]:
    return {
        "queue": s.queue,
        "type": s.type,
        "count": s.total,
        "count_working": s.locked,
        "count_errored": s.failed,
        "highest_error_count": s.highest_error_count,
        "oldest_run_at": None if s.oldest_run_at is None else s.oldest_run_at.isoformat(),
        "ready": s.ready,
        "scheduled": s.scheduled,
        "locked": s.locked,
        "failed": s.failed,
        "dead": s.dead,
        "oldest_due_age_seconds": _seconds(s.oldest_due_age),
    }


def health_json(health: TableHealth) -> dict[str, Any]:
    return {
        "live_rows": health.live_rows,
        "dead_rows": health.dead_rows,
        "total_bytes": health.total_bytes,
        "last_vacuum": _iso(health.last_vacuum),
        "last_autovacuum": _iso(health.last_autovacuum),
        "last_analyze": _iso(health.last_analyze),
        "last_autoanalyze": _iso(health.last_autoanalyze),
        "autovacuum_server": health.autovacuum_server,
        "track_counts": health.track_counts,
        "autovacuum_table": health.autovacuum_table,
        "reloptions": dict(health.reloptions),
        "missing_settings": health.missing_settings,
        "extension_installed": health.extension_installed,
        "longest_transaction_seconds": _seconds(health.longest_transaction),
        "checked_at": health.checked_at.isoformat(),
        "warnings": list(health.warnings),
    }


def snapshot_json(snapshot: Snapshot, what: str, indent: int | None) -> str:
    """``--json`` (``what`` "jobs"): the array of (queue, type) objects, as before;
    ``--json all``: one object with the jobs, the per-queue totals and the table."""
    jobs = job_rows_json(snapshot.stats)
    if what == "jobs":
        return json.dumps(jobs, indent=indent)
    queues = job_rows_json(queue_totals(snapshot.stats))
    for queue in queues:
        queue["paused"] = queue["queue"] in snapshot.paused
    document = {
        "jobs": jobs,
        "queues": queues,
        "table": health_json(snapshot.health),
        "paused": [
            {"queue": queue, "paused_at": snapshot.paused[queue].isoformat()}
            for queue in sorted(snapshot.paused)
        ],
    }
    return json.dumps(document, indent=indent)


def _seconds(span: timedelta | None) -> float | None:
    return None if span is None else round(span.total_seconds(), 3)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# -- IO -----------------------------------------------------------------------------


def run_stats(
    connector: Connector, *, json_what: str | None, watch: float | None, out: TextIO
) -> int:
    """Print the stats once, or every ``watch`` seconds until Ctrl-C (exit code 0).

    On a terminal each frame replaces the last; otherwise frames follow one
    another, each headed by a line with its time. With ``--json``, one
    compact document a line, terminal or not.
    """
    with Client(connector, max_connections=1) as client:
        if watch is None:
            _print(take_snapshot(client), json_what, out, frame=None)
            return 0
        # JSON is for programs: one document a line, never screen control.
        live = out.isatty() and json_what is None
        try:
            while True:
                snapshot = take_snapshot(client)
                if live:
                    out.write(CLEAR_SCREEN)
                _print(snapshot, json_what, out, frame=watch)
                out.flush()
                time.sleep(watch)
        except KeyboardInterrupt:
            if live:
                out.write("\n")
            return 0


def _print(snapshot: Snapshot, json_what: str | None, out: TextIO, frame: float | None) -> None:
    if json_what is not None:
        out.write(snapshot_json(snapshot, json_what, 2 if frame is None else None) + "\n")
        return
    if frame is not None:
        at = snapshot.health.checked_at.astimezone().isoformat(sep=" ", timespec="seconds")
        out.write(f"=== que stats at {at}, every {frame:g}s (Ctrl-C stops) ===\n")
    out.write(snapshot_text(snapshot) + "\n")
    if frame is not None:
        out.write("\n")
