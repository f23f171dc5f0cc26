"""The pure parts of job management: filters, cursors, durations, output."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

import que
from que._cli_manage_output import cell, jobs_table, parse_duration, show
from que._cli_support import UsageError
from que._manage_base import (
    DeadJobRecord,
    JobRecord,
    Page,
    check_wait,
    dead_cursor,
    decode_dead_cursor,
    decode_job_cursor,
    job_cursor,
    list_params,
    page,
)

T = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


def record(**fields: object) -> JobRecord:
    values: dict[str, object] = {
        "id": 1,
        "queue": "",
        "priority": 100,
        "run_at": T,
        "type": "T",
        "args": [],
        "error_count": 0,
        "last_error": None,
        "locked": False,
    }
    values.update(fields)
    return JobRecord(**values)  # type: ignore[arg-type]


@given(
    queue=st.text(),
    priority=st.integers(-32768, 32767),
    job_id=st.integers(1, 2**63 - 1),
    micro=st.integers(0, 999_999),
)
def test_job_cursors_round_trip_exactly(queue: str, priority: int, job_id: int, micro: int) -> None:
    moment = T.replace(microsecond=micro).astimezone(timezone(timedelta(hours=-5)))
    cursor = job_cursor(record(queue=queue, priority=priority, id=job_id, run_at=moment))
    assert decode_job_cursor(cursor) == {
        "after_queue": queue,
        "after_priority": priority,
        "after_run_at": moment,
        "after_id": job_id,
    }


def test_dead_cursors_round_trip_and_do_not_mix() -> None:
    dead = DeadJobRecord(5, "", 1, T, "T", [], 0, None, T, "cancelled", "why")
    assert decode_dead_cursor(dead_cursor(dead)) == {"after_died_at": T, "after_id": 5}
    with pytest.raises(ValueError, match=r"jobs\.list"):
        decode_job_cursor(dead_cursor(dead))
    with pytest.raises(ValueError, match=r"dead\.list"):
        decode_dead_cursor(job_cursor(record()))
    for bad in ("j1.", "j1.!!", "j1.WzFd", "j1.eyJhIjoxfQ", "j1.WyJxIiwxLCJub3BlIiwxXQ"):
        with pytest.raises(ValueError):
            decode_job_cursor(bad)


def test_a_page_knows_whether_more_follow() -> None:
    records = [record(id=n) for n in range(4)]
    assert page(records, 3, job_cursor) == Page(tuple(records[:3]), job_cursor(records[2]))
    assert page(records[:3], 3, job_cursor) == Page(tuple(records[:3]), None)


def test_list_params_fold_unused_filters() -> None:
    params = list_params(
        queue=None,
        type=None,
        state="failed",
        older_than=timedelta(minutes=2),
        args_contain={"user": "ü"},
        after=None,
        limit=10,
    )
    assert params["failed"] and not (params["ready"] or params["scheduled"] or params["locked"])
    assert (params["queue"], params["after_id"], params["limit"]) == (None, None, 11)
    assert (params["older_than"], params["args_contain"]) == (120.0, '{"user":"ü"}')
    literal = list_params(
        queue=None,
        type=None,
        state=None,
        older_than=None,
        args_contain=["not a NUL: \\u0000"],
        after=None,
        limit=1,
    )
    assert literal["args_contain"] == '["not a NUL: \\\\u0000"]'


def test_wait() -> None:
    assert (check_wait(None), check_wait(0), check_wait(2)) == (None, None, 2.0)
    for bad in (-1, True, "5", 10**6):
        with pytest.raises(ValueError):
            check_wait(bad)


def test_durations() -> None:
    assert parse_duration("90s", "--in") == timedelta(seconds=90)
    assert parse_duration("1w2d", "--in") == timedelta(days=9)
    assert parse_duration("1.5h", "--in") == timedelta(minutes=90)
    for bad in ("", "5", "h", "1h 30m", "-1h", "1y", "1000000w"):
        with pytest.raises(UsageError):
            parse_duration(bad, "--in")


def test_tables_cannot_be_forged_by_names() -> None:
    assert cell("a\nb\x1b[31m") == "a\\nb\\u001b[31m"
    text = jobs_table(Page((record(queue="q\nID  fake", type="T\r"),), None), T)
    assert len(text.splitlines()) == 2
    shown = show(record(last_error="line 1\nline 2", locked=True), T)
    assert shown.endswith("last_error:\nline 1\nline 2")
    assert "state:       running" in shown


def test_errors_are_que_errors_with_the_id() -> None:
    error = que.JobLockedError("busy", 42)
    assert isinstance(error, que.QueError) and error.job_id == 42
    assert isinstance(que.JobNotFoundError("gone", 1), LookupError)
