"""`que migrate`, `schema`, `version`, `enqueue` and the choice of database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import psycopg
from psycopg.conninfo import conninfo_to_dict

import que
from que.schema import notify_installed

from .conftest import Cli, job_count


def rows(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT queue, priority, run_at, job_class, args::text FROM que_jobs ORDER BY job_id"
        ).fetchall()


def version(cli: Cli, url: str) -> int:
    return int(cli.ok("version", "--database-url", url))


def test_help_lists_the_commands_and_environment_variables(cli: Cli) -> None:
    for args in (["--help"], ["worker", "--help"]):
        text = cli.ok(*args)
        for name in (
            "QUE_DATABASE_URL",
            "DATABASE_URL",
            "PGHOST",
            "QUE_QUEUE",
            "QUE_WAKE_INTERVAL",
            "QUE_EMBEDDED_DIR",
        ):
            assert name in text, f"{name} missing from que {' '.join(args)}"
    top = cli.ok("--help")
    for command in (
        "migrate",
        "schema",
        "version",
        "worker",
        "enqueue",
        "stats",
        "demo",
        "embedded",
    ):
        assert command in top
    assert cli.ok("--version").startswith("que ")


def test_no_command_prints_help_and_fails(cli: Cli) -> None:
    done = cli()
    assert done.returncode == 2
    assert "usage: que" in done.stderr


def test_migrate_up_down_and_version(cli: Cli, empty_db_url: str) -> None:
    url = empty_db_url
    assert version(cli, url) == 0
    assert "version 0 to 2" in cli.ok("migrate", "--version", "2", "--database-url", url)
    assert version(cli, url) == 2
    assert "version 2 to 3" in cli.ok("migrate", "--database-url", url)
    assert "already at schema version 3" in cli.ok("migrate", "--database-url", url)

    refused = cli("migrate", "--version", "0", "--database-url", url)
    assert refused.returncode == 2
    assert "add --yes" in refused.stderr
    assert version(cli, url) == 3
    assert "version 3 to 0" in cli.ok("migrate", "--version", "0", "--yes", "--database-url", url)
    assert version(cli, url) == 0


def test_migrate_notify_adds_and_removes_the_wake_up_trigger(cli: Cli, db_url: str) -> None:
    def installed() -> bool:
        with psycopg.connect(db_url) as conn:
            return notify_installed(conn)

    assert not installed()
    assert "trigger que_jobs_notify is installed" in cli.ok(
        "migrate", "--notify", "--database-url", db_url
    )
    assert installed()
    assert version(cli, db_url) == 3
    assert "is removed" in cli.ok("migrate", "--no-notify", "--database-url", db_url)
    assert not installed()
    both = cli("migrate", "--notify", "--no-notify", "--database-url", db_url)
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_version_explains_a_table_that_needs_migrating(cli: Cli, empty_db_url: str) -> None:
    done = cli("version", "--database-url", empty_db_url)
    assert done.returncode == 0 and done.stdout.strip() == "0"
    assert "que migrate" in done.stderr


def test_schema_prints_sql_that_creates_the_table(cli: Cli, empty_db_url: str) -> None:
    script = cli.ok("schema")
    assert script.startswith("BEGIN;") and "CREATE TABLE" in script
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(script.encode())
        conn.execute(cli.ok("schema", "--extension").encode())
        assert que.extension_version(conn) == que.EXTENSION_VERSION
        conn.execute(que.extension_sql(0, que.EXTENSION_VERSION).encode())
    assert version(cli, empty_db_url) == 3
    down = cli.ok("schema", "--from", "3", "--version", "0")
    assert "DROP TABLE" in down
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        conn.execute(down.encode())
    assert version(cli, empty_db_url) == 0


def test_enqueue_prints_the_id_and_stores_every_option(cli: Cli, db_url: str) -> None:
    before = datetime.now(timezone.utc)
    first = int(cli.ok("enqueue", "Mailer", "--database-url", db_url))
    second = int(
        cli.ok(
            "enqueue",
            "Billing::Refund",
            '[42, {"cents": 500}]',
            "--queue",
            "money",
            "--priority",
            "0",
            "--in",
            "3600",
            "--database-url",
            db_url,
        )
    )
    third = int(
        cli.ok(
            "enqueue",
            "Report",
            '["x"]',
            "--run-at",
            "2031-02-03T04:05:06Z",
            "--priority",
            "-5",
            "--database-url",
            db_url,
        )
    )
    assert first < second < third
    (q1, p1, t1, c1, a1), (q2, p2, t2, c2, a2), (q3, p3, t3, c3, a3) = rows(db_url)
    assert (q1, p1, c1, json.loads(str(a1))) == ("", 100, "Mailer", [])
    assert isinstance(t1, datetime) and before - timedelta(minutes=1) < t1 < before + timedelta(
        minutes=1
    )
    assert (q2, p2, c2, json.loads(str(a2))) == (
        "money",
        0,
        "Billing::Refund",
        [42, {"cents": 500}],
    )
    assert isinstance(t2, datetime) and timedelta(minutes=59) < t2 - before < timedelta(minutes=61)
    assert (q3, p3, c3, json.loads(str(a3))) == ("", -5, "Report", ["x"])
    assert t3 == datetime(2031, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


def test_enqueue_uses_que_queue_when_no_queue_is_given(cli: Cli, db_url: str) -> None:
    cli.ok("enqueue", "Mailer", "--database-url", db_url, env={"QUE_QUEUE": "mail"})
    cli.ok("enqueue", "Mailer", "--queue", "", "--database-url", db_url, env={"QUE_QUEUE": "x"})
    assert [r[0] for r in rows(db_url)] == ["mail", ""]


def test_database_from_environment_variables_in_order(
    cli: Cli, db_url: str, empty_db_url: str
) -> None:
    # db_url is at version 3 and empty_db_url at 0: `que version` tells which was used.
    assert (
        int(cli.ok("version", env={"QUE_DATABASE_URL": db_url, "DATABASE_URL": empty_db_url})) == 3
    )
    assert int(cli.ok("version", env={"DATABASE_URL": db_url})) == 3
    assert (
        int(cli.ok("version", "--database-url", empty_db_url, env={"QUE_DATABASE_URL": db_url}))
        == 0
    )
    parts = conninfo_to_dict(db_url)
    libpq = {
        "PGHOST": str(parts["host"]),
        "PGDATABASE": str(parts["dbname"]),
        "PGUSER": str(parts.get("user", "postgres")),
    }
    if parts.get("port"):
        libpq["PGPORT"] = str(parts["port"])
    assert int(cli.ok("version", env=libpq)) == 3
    # A URL variable wins over PG* variables.
    assert int(cli.ok("version", env={**libpq, "DATABASE_URL": empty_db_url})) == 0
    assert job_count(db_url) == 0


def test_database_url_may_come_before_the_command(cli: Cli, db_url: str) -> None:
    assert int(cli.ok("--database-url", db_url, "version")) == 3


def test_migrate_installs_the_extension_and_says_so(cli: Cli, empty_db_url: str) -> None:
    url = empty_db_url
    out = cli.ok("migrate", "--database-url", url)
    assert "installed the que-pg extension version 1: que_dead_jobs" in out
    assert "installed the que-pg extension version 2: que_unique_keys" in out
    assert "already at version 2" in cli.ok("migrate", "--database-url", url)
    refused = cli("migrate", "--no-extension", "--database-url", url)
    assert refused.returncode == 2 and "drops que_dead_jobs" in refused.stderr
    assert "removed the que-pg extension" in cli.ok(
        "migrate", "--no-extension", "--yes", "--database-url", url
    )
    with psycopg.connect(url) as conn:
        assert que.extension_version(conn) == 0
    out = cli.ok("migrate", "--no-extension", "--database-url", url)
    assert "extension" not in out
