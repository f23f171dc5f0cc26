"""Every URL form the library reads works from every setting of the command."""

from __future__ import annotations

import signal
from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

from .conftest import Cli, job_count


def url_of(conninfo: str, scheme: str) -> str:
    """The test database as a URL of ``scheme`` (trust auth: no password needed)."""
    parts = conninfo_to_dict(conninfo)
    port = f":{parts['port']}" if parts.get("port") else ""
    user = parts.get("user", "postgres")
    host = quote(str(parts["host"]), safe="")  # a socket directory holds "/"
    return f"{scheme}://{user}@{host}{port}/{parts['dbname']}"


SCHEMES = [
    "postgresql",
    "postgres",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+pg8000",
    "POSTGRESQL+PSYCOPG",
]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_url_scheme_the_library_reads_works_from_every_setting(
    cli: Cli, db_url: str, scheme: str
) -> None:
    url = url_of(db_url, scheme)
    assert cli.ok("version", "--database-url", url).strip() == "3"
    assert cli.ok("enqueue", "Hello", env={"QUE_DATABASE_URL": url}).strip().isdigit()
    assert "Hello" in cli.ok("stats", env={"DATABASE_URL": url})
    assert job_count(db_url) == 1


def test_the_worker_connects_with_a_sqlalchemy_url(cli: Cli, db_url: str) -> None:
    url = url_of(db_url, "postgresql+psycopg")
    worker = cli.background(
        "worker", "tests.acceptance.apps:work_map", "--wake-interval", "0.1", "--database-url", url
    )
    worker.wait_for_log("que worker started")
    worker.signal(signal.SIGINT)
    assert worker.wait() == 0
    assert "Traceback" not in worker.stderr()
