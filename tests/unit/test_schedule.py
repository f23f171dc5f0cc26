"""Schedules without a database: checks, tick arithmetic and missed-tick policies."""

from __future__ import annotations

import itertools
import sys
from datetime import datetime, timedelta, timezone

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
        ({"every": 0.5}, "at least one second"),
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
