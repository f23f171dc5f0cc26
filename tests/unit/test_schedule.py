"""Schedules without a database: checks, tick arithmetic and missed-tick policies."""

from __future__ import annotations

import itertools
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import que
from que._schedule import MAX_CATCH_UP, check_schedules, leader_lock_key

UTC = timezone.utc


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_cron_ticks_in_a_time_zone_across_a_daylight_saving_change() -> None:
    # Europe/Berlin leaves summer time on 2026-10-25: 09:00 local is 07:00 UTC
    # before and 08:00 UTC after.
    daily = que.Schedule("Report", cron="0 9 * * *", timezone="Europe/Berlin")
    ticks = list(itertools.islice(daily.ticks_after(at(2026, 10, 23, 12)), 3))
    assert ticks == [at(2026, 10, 24, 7), at(2026, 10, 25, 8), at(2026, 10, 26, 8)]
    assert daily.latest_tick(at(2026, 10, 25, 8)) == at(2026, 10, 25, 8)
    assert daily.latest_tick(at(2026, 10, 25, 7, 59, 59)) == at(2026, 10, 24, 7)


def test_interval_ticks_count_from_the_epoch_so_every_process_agrees() -> None:
    every = que.Schedule("Beat", every=timedelta(minutes=15))
    assert every.latest_tick(at(2026, 1, 1, 10, 7, 30)) == at(2026, 1, 1, 10, 0)
    assert every.next_tick(at(2026, 1, 1, 10, 0)) == at(2026, 1, 1, 10, 15)
    assert every.describe() == "every 900s"


@pytest.mark.parametrize(
    ("missed", "now", "expected"),
    [
        ("latest", at(2026, 1, 1, 12, 0, 30), [at(2026, 1, 1, 12)]),
        ("all", at(2026, 1, 1, 12, 0, 30), [at(2026, 1, 1, 11), at(2026, 1, 1, 12)]),
        ("skip", at(2026, 1, 1, 12, 0, 30), [at(2026, 1, 1, 12)]),
        ("skip", at(2026, 1, 1, 12, 5), []),
        ("latest", at(2026, 1, 1, 10, 59), []),
    ],
)
def test_due_ticks_follow_the_missed_policy(
    missed: str, now: datetime, expected: list[datetime]
) -> None:
    hourly = que.Schedule("H", cron="@hourly", missed=missed)  # type: ignore[arg-type]
    assert hourly.due(at(2026, 1, 1, 10), now) == expected


