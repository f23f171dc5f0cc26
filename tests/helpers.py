"""Assertions shared by the integration tests."""

from __future__ import annotations

import psycopg

import que


def advisory_lock_count(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    assert row is not None
    return int(row[0])


def assert_clean(client: que.Client, url: str) -> None:
    """No advisory lock left in the database and every pooled connection returned."""
    assert advisory_lock_count(url) == 0, "an advisory lock was left behind"
    stats = client._pool.get_stats()
    borrowed = stats.get("pool_size", 0) - stats.get("pool_available", 0)
    assert borrowed == 0, f"{borrowed} pooled connection(s) not returned: {stats}"
