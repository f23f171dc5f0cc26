"""queue_stats() and table_health() on both sides, against a real server."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import psycopg
import pytest

import que

from ..sides import AnyClient, Side, r, wait_event, wait_until

Conn = psycopg.Connection[tuple[Any, ...]]


def enqueue(conn: Conn, job_class: str, queue: str = "", run_at: str = "now()") -> int:
    """A job inserted as Ruby or Go would; ``run_at`` is an SQL expression."""
    row = conn.execute(
        "INSERT INTO que_jobs (queue, job_class, run_at) VALUES (%s, %s, "
        + run_at
        + ") RETURNING job_id",
        [queue, job_class],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_dead(conn: Conn, job_id: int, job_class: str, queue: str = "") -> None:
    conn.execute(
        "INSERT INTO que_dead_jobs (priority, run_at, job_id, job_class, args, error_count,"
        " queue, outcome, reason) VALUES (100, now(), %s, %s, '[]', 5, %s, 'exhausted', 'test')",
        [job_id, job_class, queue],
    )


def by_pair(stats: list[que.QueueStats]) -> dict[tuple[str, str | None], que.QueueStats]:
    return {(s.queue, s.type): s for s in stats}


async def test_queue_stats_counts_each_state(
    side: Side, qc: AnyClient, conn: Conn, db_url: str
) -> None:
    assert await r(qc.queue_stats()) == []
    enqueue(conn, "A", run_at="now() - interval '1 hour'")
    enqueue(conn, "A")
    enqueue(conn, "A", run_at="now() + interval '1 hour'")
    failed = enqueue(conn, "A")
    conn.execute("UPDATE que_jobs SET error_count = 3 WHERE job_id = %s", [failed])
    # A Ruby or Go worker's claim: a session lock on another connection. Its
    # job is older than every other but does not count as waiting.
    ruby = enqueue(conn, "A", run_at="now() - interval '2 hours'")
    add_dead(conn, 9_000_001, "A")
    add_dead(conn, 9_000_002, "Gone", "other")
    with psycopg.connect(db_url, autocommit=True) as ruby_session:
        ruby_session.execute("SELECT pg_advisory_lock(%s)", [ruby])
        stats = by_pair(await r(qc.queue_stats()))
        ruby_session.execute("SELECT pg_advisory_unlock(%s)", [ruby])
    a = stats[("", "A")]
    assert (a.ready, a.scheduled, a.locked, a.failed, a.dead) == (3, 1, 1, 1, 1)
    assert a.total == 5
    assert a.highest_error_count == 3
    assert a.oldest_due_age is not None
    assert timedelta(hours=1) <= a.oldest_due_age < timedelta(hours=1, minutes=5)
    gone = stats[("other", "Gone")]
    assert (gone.total, gone.dead, gone.oldest_due_age, gone.oldest_run_at) == (0, 1, None, None)
    totals = by_pair(que.queue_totals(list(stats.values())))
    assert totals[("", None)].ready == 3
    assert totals[("other", None)].dead == 1


async def test_a_job_worked_beside_counts_as_locked(side: Side, qc: AnyClient, conn: Conn) -> None:
    enqueue(conn, "Slow", "busy")
    enqueue(conn, "Slow", "busy")
    started, release = threading.Event(), threading.Event()

    async def slow(job: Any) -> None:
        started.set()
        await wait_event(release)

    worker = side.worker(qc, {"Slow": side.handler(slow)}, queue="busy")
    task = side.start(worker.work_one)
    try:
        assert await wait_event(started)
        busy = by_pair(await r(qc.queue_stats()))[("busy", "Slow")]
        assert (busy.ready, busy.locked) == (1, 1)
    finally:
        release.set()
        assert await task is True
    busy = by_pair(await r(qc.queue_stats()))[("busy", "Slow")]
    assert (busy.ready, busy.locked) == (1, 0)


async def test_without_the_extension_dead_is_none(side: Side, qc: AnyClient, conn: Conn) -> None:
    que.migrate_extension(conn, 0)
    enqueue(conn, "A")
    [a] = await r(qc.queue_stats())
    assert (a.ready, a.dead) == (1, None)
    [total] = que.queue_totals([a])
    assert total.dead is None
    health = await r(qc.table_health())
    assert not health.extension_installed
    assert any("default autovacuum settings" in w for w in health.warnings)


async def test_table_health_reads_the_server(side: Side, qc: AnyClient, conn: Conn) -> None:
    health = await r(qc.table_health())
    row = conn.execute("SELECT current_setting('autovacuum') = 'on'").fetchone()
    assert row is not None
    assert health.autovacuum_server is row[0]
    assert health.autovacuum_table
    assert health.extension_installed
    assert health.missing_settings == {}
    assert health.total_bytes > 0
    server_off = [w for w in health.warnings if "off on the server" in w]
    assert len(server_off) == (0 if health.autovacuum_server else 1)

    conn.execute("ALTER TABLE que_jobs SET (autovacuum_enabled = false)")
    conn.execute("ALTER TABLE que_jobs RESET (autovacuum_vacuum_threshold)")
    health = await r(qc.table_health())
    assert not health.autovacuum_table
    assert health.missing_settings == {"autovacuum_vacuum_threshold": "1000"}
    assert any("off for que_jobs" in w for w in health.warnings)
    assert any("autovacuum_vacuum_threshold = 1000" in w for w in health.warnings)


async def test_dead_rows_far_behind_warn_until_vacuum(
    side: Side, qc: AnyClient, conn: Conn
) -> None:
    # Autovacuum off for the table, so that the server's (when on) cannot
    # clean up before the warning is seen.
    conn.execute("ALTER TABLE que_jobs SET (autovacuum_enabled = false)")
    conn.execute("INSERT INTO que_jobs (job_class) SELECT 'Burst' FROM generate_series(1, 20000)")
    conn.execute("DELETE FROM que_jobs")
    conn.execute("SELECT pg_stat_force_next_flush()")

    async def dead_rows() -> int:
        return int((await r(qc.table_health())).dead_rows)

    await wait_until(lambda: _at_least(dead_rows(), 20_000), what="dead rows in the statistics")
    health = await r(qc.table_health())
    assert health.last_vacuumed is None
    assert any("20,000 dead rows" in w and "never vacuumed" in w for w in health.warnings)

    conn.execute("VACUUM que_jobs")
    conn.execute("SELECT pg_stat_force_next_flush()")
    await wait_until(lambda: _at_most(dead_rows(), 0), what="no dead rows after VACUUM")
    health = await r(qc.table_health())
    assert health.last_vacuum is not None
    assert not any("dead rows for" in w for w in health.warnings)


async def _at_least(value: Any, floor: int) -> bool:
    return bool(await value >= floor)


async def _at_most(value: Any, ceiling: int) -> bool:
    return bool(await value <= ceiling)


@pytest.mark.parametrize("extension", [True, False])
def test_queue_stats_agree_with_stats(client: que.Client, conn: Conn, extension: bool) -> None:
    if not extension:
        que.migrate_extension(conn, 0)
    enqueue(conn, "A")
    enqueue(conn, "B", "q", run_at="now() + interval '1 minute'")
    old = {(s.queue, s.type): s for s in client.stats()}
    new = by_pair(client.queue_stats())
    assert old.keys() == new.keys()
    for key, s in old.items():
        n = new[key]
        assert (s.count, s.count_working, s.count_errored) == (n.total, n.locked, n.failed)
        assert (s.highest_error_count, s.oldest_run_at) == (n.highest_error_count, n.oldest_run_at)
