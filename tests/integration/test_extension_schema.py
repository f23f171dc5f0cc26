"""The que-pg extension: versioned, with its own down migration, and que_jobs
left exactly the Que v3 table beside it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import que

from .test_schema import shape


@pytest.fixture
def empty(empty_db_url: str) -> Any:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        yield conn


def reloptions(conn: psycopg.Connection[Any]) -> list[str]:
    row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'que_jobs'").fetchone()
    assert row is not None
    return list(row[0] or [])


def tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    ).fetchall()
    return {row[0] for row in rows}


def indexes(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'que_jobs'").fetchall()
    return {row[0] for row in rows}


def test_up_and_down_leave_que_jobs_as_it_was(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty)
    before = shape(empty)
    assert que.extension_version(empty) == 0
    assert que.migrate_extension(empty) == 0
    assert que.extension_version(empty) == que.EXTENSION_VERSION == 2
    assert tables(empty) == {
        "que_jobs",
        "que_dead_jobs",
        "que_cancel_requests",
        "que_unique_keys",
        "que_paused_queues",
        "que_schedules",
    }
    assert "que_jobs_job_id" in indexes(empty)
    assert "autovacuum_vacuum_scale_factor=0" in reloptions(empty)
    assert shape(empty) == before  # columns, key and version comment untouched
    assert que.migrate_extension(empty) == 2  # a no-op
    assert que.migrate_extension(empty, 1) == 2
    assert tables(empty) == {"que_jobs", "que_dead_jobs", "que_cancel_requests"}
    assert "que_jobs_job_id" not in indexes(empty)
    assert shape(empty) == before
    assert que.migrate_extension(empty, 0) == 1
    assert que.extension_version(empty) == 0
    assert tables(empty) == {"que_jobs"}
    assert reloptions(empty) == []
    assert shape(empty) == before


def test_the_extension_needs_que_jobs_at_version_3(empty: psycopg.Connection[Any]) -> None:
    with pytest.raises(que.SchemaVersionError, match="que migrate"):
        que.migrate_extension(empty)
    que.migrate(empty, 2)
    with pytest.raises(que.SchemaVersionError):
        que.migrate_extension(empty)


def test_migrating_que_jobs_down_removes_the_extension(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty)
    que.migrate_extension(empty)
    que.migrate(empty, 2)
    assert tables(empty) == {"que_jobs"}
    que.migrate(empty)
    assert que.extension_version(empty) == 0


def test_the_script_matches_the_migration(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty)
    empty.execute(que.extension_sql())
    assert que.extension_version(empty) == 2
    empty.execute(que.extension_sql(0, 2))
    assert que.extension_version(empty) == 0
    assert tables(empty) == {"que_jobs"}


def test_a_later_extension_is_refused(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty)
    que.migrate_extension(empty)
    empty.execute("COMMENT ON TABLE que_dead_jobs IS '7'")
    with pytest.raises(que.SchemaVersionError, match="upgrade que-pg"):
        que.migrate_extension(empty)
    with pytest.raises(que.SchemaVersionError, match="versions 0 to 2"):
        que.migrate_extension(empty, 5)


async def test_the_async_face_migrates_the_extension(empty_db_url: str) -> None:
    async with await psycopg.AsyncConnection.connect(empty_db_url, autocommit=True) as conn:
        await que.migrate_async(conn)
        assert await que.migrate_extension_async(conn) == 0
        assert await que.extension_version_async(conn) == 2
