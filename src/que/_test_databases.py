"""Test databases: a server (QUE_TEST_DATABASE_URL, else an embedded
PostgreSQL), a template migrated with the que-pg extension, and a fresh
database cloned from it for each test. Used by que's own test suite and by
the pytest plugin (``que.pytest_fixtures``)."""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.conninfo import make_conninfo

from . import embedded
from .schema import migrate, migrate_extension

ADVISORY_LOCKS = """
SELECT count(*) FROM pg_locks
WHERE locktype = 'advisory'
  AND database = (SELECT oid FROM pg_database WHERE datname = %s)
"""


def admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


@contextmanager
def database_server() -> Iterator[str]:
    """A maintenance URL of the server to test on: QUE_TEST_DATABASE_URL, or
    an embedded PostgreSQL in a temporary folder for the block's duration."""
    given = os.environ.get("QUE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="que-test-pg-") as tmp:
        server = embedded.start_temporary(Path(tmp) / "data")
        try:
            yield embedded.url(server)
        finally:
            server.cleanup()


def drop_database(server_url: str, name: str) -> None:
    with admin(server_url) as conn:
        conn.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
        )


@contextmanager
def migrated_template(server_url: str) -> Iterator[str]:
    """The name of a database at the current schema with the que-pg extension,
    dropped after the block."""
    name = f"que_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin(server_url) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        with psycopg.connect(make_conninfo(server_url, dbname=name), autocommit=True) as conn:
            migrate(conn)
            migrate_extension(conn)
        yield name
    finally:
        drop_database(server_url, name)


class Dropper:
    """Drops used test databases on a thread of its own, so the next test need not wait.

    A DROP DATABASE mostly waits for the disk; overlapping it with the next
    test keeps a suite fast on a small machine.
    """

    def __init__(self, server_url: str) -> None:
        self._server_url = server_url
        self._names: queue.Queue[str | None] = queue.Queue()
        self._failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="drop-test-databases")
        self._thread.start()

    def drop(self, name: str) -> None:
        self._names.put(name)

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                drop_database(self._server_url, name)
            except psycopg.Error as exc:
                self._failures.append(f"{name}: {exc}")

    def close(self) -> None:
        self._names.put(None)
        self._thread.join()
        assert self._failures == [], f"test databases not dropped: {self._failures}"


def fresh_database(server_url: str, template: str, dropper: Dropper) -> Iterator[str]:
    """Conninfo of a new database cloned from ``template``; after the test,
    asserts that no advisory lock is left in it, then has it dropped."""
    name = f"que_t_{uuid.uuid4().hex[:12]}"
    with admin(server_url) as conn:
        conn.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pgsql.Identifier(name), pgsql.Identifier(template)
            )
        )
    try:
        yield make_conninfo(server_url, dbname=name)
        with admin(server_url) as conn:
            left = conn.execute(ADVISORY_LOCKS, [name]).fetchone()
            assert left == (0,), f"advisory locks left in {name}: {left}"
    finally:
        dropper.drop(name)
