"""Assertions shared by the integration tests."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg

import que

if TYPE_CHECKING:
    from .sides import Side


def held_locks(conn: psycopg.Connection[Any]) -> list[int]:
    """Job ids under an advisory lock in the database of ``conn`` (Que's locks
    take the id as one bigint key; a lock still waited for is not held)."""
    rows = conn.execute(
        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
        "WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


class Executions:
    """Counts executions per job id; safe from worker threads and tasks alike."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.lock = threading.Lock()

    def record(self, job: Any) -> None:
        with self.lock:
            assert job.id is not None
            self.counts[job.id] += 1

    def work_function(self, side: Side) -> Callable[[Any], Any]:
        """A native work function of the side: a plain def for the sync face (no
        event loop per job on thousands of jobs), an ``async def`` for the async one."""
        if not side.is_async:
            return self.record

        async def record(job: Any) -> None:
            self.record(job)

        return record


def refuse_deletes(conn: psycopg.Connection[Any]) -> Callable[[], int]:
    """A trigger that refuses every delete from que_jobs while refuse_deletes has
    a row; returns how many it refused so far (a sequence: no rollback undoes it)."""
    conn.execute("CREATE TABLE refuse_deletes (reason text)")
    conn.execute("INSERT INTO refuse_deletes VALUES ('test')")
    conn.execute("CREATE SEQUENCE refusals")
    conn.execute(
        "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM refuse_deletes) THEN PERFORM nextval('refusals'); "
        "RAISE EXCEPTION 'deletes refused by the test'; END IF; RETURN OLD; END $$"
    )
    conn.execute(
        "CREATE TRIGGER refuse_delete BEFORE DELETE ON que_jobs "
        "FOR EACH ROW EXECUTE FUNCTION refuse_delete()"
    )
    return lambda: sequence_used(conn, "refusals")


def sequence_used(conn: psycopg.Connection[Any], name: str) -> int:
    row = conn.execute(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM " + name
    ).fetchone()
    assert row is not None
    return int(row[0])


def _count(url: str, query: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def advisory_lock_count(url: str) -> int:
    return _count(
        url,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )


def listener_count(url: str) -> int:
    """Sessions on the database of ``url`` that LISTEN for new jobs."""
    return _count(
        url,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE query = 'LISTEN que_jobs' AND datname = current_database()",
    )


def borrowed_connections(client: que.Client | que.AsyncClient) -> tuple[int, dict[str, int]]:
    """How many of the client's pooled connections are out of the pool, and the pool's stats."""
    stats = client.connections.pool.get_stats()
    return stats.get("pool_size", 0) - stats.get("pool_available", 0), stats


def assert_clean(client: que.Client, url: str) -> None:
    """No advisory lock left in the database and every pooled connection returned."""
    assert advisory_lock_count(url) == 0, "an advisory lock was left behind"
    borrowed, stats = borrowed_connections(client)
    assert borrowed == 0, f"{borrowed} pooled connection(s) not returned: {stats}"


async def assert_clean_either(
    client: que.Client | que.AsyncClient, url: str, timeout: float = 10.0
) -> None:
    """assert_clean for a client of either side.

    A connection that was closed (its session killed, or dropped to free a
    lock) counts as out of the pool until the pool's background task has
    connected its replacement, so the pool is polled until that is done.
    """
    assert advisory_lock_count(url) == 0, "an advisory lock was left behind"
    deadline = time.monotonic() + timeout
    while True:
        borrowed, stats = borrowed_connections(client)
        if borrowed == 0:
            return
        assert time.monotonic() < deadline, f"{borrowed} pooled connection(s) not returned: {stats}"
        await asyncio.sleep(0.01)


@contextmanager
def no_unawaited_coroutine() -> Iterator[None]:
    """Fail if the block leaves a coroutine that is never awaited (checked after a gc)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
        gc.collect()
    unawaited = [w for w in caught if "never awaited" in str(w.message)]
    assert unawaited == [], [str(w.message) for w in unawaited]
