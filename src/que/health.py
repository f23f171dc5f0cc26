"""Is the queue healthy? The records of ``queue_stats()`` and ``table_health()``,
and the plain-word warnings about que_jobs, computed without IO.

A queue table churns every row it holds: each job leaves a dead row behind,
and only vacuum makes its space reusable. When autovacuum is off or far
behind, claims walk ever more dead index entries and the table grows
without bound. ``table_warnings`` says so in words an operator can act on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from . import sql

# Dead rows count as "far behind" past max(DEAD_ROWS_FLOOR, DEAD_ROWS_RATIO x live rows)
# when no vacuum ran for VACUUM_STALE.
DEAD_ROWS_FLOOR = 10_000
DEAD_ROWS_RATIO = 10
VACUUM_STALE = timedelta(minutes=10)
# A transaction open this long keeps vacuum from removing any row deleted since it began.
LONG_TRANSACTION = timedelta(minutes=10)

# The autovacuum settings the que-pg extension gives que_jobs.
QUEUE_AUTOVACUUM: Mapping[str, str] = sql.QUEUE_AUTOVACUUM_SETTINGS


@dataclass(frozen=True)
class QueueStats:
    """The jobs of one (queue, type) pair, by state.

    ``ready + scheduled + locked`` is every row of que_jobs for the pair;
    ``failed`` (error_count > 0) overlaps them. ``locked`` counts jobs held by
    any worker (Python, Ruby or Go) of this database. ``dead`` is the rows in
    que_dead_jobs, None without the que-pg extension. ``oldest_due_age`` is
    the queue's latency: how long the oldest due, unlocked job has waited
    (None when no job waits). ``type`` is None in a per-queue total
    (see ``queue_totals``).
    """

    queue: str
    type: str | None
    ready: int
    scheduled: int
    locked: int
    failed: int
    dead: int | None
    oldest_due_age: timedelta | None
    highest_error_count: int
    oldest_run_at: datetime | None

    @property
    def total(self) -> int:
        """Rows of que_jobs: ready, scheduled and locked."""
        return self.ready + self.scheduled + self.locked


def queue_stats_rows(
    rows: Iterable[Mapping[str, Any]], dead_rows: Iterable[Mapping[str, Any]] | None
) -> list[QueueStats]:
    """QueueStats from the rows of QUEUE_STATS and of DEAD_JOB_COUNTS (None: no extension).

    A pair with only dead jobs gets a record of its own, with zero live counts.
    """
    dead = (
        None if dead_rows is None else {(r["queue"], r["job_class"]): r["dead"] for r in dead_rows}
    )
    found: dict[tuple[str, str], QueueStats] = {}
    for row in rows:
        key = (row["queue"], row["job_class"])
        found[key] = QueueStats(
            queue=key[0],
            type=key[1],
            ready=row["ready"],
            scheduled=row["scheduled"],
            locked=row["locked"],
            failed=row["failed"],
            dead=None if dead is None else dead.get(key, 0),
            oldest_due_age=row["oldest_due_age"],
            highest_error_count=row["highest_error_count"],
            oldest_run_at=row["oldest_run_at"],
        )
    for key, count in (dead or {}).items():
        if key not in found:
            found[key] = QueueStats(key[0], key[1], 0, 0, 0, 0, count, None, 0, None)
    return [found[key] for key in sorted(found)]


def queue_totals(stats: Sequence[QueueStats]) -> list[QueueStats]:
    """One QueueStats per queue (``type`` None), summing its types; in queue order.

    >>> rows = [QueueStats("", "A", 1, 2, 0, 1, 0, timedelta(seconds=5), 3, None),
    ...         QueueStats("", "B", 4, 0, 1, 0, 2, timedelta(seconds=9), 0, None)]
    >>> [(t.queue, t.type, t.ready, t.total, t.dead, t.oldest_due_age.seconds)
    ...  for t in queue_totals(rows)]
    [('', None, 5, 8, 2, 9)]
    """
    by_queue: dict[str, list[QueueStats]] = {}
    for s in stats:
        by_queue.setdefault(s.queue, []).append(s)
    return [_sum(queue, members) for queue, members in sorted(by_queue.items())]


def _sum(queue: str, members: list[QueueStats]) -> QueueStats:
    ages = [s.oldest_due_age for s in members if s.oldest_due_age is not None]
    run_ats = [s.oldest_run_at for s in members if s.oldest_run_at is not None]
    deads = [s.dead for s in members if s.dead is not None]
    return QueueStats(
        queue=queue,
        type=None,
        ready=sum(s.ready for s in members),
        scheduled=sum(s.scheduled for s in members),
        locked=sum(s.locked for s in members),
        failed=sum(s.failed for s in members),
        dead=sum(deads) if len(deads) == len(members) else None,
        oldest_due_age=max(ages) if ages else None,
        highest_error_count=max(s.highest_error_count for s in members),
        oldest_run_at=min(run_ats) if run_ats else None,
    )


@dataclass(frozen=True)
class TableHealth:
    """The state of que_jobs as PostgreSQL sees it, and what is wrong with it.

    Row counts are the statistics' estimates (pg_stat_user_tables), which
    lag writes by a moment. ``autovacuum_server`` is the server's
    ``autovacuum`` setting and ``track_counts`` the statistics autovacuum
    needs; ``autovacuum_table`` is the table's ``autovacuum_enabled``.
    ``reloptions`` are the table's storage options (the extension's
    autovacuum settings among them). ``longest_transaction`` is the age of
    the oldest open transaction on this database that holds back vacuum
    (another role's sessions count only for a member of pg_read_all_stats).
    ``checked_at`` is the database's clock when it was read.
    """

    live_rows: int
    dead_rows: int
    total_bytes: int
    last_vacuum: datetime | None
    last_autovacuum: datetime | None
    last_analyze: datetime | None
    last_autoanalyze: datetime | None
    autovacuum_server: bool
    track_counts: bool
    autovacuum_table: bool
    reloptions: Mapping[str, str] = field(hash=False)
    extension_installed: bool
    longest_transaction: timedelta | None
    checked_at: datetime
    warnings: tuple[str, ...] = ()

    @property
    def last_vacuumed(self) -> datetime | None:
        """The latest vacuum of the table, by hand or by autovacuum."""
        times = [t for t in (self.last_vacuum, self.last_autovacuum) if t is not None]
        return max(times) if times else None

    @property
    def missing_settings(self) -> dict[str, str]:
        """The extension's autovacuum settings the table lacks (or has other values for)."""
        return {
            name: value
            for name, value in QUEUE_AUTOVACUUM.items()
            if self.reloptions.get(name) != value
        }


def table_health_from_row(row: Mapping[str, Any]) -> TableHealth:
    """A TableHealth from the row of TABLE_HEALTH, with its warnings."""
    options = parse_reloptions(row["reloptions"])
    health = TableHealth(
        live_rows=row["n_live_tup"] or 0,
        dead_rows=row["n_dead_tup"] or 0,
        total_bytes=row["total_bytes"],
        last_vacuum=row["last_vacuum"],
        last_autovacuum=row["last_autovacuum"],
        last_analyze=row["last_analyze"],
        last_autoanalyze=row["last_autoanalyze"],
        autovacuum_server=setting_on(row["autovacuum"]),
        track_counts=setting_on(row["track_counts"]),
        autovacuum_table=setting_on(options.get("autovacuum_enabled", "on")),
        reloptions=options,
        extension_installed=row["extension_installed"],
        longest_transaction=row["longest_transaction"],
        checked_at=row["checked_at"],
    )
    return dataclasses.replace(health, warnings=table_warnings(health))


def parse_reloptions(options: Sequence[str] | None) -> dict[str, str]:
    """pg_class.reloptions (``name=value`` texts) as a dict.

    >>> parse_reloptions(["autovacuum_enabled=false", "fillfactor=90"])
    {'autovacuum_enabled': 'false', 'fillfactor': '90'}
    """
    pairs = (option.split("=", 1) for option in options or ())
    return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}


