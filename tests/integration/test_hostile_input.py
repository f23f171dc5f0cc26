"""Property-based checks of enqueue against hostile and odd input: each value is
either stored and read back unchanged, or refused with InvalidJobError before
anything is written; the table is never damaged."""

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import que

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

hostile_text = st.one_of(
    st.text(),
    st.sampled_from(
        [
            "'; DROP TABLE que_jobs; --",
            "\x00",
            "a\x00b",
            "$1",
            "%s",
            "%(queue)s",
            "\\",
            "\ud800",
            "Billing::Refund",
            "ü\u2603\U0001f600",
        ]
    ),
)


def _table_ok(conn: psycopg.Connection[Any]) -> None:
    assert que.current_version(conn) == 3


def _has_bad_float(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value) or math.isinf(value)
    if isinstance(value, list):
        return any(_has_bad_float(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bad_float(v) for v in value.values())
    return False


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    return False


@PROPERTY
@given(job_type=hostile_text, queue=hostile_text)
def test_type_and_queue_are_stored_literally_or_refused(
    client: que.Client, conn: psycopg.Connection[Any], job_type: str, queue: str
) -> None:
    conn.execute("DELETE FROM que_jobs")
    bad = job_type == "" or any("\x00" in s or _has_surrogate(s) for s in (job_type, queue))
    try:
        job = client.enqueue(que.Job(type=job_type, queue=queue))
    except que.InvalidJobError:
        assert bad
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
    else:
        assert not bad
        row = conn.execute("SELECT job_id, job_class, queue FROM que_jobs").fetchone()
        assert row == (job.id, job_type, queue)
    _table_ok(conn)


@PROPERTY
@given(args=json_values)
def test_args_round_trip_or_are_refused(
    client: que.Client, conn: psycopg.Connection[Any], args: Any
) -> None:
    conn.execute("DELETE FROM que_jobs")
    try:
        client.enqueue(que.Job(type="T", args=args))
    except que.InvalidJobError as exc:
        assert _has_bad_float(args) or _has_surrogate(args), exc
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
        return
    stored = conn.execute("SELECT args FROM que_jobs").fetchone()
    assert stored is not None
    assert stored[0] == json.loads(json.dumps(args))
    job = client.lock_job()
    assert job is not None
    with job:
        assert job.args == stored[0]
        job.delete()


@PROPERTY
@given(priority=st.integers(min_value=-(2**40), max_value=2**40))
def test_priority_in_smallint_or_refused(
    client: que.Client, conn: psycopg.Connection[Any], priority: int
) -> None:
    conn.execute("DELETE FROM que_jobs")
    try:
        client.enqueue(que.Job(type="T", priority=priority))
    except que.InvalidJobError:
        assert not -32768 <= priority <= 32767
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
    else:
        assert conn.execute("SELECT priority FROM que_jobs").fetchone() == (priority,)


@PROPERTY
@given(
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    aware=st.booleans(),
    offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_run_at_round_trips_or_is_refused(
    client: que.Client,
    conn: psycopg.Connection[Any],
    when: datetime,
    aware: bool,
    offset_minutes: int,
) -> None:
    conn.execute("DELETE FROM que_jobs")
    run_at = when.replace(tzinfo=timezone(timedelta(minutes=offset_minutes))) if aware else when
    try:
        client.enqueue(que.Job(type="T", run_at=run_at))
    except que.InvalidJobError as exc:
        assert not aware and "naive" in str(exc)
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
    else:
        assert aware
        assert conn.execute("SELECT run_at FROM que_jobs").fetchone() == (run_at,)


def test_ten_megabyte_args_round_trip(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    big = ["x" * 1_000_000 for _ in range(10)]
    client.enqueue(que.Job(type="Big", args=big))
    job = client.lock_job()
    assert job is not None
    with job:
        assert job.args == big
        job.delete()
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


@PROPERTY
@given(names=st.lists(st.tuples(hostile_text, hostile_text, json_values), min_size=1, max_size=6))
def test_bulk_enqueue_stores_every_field_literally_or_refuses_all(
    client: que.Client, conn: psycopg.Connection[Any], names: list[tuple[str, str, Any]]
) -> None:
    conn.execute("DELETE FROM que_jobs")
    jobs = [que.Job(type=t, queue=q, args=a) for t, q, a in names]
    try:
        client.enqueue_many(jobs)
    except que.InvalidJobError:
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
        return
    rows = conn.execute("SELECT job_id, job_class, queue, args FROM que_jobs ORDER BY job_id")
    assert rows.fetchall() == [
        (j.id, t, q, json.loads(json.dumps(a))) for j, (t, q, a) in zip(jobs, names, strict=True)
    ]
