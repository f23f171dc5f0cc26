"""Periodic jobs without IO: what a schedule is, when it ticks, and which ticks
are due.

A schedule enqueues one job per tick. Ticks are points in time computed the
same way by every process (a cron expression in a time zone, or a fixed
interval counted from the Unix epoch), so any process can take over from
another and agree on what was due. The database records each schedule's last
enqueued tick; a tick goes through only when it is later than that record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import _durations
from ._jobs import DEFAULT_PRIORITY, InsertParams, insert_params

MissedPolicy = Literal["latest", "all", "skip"]
MISSED_POLICIES: tuple[str, ...] = ("latest", "all", "skip")

# With missed="all", at most this many past ticks are enqueued at once (the
# most recent ones), so a schedule that stood still for a year cannot flood
# the queue.
MAX_CATCH_UP = 1000

# With missed="skip", a tick counts as on time (and is enqueued) for this long.
ON_TIME = timedelta(seconds=60)

# Shorthands accepted besides five-field expressions.
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

UTC_ZONE = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC_ZONE)

# How far wall-clock order may stray from instant order around a change of
# offset (daylight saving time moves clocks by an hour, rarely two).
_OFFSET_MARGIN = timedelta(hours=3)

# The first half of the leader lock's two-int key: advisory locks taken with
# two int4 keys never meet the bigint locks Que takes on job ids.
LEADER_LOCK_SPACE = 0x51554553  # "QUES"


@dataclass(frozen=True)
class Schedule:
    """Enqueue a job of ``type`` on every tick of ``cron`` (in ``timezone``) or
    ``every`` (seconds or a timedelta).

    ``name`` identifies the schedule in the database (its last tick is kept
    under it), across every service that shares it; it defaults to the job
    type. ``missed`` says what happens to
    ticks that passed while no worker ran: ``latest`` (default) enqueues the
    most recent one once, ``all`` enqueues each (up to 1,000), ``skip``
    enqueues none that is more than a minute late.
    """

    type: str
    cron: str | None = None
    every: float | timedelta | None = None
    args: Sequence[Any] = field(default_factory=tuple)
    queue: str = ""
    priority: int = DEFAULT_PRIORITY
    timezone: str | None = None
    name: str = ""
    missed: MissedPolicy = "latest"
    # The job's checked insert parameters (set from the fields above).
    params: InsertParams = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.type if isinstance(self.type, str) else "")
        where = f"schedule {self.name!r}"
        # The job is checked as enqueue would check it, so a bad schedule fails at start.
        try:
            params = insert_params(self.type, list(self.args), self.queue, self.priority, None)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        object.__setattr__(self, "params", params)
        if (self.cron is None) == (self.every is None):
            raise ValueError(f"{where}: give exactly one of cron= and every=")
        if self.missed not in MISSED_POLICIES:
            raise ValueError(f"{where}: missed must be one of {', '.join(MISSED_POLICIES)}")
        if self.cron is not None:
            object.__setattr__(self, "cron", _check_cron(self.cron, where))
            _zone(self.timezone, where)
        else:
            if self.timezone is not None:
                raise ValueError(f"{where}: timezone= applies to cron= only")
            _interval(self.every, where)

    def describe(self) -> str:
        """The schedule's timing in words, for listings."""
        if self.cron is not None:
            return f"cron {self.cron!r} ({self.timezone or 'UTC'})"
        return f"every {_interval(self.every, self.name).total_seconds():g}s"

    def latest_tick(self, at: datetime) -> datetime:
        """The last tick at or before ``at``."""
        if self.cron is not None:
            return next(self._cron_ticks(at, reverse=True))
        step = _interval(self.every, self.name)
        return _EPOCH + ((at - _EPOCH) // step) * step

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        """Every tick later than ``after``, in order."""
        if self.cron is not None:
            yield from self._cron_ticks(after, reverse=False)
            return
        step = _interval(self.every, self.name)
        tick = self.latest_tick(after) + step
        while True:
            yield tick
            tick += step

    def next_tick(self, after: datetime) -> datetime:
        return next(self.ticks_after(after))

    def due(self, last: datetime, now: datetime) -> list[datetime]:
        """The ticks to enqueue now, given the last one enqueued, by the missed policy."""
        latest = self.latest_tick(now)
        if latest <= last:
            return []
        if self.missed == "latest":
            return [latest]
        if self.missed == "skip":
            return [latest] if now - latest <= ON_TIME else []
        if self.cron is None:
            step = _interval(self.every, self.name)
            count = min(MAX_CATCH_UP, (latest - last) // step)
            return [latest - step * n for n in range(count - 1, -1, -1)]
        recent: list[datetime] = []
        for tick in self._cron_ticks(now, reverse=True):
            if tick <= last or len(recent) == MAX_CATCH_UP:
                break
            recent.append(tick)
        return recent[::-1]

    def _cron_ticks(self, start: datetime, *, reverse: bool) -> Iterator[datetime]:
        """The cron's ticks as instants: after ``start`` in order, or with
        ``reverse`` at or before it, latest first.

        The expression is read on the zone's wall clock (cronsim on naive
        times), so each wall-clock tick happens once: in the hour repeated
        when clocks go back, at its first occurrence; in the hour they skip,
        when the gap ends. Iteration starts a margin beyond ``start`` so that
        no tick is missed where wall-clock order and instant order differ.
        """
        assert self.cron is not None
        zone = _zone(self.timezone, self.name)
        wall = start.astimezone(zone).replace(tzinfo=None, microsecond=0)
        wall += _OFFSET_MARGIN if reverse else -_OFFSET_MARGIN
        previous: datetime | None = None
        for tick in _cronsim().CronSim(self.cron, wall, reverse=reverse):
            instant = _instant(tick, zone)
            if reverse:
                wanted = instant <= start and (previous is None or instant < previous)
            else:
                wanted = instant > start and (previous is None or instant > previous)
            if wanted:
                previous = instant
                yield instant


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time in ``zone``: its first occurrence
    when clocks go back, and the end of the gap for a time they skip."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC_ZONE)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # Skipped: fold=1 reads it with the offset after the change (an instant
    # before the gap), fold=0 with the one before (after the gap); the gap
    # ends at the first second whose wall-clock time is not earlier.
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC_ZONE)


class ScheduleStatus(NamedTuple):
    """A schedule as the database knows it, for listings."""

    schedule: Schedule
    last_tick: datetime | None
    last_job_id: int | None
    next_tick: datetime


def schedule_status(schedule: Schedule, row: Any, now: datetime) -> ScheduleStatus:
    """The status of ``schedule`` from its que_schedules row (None: never run)."""
    return ScheduleStatus(
        schedule,
        None if row is None else row["last_tick"],
        None if row is None else row["last_job_id"],
        schedule.next_tick(now),
    )


def check_schedules(schedules: Iterable[Schedule]) -> list[Schedule]:
    """The schedules as a list, refusing anything else and names given twice."""
    checked: list[Schedule] = []
    names: set[str] = set()
    for schedule in schedules:
        if not isinstance(schedule, Schedule):
            kind = type(schedule).__name__
            raise TypeError(f"schedules must be que.Schedule objects, not {kind}")
        if schedule.name in names:
            raise ValueError(
                f"two schedules are named {schedule.name!r}; give each its own name= "
                "(the database keeps the last tick by name)"
            )
        names.add(schedule.name)
        checked.append(schedule)
    return checked


def leader_lock_key(schedules: Sequence[Schedule]) -> int:
    """The second half of the leader lock's key: one per set of schedule names.

    Processes that declare the same schedules elect one leader; another
    service with other schedules leads its own. Where two sets overlap (a
    deploy in progress) both may enqueue the same schedule, and the recorded
    last tick still lets each tick through once.
    """
    names = "\n".join(sorted(s.name for s in schedules))
    import hashlib  # here, not at the top: OpenSSL's hashlib adds 0.6 MB to every worker

    digest = hashlib.sha256(names.encode()).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def _cronsim() -> Any:
    """The cronsim module: an optional dependency (``pip install 'que-pg[cron]'``)."""
    try:
        import cronsim
    except ImportError:
        raise ImportError(
            "cron= schedules need the cronsim package: pip install 'que-pg[cron]' "
            "(every= schedules do not)"
        ) from None
    return cronsim


def _check_cron(expression: str, where: str) -> str:
    if not isinstance(expression, str):
        raise TypeError(f"{where}: cron must be a str, not {type(expression).__name__}")
    expanded = _ALIASES.get(expression.strip().lower(), expression.strip())
    if len(expanded.split()) != 5:
        raise ValueError(
            f"{where}: cron {expression!r} must have five fields (minute hour day month "
            "weekday) or be one of " + ", ".join(_ALIASES) + "; use every= for seconds"
        )
    cronsim = _cronsim()
    try:
        cronsim.CronSim(expanded, datetime.now(UTC_ZONE))
    except cronsim.CronSimError as exc:
        raise ValueError(f"{where}: bad cron expression {expression!r}: {exc}") from None
    return expanded


def _zone(name: str | None, where: str) -> ZoneInfo:
    if name is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{where}: unknown time zone {name!r}") from None


def _interval(every: float | timedelta | None, where: str) -> timedelta:
    step = _durations.seconds(every, f"{where}: every", minimum=1)
    return every if isinstance(every, timedelta) else timedelta(seconds=step)