def setting_on(value: str) -> bool:
    """A PostgreSQL boolean setting's text: on, true, yes, 1 (any case, any prefix PG takes).

    >>> [setting_on(v) for v in ("on", "OFF", "true", "f", "1", "no")]
    [True, False, True, False, True, False]
    """
    return value.strip().lower() in ("on", "true", "t", "tr", "tru", "yes", "y", "ye", "1")


def table_warnings(health: TableHealth) -> tuple[str, ...]:
    """What is wrong with que_jobs, in plain words (empty when nothing is).

    Pure: it reads ``health`` only, ``checked_at`` being "now".

    >>> from datetime import timezone
    >>> now = datetime(2030, 1, 1, tzinfo=timezone.utc)
    >>> ok = TableHealth(100, 50, 65536, None, now, None, now, True, True, True,
    ...                  dict(QUEUE_AUTOVACUUM), True, None, now)
    >>> table_warnings(ok)
    ()
    >>> behind = dataclasses.replace(ok, dead_rows=2_000_000, last_autovacuum=None,
    ...                              autovacuum_server=False)
    >>> for warning in table_warnings(behind):
    ...     print(warning.split(":")[0])
    autovacuum is off on the server (autovacuum = off)
    que_jobs holds 2,000,000 dead rows for 100 live ones and was never vacuumed
    """
    found: list[str] = []
    if not health.autovacuum_server:
        found.append(
            "autovacuum is off on the server (autovacuum = off): nothing removes the dead "
            "rows every finished job leaves in que_jobs; turn it on, or run VACUUM que_jobs often"
        )
    if not health.track_counts:
        found.append(
            "track_counts is off on the server: autovacuum cannot tell when que_jobs needs "
            "vacuuming, and these row counts are not kept; turn it on"
        )
    if not health.autovacuum_table:
        found.append(
            "autovacuum is off for que_jobs (autovacuum_enabled = false): its dead rows "
            "pile up; ALTER TABLE que_jobs RESET (autovacuum_enabled)"
        )
    behind = _dead_rows_behind(health)
    if behind:
        found.append(behind)
    if health.longest_transaction is not None and health.longest_transaction >= LONG_TRANSACTION:
        found.append(
            f"a transaction has been open for {duration(health.longest_transaction)} on this "
            "database: vacuum cannot remove rows deleted since it began; end it "
            "(see pg_stat_activity)"
        )
    missing = health.missing_settings
    if missing and health.extension_installed:
        found.append(
            "que_jobs lacks the que-pg extension's autovacuum settings ("
            + ", ".join(f"{k} = {v}" for k, v in missing.items())
            + "): vacuum waits for a share of the table instead of a fixed number of "
            "dead rows; migrate the extension again (que migrate)"
        )
    elif missing:
        found.append(
            "que_jobs has the server's default autovacuum settings, which let dead rows "
            "pile up while a queue is long; `que migrate` installs the que-pg extension, "
            "which sets ones suited to a queue table"
        )
    return tuple(found)


