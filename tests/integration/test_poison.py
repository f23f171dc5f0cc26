"""Poison jobs and hostile work functions: jobs whose args other producers wrote
(a lone UTF-16 surrogate, NUL, control characters), exceptions whose text
cannot be stored as it is, whose ``str()`` raises, or which run to megabytes.

Every such job is recorded as failed with a readable last_error, every other
job is worked, no worker thread, task or locker dies, and one bad outcome
never undoes the others.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import que

from ..sides import AnyClient, Side, r, wait_until

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Args as Ruby, Go or a SQL producer can write them into the json column:
# PostgreSQL's json keeps the text as given, lone surrogates and \u0000 too.
POISON_ARGS = ['["\\ud800"]', '["\\u0000"]', '["tab\\tnew\\nline"]', '["\\udfff\\ud800x"]']
# Valid JSON that Python's json cannot decode: a Ruby bignum of 5,000 digits,
# and arrays nested 12,000 deep (PostgreSQL takes that; Python 3.13 decodes up
# to about 8,000 levels, earlier versions fewer).
UNDECODABLE_ARGS = ["[" + "9" * 5000 + "]", "[" * 12000 + "]" * 12000]


@asynccontextmanager
async def running(
    side: Side, client: AnyClient, work_map: dict[str, Any], engine: str, size: int
) -> AsyncIterator[None]:
    """A WorkerPool ("pool") or BatchWorker ("batch") of ``size`` working until the
    block ends; it must then stop within 30 seconds."""
    if engine == "pool":
        pool = side.worker_pool(client, work_map, size, interval=0.05)
        pool.start()
        try:
            yield
        finally:
            assert await side.call(pool.shutdown, 30) is True
    else:
        batch = side.batch_worker(client, work_map, concurrency=size, interval=0.05)
        side.start_engine(batch)
        try:
            yield
        finally:
            assert await side.stop_engine(batch, 30)


def insert_by_sql(conn: psycopg.Connection[Any], job_class: str, args_json: str) -> int:
    row = conn.execute(
        "INSERT INTO que_jobs (job_class, args) VALUES (%s, %s::json) RETURNING job_id",
        [job_class, args_json],
    ).fetchone()
    assert row is not None
    return int(row[0])


def json_string(text: str) -> str:
    """A JSON string literal with every non-printable or non-ASCII character
    escaped as \\uXXXX, as other producers may write it; lone surrogates stay lone."""
    out = []
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


class Hostile(Exception):
    """An exception whose text is whatever the job's args hold."""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this exception raises")


async def raise_with_args(job: Any) -> None:
    raise Hostile(f"cannot handle {job.args[0]}")


async def raise_unprintable(job: Any) -> None:
    raise Unprintable()


async def raise_huge(job: Any) -> None:
    raise Hostile("z" * 2_000_000)


async def succeed(job: Any) -> None:
    return None


POISON_MAP = {
    "WithArgs": raise_with_args,
    "Unprintable": raise_unprintable,
    "Huge": raise_huge,
    "Fine": succeed,
}


def enqueue_poison_and_fine(conn: psycopg.Connection[Any], fine: int) -> list[int]:
    poison = [insert_by_sql(conn, "WithArgs", args) for args in POISON_ARGS]
    poison.append(insert_by_sql(conn, "Unprintable", "[]"))
    poison.append(insert_by_sql(conn, "Huge", "[]"))
    poison += [insert_by_sql(conn, "Fine", args) for args in UNDECODABLE_ARGS]
    for n in range(fine):
        insert_by_sql(conn, "Fine", f"[{n}]")
    return poison


