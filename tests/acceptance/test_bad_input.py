"""Every kind of bad input is one line on stderr, a non-zero exit code, and no change."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from que.schema import notify_installed

from .conftest import Cli, job_count

UNREACHABLE = "postgresql://postgres:hunter2@127.0.0.1:1/nowhere"
WORKER = ["worker", "tests.acceptance.apps:work_map"]


def assert_one_line_error(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert done.returncode not in (0, None), done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{done.stderr}"
    line = lines[0]
    assert line.startswith("que: error: ")
    assert "Traceback" not in done.stderr
    for text in expected:
        assert text in line, f"{text!r} not in {line!r}"
    return line


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["frobnicate"], 2, ["invalid choice: 'frobnicate'"]),
        (["worker"], 2, ["APP"]),
        (
            ["worker", "no_such_module_xyz:work_map"],
            2,
            ["cannot import module 'no_such_module_xyz'"],
        ),
        (
            ["worker", "tests.acceptance.broken_app:work_map"],
            1,
            [
                "importing module 'tests.acceptance.broken_app' failed",
                "RuntimeError: boom while importing",
                "tests/acceptance/broken_app.py:3",
            ],
        ),
        (["worker", "tests.acceptance.apps:nope"], 2, ["has no attribute 'nope'"]),
        (["worker", "tests.acceptance.apps:not_a_work_map"], 2, ["is a int, not a work map"]),
        (
            ["worker", "tests.acceptance.apps:not_callable_values"],
            2,
            ["not a valid work map", "'Gate' is not callable"],
        ),
        (["worker", "tests.acceptance.apps"], 2, ["registers no jobs"]),
        (
            ["worker", "tests.acceptance.apps:work_map", "--concurrency", "0"],
            2,
            ["--concurrency must be at least 1"],
        ),
        (
            ["worker", "tests.acceptance.apps:work_map", "--concurrency", "many"],
            2,
            ["invalid int value: 'many'"],
        ),
        (
            ["worker", "tests.acceptance.apps:work_map", "--job-timeout", "soon"],
            2,
            ["--job-timeout takes SECONDS or TYPE=SECONDS, not 'soon'"],
        ),
        (
            ["worker", "tests.acceptance.apps:work_map", "--job-timeout", "Gate=-1"],
            2,
            ["timeout for 'Gate' must be a positive number of seconds"],
        ),
        (
            [*WORKER, "--listen-url", "postgresql://u:hunter2@127.0.0.1/db"],
            2,
            ["--listen-url is for --pgbouncer"],
        ),
        (
            [*WORKER, "--pgbouncer", "--listen-url", "http://u:hunter2@example.com/db"],
            2,
            ["--listen-url: unsupported database URL scheme 'http'"],
        ),
        (
            [*WORKER, "--max-attempts", "twice"],
            2,
            ["--max-attempts takes N or TYPE=N (or TYPE=none), not 'twice'"],
        ),
        (
            [*WORKER, "--max-attempts", "Gate=0"],
            2,
            ["max_attempts for 'Gate' must be a positive int or None, not 0"],
        ),
        ([*WORKER, "--buffer", "-1"], 2, ["--buffer must be 0 or more, not -1"]),
        (
            [*WORKER, "--buffer", "4", "--engine", "classic"],
            2,
            ["--buffer is for the batch engine"],
        ),
        (
            [*WORKER, "--dead-retention", "forever"],
            2,
            ["--dead-retention takes a duration such as 90s"],
        ),
        (["schema", "--version", "7"], 2, ["--version must be 0 to 3"]),
        (["migrate", "--version", "9"], 2, ["--version must be 0 to 3"]),
        (
            ["stats", "--database-url", "http://example.com/db"],
            2,
            ["--database-url: unsupported database URL scheme 'http'", "postgresql://"],
        ),
        (
            ["stats", "--database-url", "just-some-words"],
            2,
            ['--database-url: invalid connection string: a word without "="'],
        ),
    ],
)
def test_bad_arguments(cli: Cli, args: list[str], code: int, expected: list[str]) -> None:
    done = cli(*args)
    line = assert_one_line_error(done, *expected)
    assert done.returncode == code
    assert "hunter2" not in line


def test_a_listen_url_variable_without_pgbouncer(cli: Cli, db_url: str) -> None:
    done = cli(*WORKER, "--database-url", db_url, env={"QUE_LISTEN_URL": db_url})
    assert_one_line_error(done, "QUE_LISTEN_URL is for --pgbouncer")
    assert done.returncode == 2


def test_a_bad_url_does_not_show_its_password(cli: Cli) -> None:
    done = cli("stats", "--database-url", "postgresql://me:hunter2@[::1/db")
    assert_one_line_error(done, "--database-url: invalid connection string", "IPv6")
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize(
    "command",
    [["stats"], ["migrate"], ["enqueue", "Mailer"], WORKER],
)
def test_an_unreachable_database(cli: Cli, command: list[str]) -> None:
    done = cli(*command, "--database-url", UNREACHABLE)
    assert_one_line_error(done, "cannot connect to 127.0.0.1:1/nowhere")
    assert done.returncode == 1
    assert "hunter2" not in done.stderr


def test_an_unreachable_database_from_the_environment(cli: Cli) -> None:
    done = cli("stats", env={"DATABASE_URL": UNREACHABLE})
    assert_one_line_error(done, "cannot connect")


def test_a_database_without_the_table(cli: Cli, empty_db_url: str) -> None:
    for command in (["enqueue", "Mailer"], ["stats"], WORKER):
        done = cli(*command, "--database-url", empty_db_url)
        assert_one_line_error(done, "que_jobs does not exist", "que migrate")


def test_a_schema_of_a_later_que(cli: Cli, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("COMMENT ON TABLE que_jobs IS '4'")
    for command in (["enqueue", "Mailer"], ["migrate"], WORKER):
        done = cli(*command, "--database-url", db_url)
        assert_one_line_error(done, "schema version 4", "Ruby que 1.x")
    assert job_count(db_url) == 0


@pytest.mark.parametrize("flag", ["--notify", "--no-notify"])
def test_notify_with_a_lower_version_is_refused_before_migrating(
    cli: Cli, db_url: str, flag: str
) -> None:
    # Migrating down drops the trigger: had the table been touched, it would be gone.
    cli.ok("migrate", "--notify", "--database-url", db_url)
    done = cli("migrate", "--version", "2", flag, "--yes", "--database-url", db_url)
    assert done.returncode == 2
    assert int(cli.ok("version", "--database-url", db_url)) == 3
    with psycopg.connect(db_url) as conn:
        assert notify_installed(conn)
    assert_one_line_error(done, f"{flag} needs --version 3, not 2", "nothing was changed")


BAD_JOBS = [
    (["Mailer", "[1, 2"], ["ARGS_JSON is not valid JSON", "'[1, 2'"]),
    (["Mailer", "[NaN]"], ["ARGS_JSON is not valid JSON"]),
    (["Mailer", "--priority", "40000"], ["priority"]),
    (["Mailer", "--run-at", "next tuesday"], ["--run-at must be an ISO 8601 time"]),
    (["Mailer", "--in", "-5"], ["--in must be a non-negative number"]),
    (["Mailer", "--in", "5", "--run-at", "2030-01-01T00:00:00Z"], ["not allowed with"]),
    (["", "[]"], ["job type must be specified"]),
]


def test_bad_jobs_are_not_enqueued(cli: Cli, db_url: str) -> None:
    for args, expected in BAD_JOBS:
        done = cli("enqueue", *args, "--database-url", db_url)
        assert_one_line_error(done, *expected)
        assert done.returncode == 2
    assert job_count(db_url) == 0


def test_a_bad_wake_interval_variable(cli: Cli, db_url: str) -> None:
    done = cli(
        "worker",
        "tests.acceptance.apps:work_map",
        "--database-url",
        db_url,
        env={"QUE_WAKE_INTERVAL": "soon"},
    )
    assert_one_line_error(done, "QUE_WAKE_INTERVAL must be a number of seconds, not 'soon'")


def test_embedded_and_a_url_together(cli: Cli, db_url: str) -> None:
    done = cli("stats", "--embedded", "--database-url", db_url)
    assert_one_line_error(done, "--database-url and --embedded")