def test_catching_up_enqueues_at_most_the_most_recent_thousand_ticks() -> None:
    every = que.Schedule("Beat", every=1, missed="all")
    due = every.due(at(2026, 1, 1), at(2026, 1, 2))
    assert len(due) == MAX_CATCH_UP and due[-1] == at(2026, 1, 2)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "exactly one of cron= and every="),
        ({"cron": "* * * * *", "every": 5}, "exactly one of cron= and every="),
        ({"cron": "*/5 * * *"}, "five fields"),
        ({"cron": "0 0 * * * *"}, "five fields"),
        ({"cron": "99 * * * *"}, "bad cron expression"),
        ({"cron": "* * * * *", "timezone": "Nowhere/City"}, "unknown time zone"),
        ({"every": 0.5}, "at least 1 second"),
        ({"every": 5, "timezone": "UTC"}, "cron= only"),
        ({"every": 5, "missed": "sometimes"}, "missed must be one of"),
        ({"every": 5, "priority": 40000}, "schedule 'T'"),
        ({"every": 5, "args": [object()]}, "schedule 'T'"),
    ],
)
def test_a_bad_schedule_is_refused_naming_it(options: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        que.Schedule("T", **options)  # type: ignore[arg-type]


def test_names_are_unique_and_the_leader_key_depends_on_the_set_only() -> None:
    a, b = que.Schedule("A", every=5), que.Schedule("B", every=5)
    with pytest.raises(ValueError, match="two schedules are named 'A'"):
        check_schedules([a, que.Schedule("A", cron="* * * * *")])
    with pytest.raises(TypeError, match=r"que\.Schedule"):
        check_schedules(["A"])  # type: ignore[list-item]
    assert leader_lock_key([a, b]) == leader_lock_key([b, a])
    assert leader_lock_key([a]) != leader_lock_key([a, b])
    assert que.Schedule("X", every=5, name="x-every-5").name == "x-every-5"


def test_cron_without_the_cron_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "cronsim", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'que-pg\[cron\]'"):
        que.Schedule("T", cron="* * * * *")
    assert que.Schedule("T", every=60).describe() == "every 60s"  # intervals need nothing


NEW_YORK = "America/New_York"


def first(schedule: que.Schedule, after: datetime, count: int) -> list[datetime]:
    return list(itertools.islice(schedule.ticks_after(after), count))


def test_when_clocks_go_back_a_wall_clock_tick_happens_once() -> None:
    # New York's 01:00-02:00 happens twice on 2024-11-03: 05:00-06:00 UTC (EDT)
    # and 06:00-07:00 UTC (EST).
    hourly = que.Schedule("H", cron="0 * * * *", timezone=NEW_YORK)
    assert first(hourly, at(2024, 11, 3, 3), 4) == [
        at(2024, 11, 3, 4),
        at(2024, 11, 3, 5),
        at(2024, 11, 3, 7),
        at(2024, 11, 3, 8),
    ]
    daily = que.Schedule("D", cron="30 1 * * *", timezone=NEW_YORK)
    assert first(daily, at(2024, 11, 3, 3), 2) == [at(2024, 11, 3, 5, 30), at(2024, 11, 4, 6, 30)]
    # In the repeated hour, the latest tick is the one that already happened.
    assert daily.latest_tick(at(2024, 11, 3, 6, 10)) == at(2024, 11, 3, 5, 30)
    assert hourly.latest_tick(at(2024, 11, 3, 6, 20)) == at(2024, 11, 3, 5)


def test_a_tick_in_the_hour_clocks_skip_happens_when_the_gap_ends() -> None:
    # New York skips 02:00-03:00 on 2024-03-10: 01:59:59 EST is followed by
    # 03:00 EDT, at 07:00 UTC.
    daily = que.Schedule("D", cron="30 2 * * *", timezone=NEW_YORK)
    assert first(daily, at(2024, 3, 9), 3) == [
        at(2024, 3, 9, 7, 30),
        at(2024, 3, 10, 7),
        at(2024, 3, 11, 6, 30),
    ]
    half_hourly = que.Schedule("HH", cron="*/30 * * * *", timezone=NEW_YORK)
    assert first(half_hourly, at(2024, 3, 10, 6), 3) == [
        at(2024, 3, 10, 6, 30),
        at(2024, 3, 10, 7),
        at(2024, 3, 10, 7, 30),
    ]


@pytest.mark.parametrize("zone", [NEW_YORK, "Europe/Berlin", "Australia/Lord_Howe", "UTC"])
def test_latest_and_next_ticks_agree_all_year(zone: str) -> None:
    # Lord Howe moves its clocks by 30 minutes. Every tick of the year is in
    # order; around each change of offset (and every 50th tick elsewhere)
    # latest_tick and next_tick agree with the sequence.
    schedule = que.Schedule("T", cron="15,45 * * * *", timezone=zone)
    ticks = first(schedule, at(2024, 1, 1), 2 * 24 * 366)
    assert ticks == sorted(set(ticks))
    info = ZoneInfo(zone)
    changes = [
        n
        for n in range(1, len(ticks))
        if ticks[n].astimezone(info).utcoffset() != ticks[n - 1].astimezone(info).utcoffset()
    ]
    assert len(changes) == (0 if zone == "UTC" else 2)
    checked = {n for c in changes for n in range(c - 6, c + 7)} | set(range(1, len(ticks), 50))
    for n in sorted(checked):
        earlier, tick = ticks[n - 1], ticks[n]
        assert schedule.latest_tick(tick) == tick
        assert schedule.latest_tick(tick - timedelta(seconds=1)) == earlier
        assert schedule.next_tick(earlier) == tick


def test_catching_up_after_a_long_outage_takes_the_most_recent_ticks() -> None:
    for schedule in (
        que.Schedule("S", every=1, missed="all"),
        que.Schedule("M", cron="* * * * *", missed="all"),
    ):
        due = schedule.due(at(2024, 1, 1), at(2025, 1, 1))
        assert len(due) == MAX_CATCH_UP and due[-1] == at(2025, 1, 1)
        assert due == sorted(set(due))