def assert_poison_recorded(conn: psycopg.Connection[Any], poison: list[int]) -> None:
    rows = conn.execute(
        "SELECT job_id, job_class, error_count, last_error FROM que_jobs ORDER BY job_id"
    ).fetchall()
    assert [row[0] for row in rows] == poison, "only the poison jobs are left"
    for job_id, job_class, error_count, last_error in rows:
        assert error_count == 1, (job_id, job_class)
        first = last_error.splitlines()[0]
        if job_class == "WithArgs":
            assert first.startswith("Hostile: cannot handle "), first
        elif job_class == "Fine":  # args no worker can decode
            assert first.startswith("QueError: job args could not be decoded: "), first
            assert "ValueError" in first or "RecursionError" in first
        elif job_class == "Unprintable":
            assert first.startswith("Unprintable: <its message could not be read"), first
        else:
            assert first.startswith("Hostile: zzz") and len(last_error) < 10_000
    lone = conn.execute(
        "SELECT last_error FROM que_jobs WHERE args::text = %s", ['["\\ud800"]']
    ).fetchone()
    assert lone is not None and "cannot handle \\ud800" in lone[0]


async def test_worker_pool_survives_poison_and_works_the_rest(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    poison = enqueue_poison_and_fine(conn, 20)
    work_map = {name: side.handler(func) for name, func in POISON_MAP.items()}
    pool = side.worker_pool(qc, work_map, 3, interval=0.05)
    pool.start()
    try:
        await wait_until(
            lambda: (
                conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (len(poison),)
                and conn.execute("SELECT count(*) FROM que_jobs WHERE error_count = 0").fetchone()
                == (0,)
            ),
            60,
            "fine jobs worked and poison jobs recorded",
        )
        assert_poison_recorded(conn, poison)
        # Every worker is still alive: a fresh batch is worked by all three.
        await r(qc.enqueue_many([que.Job(type="Fine", args=[n]) for n in range(30)]))
        await wait_until(
            lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (len(poison),),
            60,
            "the second batch worked",
        )
        assert all(worker.working for worker in pool.workers)
    finally:
        assert await side.call(pool.shutdown, 30) is True


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_batch_worker_survives_poison_and_keeps_other_outcomes(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], concurrency: int
) -> None:
    poison = enqueue_poison_and_fine(conn, 50)
    work_map = {name: side.handler(func) for name, func in POISON_MAP.items()}
    engine = side.batch_worker(qc, work_map, concurrency=concurrency, interval=0.05)
    side.start_engine(engine)
    try:
        await wait_until(
            lambda: (
                conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (len(poison),)
                and conn.execute("SELECT count(*) FROM que_jobs WHERE error_count = 0").fetchone()
                == (0,)
            ),
            60,
            "fine jobs deleted and poison jobs recorded",
        )
        assert_poison_recorded(conn, poison)
        await r(qc.enqueue_many([que.Job(type="Fine", args=[n]) for n in range(30)]))
        await wait_until(
            lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (len(poison),),
            60,
            "the locker still claims",
        )
    finally:
        assert await side.stop_engine(engine, 30)


@PROPERTY
@given(text=st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))
def test_args_written_by_sql_are_worked_or_recorded(
    client: que.Client, conn: psycopg.Connection[Any], text: str
) -> None:
    """Whatever string another producer put in args, the job is worked (the work
    function sees the decoded text) or fails with a readable last_error."""
    seen: list[Any] = []

    def check(job: que.Job) -> None:
        seen.append(job.args[0])
        if len(text) % 2:
            raise Hostile(f"odd text {job.args[0]}")

    job_id = insert_by_sql(conn, "Check", "[" + json_string(text) + "]")
    worker = que.Worker(client, {"Check": check}, interval=0.05)
    assert worker.work_one() is True
    assert seen == [text]
    row = conn.execute(
        "SELECT error_count, last_error FROM que_jobs WHERE job_id = %s", [job_id]
    ).fetchone()
    if len(text) % 2:
        assert row is not None and row[0] == 1
        assert row[1].startswith("Hostile: odd text ")
        conn.execute("DELETE FROM que_jobs WHERE job_id = %s", [job_id])
    else:
        assert row is None


async def broken(job: Any) -> None:
    raise Hostile("fails as planned")


HOSTILE_POLICIES: dict[str, Any] = {
    "Raises": lambda n: 1 / 0,
    "Negative": lambda n: -5,
    "Enormous": lambda n: 1e30,
    "NotANumber": lambda n: "soon",
}


