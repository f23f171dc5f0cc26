"""Shared fixtures: a PostgreSQL server, a migrated template, and a fresh database per test.

The server is QUE_TEST_DATABASE_URL when set, otherwise an embedded
PostgreSQL started for the session. Every test that touches the database
gets its own database cloned from a migrated template, and after it the
fixtures assert that no advisory lock and no borrowed connection is left.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

import que
from que import embedded

from .helpers import assert_clean

ADVISORY_LOCKS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory'
  AND database = (SELECT oid FROM pg_database WHERE datname = %s)
"""


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A maintenance URL (database postgres) of the server the tests use."""
    given = os.environ.get("QUE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="que-test-pg-") as tmp:
        server = embedded.start_temporary(Path(tmp) / "data")
        yield embedded.url(server)
        server.cleanup()


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """The name of a database migrated to the current schema, cloned by each test."""
    name = f"que_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with _admin(server_url) as admin:
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    with psycopg.connect(make_conninfo(server_url, dbname=name), autocommit=True) as conn:
        que.migrate(conn)
    yield name
    with _admin(server_url) as admin:
        admin.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
        )


def _fresh_database(server_url: str, template: str) -> Iterator[str]:
    name = f"que_t_{uuid.uuid4().hex[:12]}"
    with _admin(server_url) as admin:
        admin.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pgsql.Identifier(name), pgsql.Identifier(template)
            )
        )
    try:
        yield make_conninfo(server_url, dbname=name)
        with _admin(server_url) as admin:
            left = admin.execute(ADVISORY_LOCKS, [name]).fetchone()
            assert left == (0,), f"advisory locks left in {name}: {left}"
    finally:
        with _admin(server_url) as admin:
            admin.execute(
                pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
            )


@pytest.fixture
def db_url(server_url: str, template_db: str) -> Iterator[str]:
    """Conninfo of a fresh database with que_jobs at the current schema version."""
    yield from _fresh_database(server_url, template_db)


@pytest.fixture
def empty_db_url(server_url: str) -> Iterator[str]:
    """Conninfo of a fresh database without que_jobs (schema version 0)."""
    yield from _fresh_database(server_url, "template0")


@pytest.fixture
def client(db_url: str) -> Iterator[que.Client]:
    """A Client on the test's database, checked for leaks before it closes."""
    with que.Client(db_url, max_connections=12) as c:
        yield c
        assert_clean(c, db_url)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A plain autocommit connection to the test's database, for checks."""
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c
