"""The warnings about que_jobs and the per-queue totals, without a database."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from que.health import (
    DEAD_ROWS_FLOOR,
    QUEUE_AUTOVACUUM,
    VACUUM_STALE,
    QueueStats,
    TableHealth,
    queue_stats_rows,
    queue_totals,
    table_health_from_row,
    table_warnings,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc)


def healthy(**changes: Any) -> TableHealth:
    base = TableHealth(
        live_rows=100,
        dead_rows=0,
        total_bytes=65536,
        last_vacuum=None,
        last_autovacuum=NOW - timedelta(minutes=1),
        last_analyze=None,
        last_autoanalyze=None,
        autovacuum_server=True,
        track_counts=True,
        autovacuum_table=True,
        reloptions=dict(QUEUE_AUTOVACUUM),
        extension_installed=True,
        longest_transaction=None,
        checked_at=NOW,
    )
    return dataclasses.replace(base, **changes)


def test_a_healthy_table_has_no_warning() -> None:
    assert table_warnings(healthy()) == ()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"autovacuum_server": False}, "autovacuum is off on the server"),
        ({"track_counts": False}, "track_counts is off"),
        ({"autovacuum_table": False}, "autovacuum is off for que_jobs"),
        ({"longest_transaction": timedelta(hours=2)}, "open for 2h 0m"),
    ],
)
def test_each_problem_has_its_warning(changes: dict[str, Any], words: str) -> None:
    [warning] = table_warnings(healthy(**changes))
    assert words in warning


def test_dead_rows_warn_only_when_many_and_not_vacuumed_lately() -> None:
    many = DEAD_ROWS_FLOOR + 1
    assert table_warnings(healthy(dead_rows=DEAD_ROWS_FLOOR)) == ()
    # Vacuumed a minute ago: autovacuum is keeping up.
    assert table_warnings(healthy(dead_rows=many)) == ()
    stale = NOW - VACUUM_STALE - timedelta(seconds=1)
    [warning] = table_warnings(healthy(dead_rows=many, last_autovacuum=stale))
    assert "10,001 dead rows for 100 live ones" in warning
    assert "last vacuumed 10m 1s ago" in warning
    [never] = table_warnings(healthy(dead_rows=many, last_autovacuum=None))
    assert "never vacuumed" in never
    # A vacuum by hand counts as much as autovacuum.
    fresh = healthy(dead_rows=many, last_autovacuum=None, last_vacuum=NOW)
    assert table_warnings(fresh) == ()
    # Ten dead rows per live one are expected in a big table.
    big = healthy(live_rows=5000, dead_rows=50_000, last_autovacuum=None)
    assert table_warnings(big) == ()
    assert table_warnings(dataclasses.replace(big, dead_rows=50_001))


def test_missing_extension_settings() -> None:
    options = dict(QUEUE_AUTOVACUUM)
    del options["autovacuum_vacuum_threshold"]
    options["autovacuum_vacuum_scale_factor"] = "0.2"
    health = healthy(reloptions=options)
    assert health.missing_settings == {
        "autovacuum_vacuum_scale_factor": "0",
        "autovacuum_vacuum_threshold": "1000",
    }
    [warning] = table_warnings(health)
    assert "lacks the que-pg extension's autovacuum settings" in warning
    assert "autovacuum_vacuum_threshold = 1000" in warning
    [plain] = table_warnings(healthy(reloptions={}, extension_installed=False))
    assert "default autovacuum settings" in plain
    assert "que migrate" in plain


def test_from_a_row() -> None:
    row = {
        "checked_at": NOW,
        "n_live_tup": None,  # no statistics yet
        "n_dead_tup": None,
        "last_vacuum": None,
        "last_autovacuum": None,
        "last_analyze": None,
        "last_autoanalyze": None,
        "total_bytes": 8192,
        "autovacuum": "off",
        "track_counts": "on",
        "reloptions": ["autovacuum_enabled=false"],
        "extension_installed": False,
        "longest_transaction": None,
    }
    health = table_health_from_row(row)
    assert (health.live_rows, health.dead_rows) == (0, 0)
    assert not health.autovacuum_server and not health.autovacuum_table
    assert len(health.warnings) == 3


def test_rows_and_totals() -> None:
    age = timedelta(seconds=30)
    live = [
        {
            "queue": "q",
            "job_class": "A",
            "ready": 2,
            "scheduled": 1,
            "locked": 1,
            "failed": 1,
            "oldest_due_age": age,
            "highest_error_count": 2,
            "oldest_run_at": NOW,
        }
    ]
    dead = [{"queue": "q", "job_class": "A", "dead": 4}, {"queue": "", "job_class": "B", "dead": 1}]
    stats = queue_stats_rows(live, dead)
    assert [(s.queue, s.type, s.total, s.dead) for s in stats] == [
        ("", "B", 0, 1),
        ("q", "A", 4, 4),
    ]
    assert [s.dead for s in queue_stats_rows(live, None)] == [None]
    totals = queue_totals([*stats, QueueStats("q", "C", 1, 0, 0, 0, 0, None, 0, None)])
    assert [(t.queue, t.type, t.ready, t.dead, t.oldest_due_age) for t in totals] == [
        ("", None, 0, 1, None),
        ("q", None, 3, 4, age),
    ]
