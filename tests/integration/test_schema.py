from typing import Any

import psycopg
import pytest

import que
from que import sql
from que.schema import migration_statements, notify_installed

from ..sides import Side, r

# DESIGN.md section 1, in column order.
EXPECTED_COLUMNS = [
    ("priority", "smallint", "NO", "100"),
    ("run_at", "timestamp with time zone", "NO", "now()"),
    ("job_id", "bigint", "NO", "nextval('que_jobs_job_id_seq'::regclass)"),
    ("job_class", "text", "NO", None),
    ("args", "json", "NO", "'[]'::json"),
    ("error_count", "integer", "NO", "0"),
    ("last_error", "text", "YES", None),
    ("queue", "text", "NO", "''::text"),
]
EXPECTED_KEY = ["queue", "priority", "run_at", "job_id"]


def shape(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    columns = conn.execute(
        "SELECT column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_name = 'que_jobs' ORDER BY ordinal_position"
    ).fetchall()
    key = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE c.relname = 'que_jobs_pkey' AND i.indisprimary ORDER BY k.n"
    ).fetchall()
    comment = conn.execute(sql.TABLE_COMMENT).fetchone()
    return {
        "columns": [tuple(c) for c in columns],
        "key": [k[0] for k in key],
        "comment": comment[0] if comment else None,
    }


@pytest.fixture
def empty(empty_db_url: str) -> Any:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        yield conn


def test_fresh_database_is_version_0(empty: psycopg.Connection[Any]) -> None:
    assert que.current_version(empty) == 0


def test_migrate_0_to_3_gives_the_design_table(empty: psycopg.Connection[Any]) -> None:
    assert que.migrate(empty) == 0
    assert que.current_version(empty) == 3
    assert shape(empty) == {"columns": EXPECTED_COLUMNS, "key": EXPECTED_KEY, "comment": "3"}


def test_stepwise_migration_matches_direct(empty: psycopg.Connection[Any]) -> None:
    for version in (1, 2, 3):
        que.migrate(empty, version)
        assert que.current_version(empty) == version
    assert shape(empty) == {"columns": EXPECTED_COLUMNS, "key": EXPECTED_KEY, "comment": "3"}


def test_ruby_v1_table_without_comment_is_version_1_and_migrates(
    empty: psycopg.Connection[Any],
) -> None:
    empty.execute(sql.MIGRATIONS_UP[1])  # as Ruby que's first release left it: no comment
    empty.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Old::Job', '[7]')")
    assert que.current_version(empty) == 1
    assert que.migrate(empty) == 1
    assert shape(empty)["columns"] == EXPECTED_COLUMNS
    row = empty.execute("SELECT queue, priority, job_class, args FROM que_jobs").fetchone()
    assert row == ("", 1, "Old::Job", [7])


def test_down_to_0_and_back(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty)
    assert que.migrate(empty, 2) == 3
    assert que.current_version(empty) == 2
    cols = shape(empty)["columns"]
    assert [c[0] for c in cols] == [c[0] for c in EXPECTED_COLUMNS[:7]]
    assert cols[0] == ("priority", "integer", "NO", "100")
    assert que.migrate(empty, 1) == 2
    assert shape(empty)["columns"][0] == ("priority", "integer", "NO", "1")
    assert que.migrate(empty, 0) == 1
    assert que.current_version(empty) == 0
    que.migrate(empty)
    assert shape(empty) == {"columns": EXPECTED_COLUMNS, "key": EXPECTED_KEY, "comment": "3"}


def test_migrating_to_the_current_version_is_a_no_op(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty)
    assert que.migrate(empty) == 3
    assert que.current_version(empty) == 3


@pytest.mark.parametrize("version", ["4", "5"])
def test_newer_ruby_schema_is_refused_naming_the_version(
    empty: psycopg.Connection[Any], version: str
) -> None:
    que.migrate(empty)
    empty.execute(f"COMMENT ON TABLE que_jobs IS '{version}'")
    with pytest.raises(que.SchemaVersionError, match=f"version {version}"):
        que.migrate(empty)
    with pytest.raises(que.SchemaVersionError, match=f"version {version}"):
        que.Client(empty.info.dsn)


def test_failed_migration_changes_nothing(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty, 2)
    empty.execute("ALTER TABLE que_jobs ADD COLUMN queue text")  # a clash for step 3
    with pytest.raises(psycopg.errors.DuplicateColumn):
        que.migrate(empty)
    assert que.current_version(empty) == 2


def test_comment_that_is_not_a_version(empty: psycopg.Connection[Any]) -> None:
    empty.execute("CREATE TABLE que_jobs (x int)")
    empty.execute("COMMENT ON TABLE que_jobs IS 'my jobs'")
    with pytest.raises(que.SchemaVersionError, match="'my jobs'"):
        que.current_version(empty)


def test_bad_target_version(empty: psycopg.Connection[Any]) -> None:
    with pytest.raises(que.SchemaVersionError, match="cannot migrate to version 7"):
        que.migrate(empty, 7)


def test_client_refuses_a_missing_table(empty_db_url: str) -> None:
    with pytest.raises(que.SchemaVersionError, match="does not exist"):
        que.Client(empty_db_url)


def test_schema_sql_script_builds_the_same_table(empty: psycopg.Connection[Any]) -> None:
    script = que.schema_sql()
    assert script.startswith("BEGIN;") and script.rstrip().endswith("COMMIT;")
    empty.execute(script)
    assert shape(empty) == {"columns": EXPECTED_COLUMNS, "key": EXPECTED_KEY, "comment": "3"}


def test_up_and_down_steps_pair_up() -> None:
    assert migration_statements(0, 3) == [sql.MIGRATIONS_UP[v] for v in (1, 2, 3)]
    assert migration_statements(3, 1) == [sql.MIGRATIONS_DOWN[3], sql.MIGRATIONS_DOWN[2]]
    assert migration_statements(2, 2) == []


_SCHEMA_CALLS = {
    "sync": {
        "migrate": que.migrate,
        "current_version": que.current_version,
        "install_notify": que.install_notify,
        "uninstall_notify": que.uninstall_notify,
        "prepare_statements": que.prepare_statements,
    },
    "async": {
        "migrate": que.migrate_async,
        "current_version": que.current_version_async,
        "install_notify": que.install_notify_async,
        "uninstall_notify": que.uninstall_notify_async,
        "prepare_statements": que.prepare_statements_async,
    },
}


async def test_both_faces_migrate_and_manage_the_trigger_on_their_own_connection(
    side: Side, empty_db_url: str
) -> None:
    """An asyncio application migrates with its own AsyncConnection, as a sync one does."""
    calls = _SCHEMA_CALLS[side.name]
    async with side.connection(empty_db_url) as own:
        await r(own.set_autocommit(True))
        assert await r(calls["current_version"](own)) == 0
        assert await r(calls["migrate"](own)) == 0
        assert await r(calls["current_version"](own)) == que.CURRENT_VERSION
        await r(calls["install_notify"](own))
        with psycopg.connect(empty_db_url, autocommit=True) as check:
            assert notify_installed(check)
            assert shape(check)["columns"] == EXPECTED_COLUMNS
        await r(calls["uninstall_notify"](own))
        await r(calls["prepare_statements"](own))
        assert own.prepare_threshold == 0
        assert await r(calls["migrate"](own, 0)) == que.CURRENT_VERSION
        assert await r(calls["current_version"](own)) == 0
        with psycopg.connect(empty_db_url, autocommit=True) as check:
            assert not notify_installed(check)