@pytest.mark.parametrize("engine", ["pool", "batch"])
async def test_hostile_retry_policies_cannot_stop_the_recording_of_failures(
    side: Side, db_url: str, conn: psycopg.Connection[Any], engine: str
) -> None:
    """A retry policy that raises, or gives a value PostgreSQL cannot add to a
    time, falls back to the default backoff (or is capped): the failure is
    recorded, and the other jobs of the batch are still worked."""
    names = [*HOSTILE_POLICIES, "Fine"]
    for name in names:
        for _ in range(3):
            insert_by_sql(conn, name, "[]")
    work_map = {name: side.handler(broken) for name in HOSTILE_POLICIES}
    work_map["Fine"] = side.handler(succeed)
    async with (
        side.client(db_url, retry_intervals=HOSTILE_POLICIES) as client,
        running(side, client, work_map, engine, 2 if engine == "pool" else 4),
    ):
        await wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FILTER (WHERE error_count = 0), count(*) FROM que_jobs"
                ).fetchone()
                == (0, 12)
            ),
            60,
            "every failure recorded and every fine job deleted",
        )
    rows = conn.execute(
        "SELECT job_class, max(error_count), "
        "min(extract(epoch FROM run_at - now())), max(extract(epoch FROM run_at - now())) "
        "FROM que_jobs GROUP BY job_class ORDER BY job_class"
    ).fetchall()
    by_type = {row[0]: row[1:] for row in rows}
    assert set(by_type) == set(HOSTILE_POLICIES)
    for name in ("Raises", "Negative", "NotANumber"):  # the default backoff: 4 s
        count, soonest, latest = by_type[name]
        assert count == 1 and 0 < soonest <= latest <= 4
    count, soonest, _ = by_type["Enormous"]
    assert count == 1 and soonest > 99 * 365 * 86400  # capped at a century


async def test_a_job_at_the_highest_error_count_fails_again_without_undoing_others(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    """error_count is an int4: a job already at its maximum (a Ruby or Go worker
    retried it forever, or SQL set it) stays there instead of failing the batch."""
    conn.execute("INSERT INTO que_jobs (job_class, error_count) VALUES ('Broken', 2147483647)")
    for _ in range(5):
        insert_by_sql(conn, "Fine", "[]")
    work_map = {"Broken": side.handler(broken), "Fine": side.handler(succeed)}
    engine = side.batch_worker(qc, work_map, concurrency=4, interval=0.05)
    side.start_engine(engine)
    try:
        await wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*), max(last_error) IS NOT NULL FROM que_jobs"
                ).fetchone()
                == (1, True)
            ),
            60,
            "the fine jobs deleted and the failure recorded",
        )
    finally:
        assert await side.stop_engine(engine, 30)
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row is not None and row[0] == 2147483647
    assert row[1].startswith("Hostile: fails as planned")


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="Python 3.10 cannot tell a task being cancelled from a CancelledError it raised",
)
@pytest.mark.parametrize("side", ["async"], indirect=True)  # threads are never cancelled
@pytest.mark.parametrize("engine", ["pool", "batch"])
async def test_a_cancelled_error_from_a_work_function_is_a_failure(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any], engine: str
) -> None:
    """A work function that lets a CancelledError out (from a task of its own)
    fails its job; the worker task goes on working the rest."""

    async def inner_cancelled(job: Any) -> None:
        raise asyncio.CancelledError()

    insert_by_sql(conn, "Cancels", "[]")
    for _ in range(5):
        insert_by_sql(conn, "Fine", "[]")
    work_map = {"Cancels": inner_cancelled, "Fine": succeed}
    async with running(side, qc, work_map, engine, 1):
        await wait_until(
            lambda: (
                conn.execute("SELECT count(*), max(error_count) FROM que_jobs").fetchone() == (1, 1)
            ),
            60,
            "the fine jobs worked and the cancelled one recorded",
        )
    row = conn.execute("SELECT last_error FROM que_jobs").fetchone()
    assert row is not None and row[0].startswith("CancelledError")
