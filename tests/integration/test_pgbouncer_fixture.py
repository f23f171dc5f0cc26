"""The ``pgbouncer`` and ``bouncer_url`` fixtures reach the test's database through a real
PgBouncer that pools by transaction."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from ..helpers import advisory_lock_count
from ..pgbouncer import PgBouncer

BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""

LOCK_HOLDERS = """
SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND objid = %s
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def through(bouncer_url: str) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(bouncer_url, autocommit=True, prepare_threshold=None)


def backend_pid(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def test_bouncer_url_names_the_tests_database(
    pgbouncer: PgBouncer, bouncer_url: str, db_url: str
) -> None:
    given = conninfo_to_dict(bouncer_url)
    assert (given["host"], given["port"]) == ("127.0.0.1", str(pgbouncer.port))
    assert given["dbname"] == conninfo_to_dict(db_url)["dbname"]


def test_statements_run_through_pgbouncer(bouncer_url: str, db_url: str) -> None:
    with psycopg.connect(bouncer_url, prepare_threshold=None) as conn:
        # More executions than psycopg's default prepare_threshold (5).
        for n in range(10):
            row = conn.execute(
                "SELECT current_database(), count(*) + %s FROM que_jobs", [n]
            ).fetchone()
            assert row == (conninfo_to_dict(db_url)["dbname"], n)
        conn.commit()
    assert advisory_lock_count(db_url) == 0


async def test_async_statements_run_through_pgbouncer(bouncer_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(
        bouncer_url, autocommit=True, prepare_threshold=None
    ) as conn:
        for n in range(10):
            cursor = await conn.execute("SELECT %s::int + 1", [n])
            assert await cursor.fetchone() == (n + 1,)


def test_two_open_clients_share_one_backend(
    bouncer_url: str, conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    """Between transactions a client holds no backend: that is transaction pooling.

    Connected directly, or through a PgBouncer in session mode, two open
    connections never share a backend.
    """
    with through(bouncer_url) as first, through(bouncer_url) as second:
        pid = backend_pid(first)
        assert backend_pid(second) == pid
        assert conn.execute(BACKENDS).fetchall() == [(pid,)]


def test_a_session_lock_stays_with_the_backend_not_the_client(
    bouncer_url: str, db_url: str, conn: psycopg.Connection[tuple[Any, ...]]
) -> None:
    """A session advisory lock outlives the client that took it, so the ``db_url``
    teardown would find it; another client, given the same backend, can free it."""
    with through(bouncer_url) as taker:
        taker.execute("SELECT pg_advisory_lock(0, 42)")
        pid = backend_pid(taker)
    assert conn.execute(LOCK_HOLDERS, [42]).fetchall() == [(pid,)]

    with through(bouncer_url) as other:
        assert backend_pid(other) == pid
        assert other.execute("SELECT pg_advisory_unlock(0, 42)").fetchone() == (True,)
    assert advisory_lock_count(db_url) == 0


def test_disconnect_closes_the_server_connections_and_lets_clients_back(
    pgbouncer: PgBouncer, bouncer_url: str
) -> None:
    name = str(conninfo_to_dict(bouncer_url)["dbname"])

    def server_connections() -> list[dict[str, Any]]:
        with psycopg.connect(
            pgbouncer.url("pgbouncer"), autocommit=True, row_factory=dict_row
        ) as c:
            return [s for s in c.execute("SHOW SERVERS").fetchall() if s["database"] == name]

    with through(bouncer_url) as client:
        pid = backend_pid(client)
        assert [s["remote_pid"] for s in server_connections()] == [pid]
    pgbouncer.disconnect(name)
    assert server_connections() == []
    with through(bouncer_url) as client:
        assert backend_pid(client) != pid
