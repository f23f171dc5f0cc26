"""`que enqueue --unique`: one job per key, and what the command says."""

from __future__ import annotations

import psycopg

import que

from .conftest import Cli, job_count


def keys(url: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT unique_key, job_id, scope, expires_at IS NOT NULL FROM que_unique_keys "
            "ORDER BY unique_key"
        ).fetchall()


def test_enqueue_unique_prints_the_holder_and_says_so(cli: Cli, db_url: str) -> None:
    first = cli("enqueue", "Mailer", "[1]", "--unique", "--database-url", db_url)
    second = cli("enqueue", "Mailer", "[1]", "--unique", "--database-url", db_url)
    assert (first.returncode, second.returncode) == (0, 0)
    assert first.stdout == second.stdout
    assert first.stderr == ""
    job_id = int(first.stdout)
    assert f"not enqueued: job {job_id} holds the unique key" in second.stderr
    assert job_count(db_url) == 1
    [(key, held_by, scope, expires)] = keys(db_url)
    assert (str(key).startswith("Mailer:"), held_by, scope, expires) == (
        True,
        job_id,
        "active",
        False,
    )


def test_enqueue_unique_key_scope_and_period(cli: Cli, db_url: str) -> None:
    url = ("--database-url", db_url)
    a = int(cli.ok("enqueue", "A", "--unique-key", "k1", "--unique-scope", "queued", *url))
    b = int(cli.ok("enqueue", "B", "--unique-for", "3600", *url))
    assert int(cli.ok("enqueue", "Other", "--unique-key", "k1", *url)) == a
    assert keys(db_url)[-1][1:] == (a, "queued", False)
    assert keys(db_url)[0][1:] == (b, "period", True)


def test_enqueue_unique_refuses_bad_options_before_the_database(cli: Cli) -> None:
    url = ("--database-url", "postgresql://nobody@127.0.0.1:1/none")
    for args, message in (
        (["--unique-scope", "queued", "--unique-for", "5"], "do not go together"),
        (["--unique-for", "0"], "--unique-for must be a positive duration"),
        (["--unique-key", ""], "unique key must not be empty"),
    ):
        done = cli("enqueue", "T", *args, *url)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr


def test_enqueue_unique_without_the_extension_says_what_to_do(cli: Cli, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        que.migrate_extension(conn, 1)
    done = cli("enqueue", "T", "--unique", "--database-url", db_url)
    assert done.returncode == 1
    assert "unique jobs needs the que-pg extension (version 2 or later)" in done.stderr
    assert job_count(db_url) == 0
