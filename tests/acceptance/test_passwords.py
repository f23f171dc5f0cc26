"""No output of the command holds any part of a password, however the password is written.

Each password is made of distinctive pieces joined by the characters that
trip up URL parsing (@ : / ? %), so a test can look for every piece.
"""

from __future__ import annotations

import signal
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from .conftest import Cli, add_jobs
from .test_bad_input import assert_one_line_error

PIECES = ("Kx7q", "Vb3m", "Pz8w", "Jr5t", "Hn6y")
WORKER = ["worker", "tests.acceptance.apps:work_map"]


def assert_no_piece(*outputs: str) -> None:
    for text in outputs:
        for piece in PIECES:
            assert piece not in text, f"password piece {piece!r} shown in:\n{text}"


# Refused before any connection is tried: exit code 2.
REFUSED = [
    "postgresql://app:Kx7q@Vb3m@127.0.0.1:1/jobs",  # an unencoded @
    "postgresql://app:Kx7q/Vb3m@127.0.0.1:1/jobs",  # an unencoded /
    "postgresql://app:Kx7q?Vb3m@127.0.0.1:1/jobs",  # an unencoded ?
    "postgresql://app:Kx7q@Vb3m:Pz8w@127.0.0.1/jobs",
    "postgresql+psycopg://app:Kx7q@Vb3m@127.0.0.1:1/jobs",
    "postgres://app:Kx7q%zzVb3m@127.0.0.1:1/jobs",  # bad percent-encoding
    "postgresql://app:Kx7q%00Vb3m@127.0.0.1:1/jobs",
    "postgresql://app:Kx7q@127.0.0.1:99999/jobs",  # a port out of range
    "postgresql://app:Kx7q@[::1/jobs",
    "mysql://app:Kx7q:Vb3m@127.0.0.1/jobs",
    "host=127.0.0.1 password='Kx7q Vb3m",  # an unterminated quote
    "host=127.0.0.1 password=Kx7q Vb3m",  # an unquoted space
    "host=127.0.0.1 password=Kx7q:Vb3m@Pz8w/Jr5t bogus=1",  # an option libpq does not know
]

# Read fine, but nothing listens on port 1: exit code 1.
UNREACHABLE = [
    "postgresql://app:Kx7q%40Vb3m%3APz8w%2FJr5t%3FHn6y%25@127.0.0.1:1/jobs",
    "postgresql://app:Kx7q:Vb3m@127.0.0.1:1/jobs",  # a ':' in a password needs no encoding
    "postgresql+asyncpg://app:Kx7q%40Vb3m@127.0.0.1:1/jobs",
    "host=127.0.0.1 port=1 dbname=jobs user=app password='Kx7q@Vb3m:Pz8w/Jr5t?Hn6y'",
]


@pytest.mark.parametrize("url", REFUSED)
def test_a_refused_url_is_not_echoed(cli: Cli, url: str) -> None:
    done = cli("stats", "--database-url", url)
    assert_one_line_error(done, "--database-url")
    assert done.returncode == 2
    assert_no_piece(done.stdout, done.stderr)

    done = cli("enqueue", "Mailer", env={"DATABASE_URL": url})
    assert_one_line_error(done, "DATABASE_URL")
    assert done.returncode == 2
    assert_no_piece(done.stdout, done.stderr)


@pytest.mark.parametrize("url", UNREACHABLE)
@pytest.mark.parametrize("command", [["stats"], ["enqueue", "Mailer"], WORKER], ids=str)
def test_an_unreachable_url_is_described_without_its_password(
    cli: Cli, url: str, command: list[str]
) -> None:
    done = cli(*command, "--database-url", url, "--log-level", "DEBUG")
    assert done.returncode == 1
    assert "cannot connect to 127.0.0.1:1/jobs user=app" in done.stderr
    assert_no_piece(done.stdout, done.stderr)


def test_pgpassword_is_not_shown(cli: Cli) -> None:
    env = {"PGHOST": "127.0.0.1", "PGPORT": "1", "PGPASSWORD": "Kx7q@Vb3m:Pz8w/Jr5t?Hn6y"}
    done = cli("stats", "--log-level", "DEBUG", env=env)
    assert done.returncode == 1
    assert "cannot connect to 127.0.0.1:1" in done.stderr
    assert_no_piece(done.stdout, done.stderr)


def test_a_working_worker_logs_no_password_even_at_debug(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    parts = conninfo_to_dict(db_url)
    port = f":{parts['port']}" if parts.get("port") else ""
    host = quote(str(parts["host"]), safe="")  # a socket directory holds "/"
    # Trust authentication accepts any password.
    url = (
        "postgresql+psycopg://postgres:Kx7q%40Vb3m%3APz8w%2FJr5t%3FHn6y"
        f"@{host}{port}/{parts['dbname']}"
    )
    worker = cli.background(
        *WORKER, "--log-level", "DEBUG", "--wake-interval", "0.1", "--database-url", url
    )
    worker.wait_for_log("que worker started")
    add_jobs(db_url, "Fail", tmp_path)
    worker.wait_for_log("job Fail id=")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert_no_piece(worker.stdout(), worker.stderr())
