"""Rows written the way Ruby que 0.x and Go que-go write them are worked here, and
rows written here are the rows they expect."""

from datetime import datetime, timezone
from typing import Any

import psycopg

import que

from ..sides import AnyClient, Side, r, using

# The insert both Ruby que 0.x and que-go send: typed parameters, defaults by coalesce.
FOREIGN_INSERT = """
INSERT INTO que_jobs (queue, priority, run_at, job_class, args)
VALUES (coalesce(%s, '')::text, coalesce(%s, 100)::smallint,
        coalesce(%s, now())::timestamptz, %s::text, coalesce(%s, '[]')::json)
RETURNING job_id
"""

COLUMNS = "SELECT queue, priority, job_class, args::text, error_count, last_error FROM que_jobs"


def foreign_insert(
    conn: psycopg.Connection[Any],
    queue: str | None,
    priority: int | None,
    job_class: str,
    args: str | None,
) -> int:
    row = conn.execute(FOREIGN_INSERT, [queue, priority, None, job_class, args]).fetchone()
    assert row is not None
    return int(row[0])


async def test_ruby_and_go_rows_are_worked(
    side: Side, qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    seen: list[tuple[str, int, Any]] = []
    ruby = foreign_insert(conn, None, 0, "Billing::Refund", '[1,"two",{"k":"v"}]')
    go = foreign_insert(conn, "", 100, "Billing::Refund", None)

    async def refund(job: Any) -> None:
        seen.append((job.queue, job.priority, job.args))

    worker = side.worker(qc, {"Billing::Refund": side.handler(refund)})
    while await side.call(worker.work_one):
        pass
    assert seen == [("", 0, [1, "two", {"k": "v"}]), ("", 100, [])]
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
    assert ruby < go


async def test_rows_written_here_match_the_foreign_format(
    qc: AnyClient, conn: psycopg.Connection[Any]
) -> None:
    foreign_insert(conn, "", 0, "Billing::Refund", '[1,"two",{"k":"v"}]')
    foreign_insert(conn, None, None, "Plain", None)
    await r(qc.enqueue(que.Job(type="Billing::Refund", args=[1, "two", {"k": "v"}], priority=0)))
    await r(qc.enqueue(que.Job(type="Plain")))
    rows = conn.execute(COLUMNS + " ORDER BY job_id").fetchall()
    assert rows[0] == rows[2] == ("", 0, "Billing::Refund", '[1,"two",{"k":"v"}]', 0, None)
    assert rows[1] == rows[3] == ("", 100, "Plain", "[]", 0, None)


async def test_ruby_error_update_is_read_back(qc: AnyClient, conn: psycopg.Connection[Any]) -> None:
    """Ruby que 0.x records a failure by setting error_count, run_at and last_error."""
    job_id = foreign_insert(conn, "", 100, "Flaky", "[]")
    conn.execute(
        "UPDATE que_jobs SET error_count = 2, last_error = 'RuntimeError: x\n/app/flaky.rb:3', "
        "run_at = %s WHERE job_id = %s",
        [datetime(2000, 1, 1, tzinfo=timezone.utc), job_id],
    )
    job = await r(qc.lock_job())
    assert job is not None
    async with using(job):
        assert (job.error_count, job.last_error) == (2, "RuntimeError: x\n/app/flaky.rb:3")
        await r(job.error("ValueError: again"))
    row = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchone()
    assert row == (3, "ValueError: again")