def _dead_rows_behind(health: TableHealth) -> str | None:
    limit = max(DEAD_ROWS_FLOOR, DEAD_ROWS_RATIO * health.live_rows)
    if health.dead_rows <= limit:
        return None
    last = health.last_vacuumed
    if last is not None and health.checked_at - last < VACUUM_STALE:
        return None
    when = (
        "was never vacuumed"
        if last is None
        else (f"was last vacuumed {duration(health.checked_at - last)} ago")
    )
    return (
        f"que_jobs holds {health.dead_rows:,} dead rows for {health.live_rows:,} live ones "
        f"and {when}: claims slow down as they step over them; run VACUUM que_jobs"
    )


def duration(span: timedelta) -> str:
    """A short, rough length of time: the two largest units.

    >>> [duration(timedelta(seconds=s)) for s in (0, 42, 192, 7205, 3 * 86400 + 4000)]
    ['0s', '42s', '3m 12s', '2h 0m', '3d 1h']
    """
    seconds = max(0, int(span.total_seconds()))
    parts: list[str] = []
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if parts or seconds >= length or unit == "s":
            parts.append(f"{seconds // length}{unit}")
            seconds %= length
        if len(parts) == 2:
            break
    return " ".join(parts)


__all__ = [
    "QueueStats",
    "TableHealth",
    "duration",
    "queue_stats_rows",
    "queue_totals",
    "table_health_from_row",
    "table_warnings",
]
