"""Shared fixtures: a PostgreSQL server, a migrated template, and a fresh database per test.

The server is QUE_TEST_DATABASE_URL when set, otherwise an embedded
PostgreSQL started for the session. Every test that touches the database
gets its own database cloned from a migrated template, and after it the
fixtures assert that no advisory lock and no borrowed connection is left.
The same databases can be reached through a real PgBouncer in transaction
pooling mode (``pgbouncer``, ``bouncer_url``).
"""

from __future__ import annotations

import os
import queue
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql as pgsql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import que
from que import embedded

from .helpers import advisory_lock_count, assert_clean, assert_clean_either
from .pgbouncer import PgBouncer, required_executable
from .sides import SIDES, AnyClient, Side

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
        # Every test runs with the extension installed: Ruby's and Go's rows,
        # and everything else, must work beside it.
        que.migrate_extension(conn)
    yield name
    with _admin(server_url) as admin:
        admin.execute(
            pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name))
        )


class _Dropper:
    """Drops used test databases on a thread of its own, so the next test need not wait.

    A DROP DATABASE mostly waits for the disk; overlapping it with the next
    test keeps the suite fast on a small machine.
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
                with _admin(self._server_url) as admin:
                    admin.execute(
                        pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            pgsql.Identifier(name)
                        )
                    )
            except psycopg.Error as exc:
                self._failures.append(f"{name}: {exc}")

    def close(self) -> None:
        self._names.put(None)
        self._thread.join()
        assert self._failures == [], f"test databases not dropped: {self._failures}"


@pytest.fixture(scope="session")
def _dropper(server_url: str) -> Iterator[_Dropper]:
    dropper = _Dropper(server_url)
    try:
        yield dropper
    finally:
        dropper.close()


def _fresh_database(server_url: str, template: str, dropper: _Dropper) -> Iterator[str]:
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
        dropper.drop(name)


@pytest.fixture
def db_url(server_url: str, template_db: str, _dropper: _Dropper) -> Iterator[str]:
    """Conninfo of a fresh database with que_jobs at the current schema version."""
    yield from _fresh_database(server_url, template_db, _dropper)


@pytest.fixture
def empty_db_url(server_url: str, _dropper: _Dropper) -> Iterator[str]:
    """Conninfo of a fresh database without que_jobs (schema version 0)."""
    yield from _fresh_database(server_url, "template0", _dropper)


@pytest.fixture(scope="session")
def pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """A PgBouncer (pool_mode = transaction) in front of the test server, for the session.

    It forwards every database name to the same database on the server.
    Skips the test when pgbouncer is not installed; fails it when $CI is set.
    """
    with PgBouncer(server_url, executable=required_executable()) as bouncer:
        yield bouncer


@pytest.fixture
def bouncer_url(pgbouncer: PgBouncer, db_url: str) -> Iterator[str]:
    """Conninfo of the test's fresh database (the one of ``db_url``) through PgBouncer.

    Connect with ``prepare_threshold=None``: PgBouncer 1.18 in transaction
    mode does not keep prepared statements. After the test, no advisory lock
    may be left (a session lock stays on the server connection PgBouncer
    keeps, not with the client that took it); then PgBouncer closes its
    connections to the database, so that they do not pile up on the server
    while used databases wait to be dropped.
    """
    name = str(conninfo_to_dict(db_url)["dbname"])
    yield pgbouncer.url(name)
    try:
        assert advisory_lock_count(db_url) == 0, f"advisory locks left in {name}"
    finally:
        pgbouncer.disconnect(name)


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


@pytest.fixture(params=SIDES)
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    """The side of the library a behaviour test runs against: sync or async."""
    with Side(request.param).active() as active:
        yield active


@pytest.fixture
async def qc(side: Side, db_url: str) -> AsyncIterator[AnyClient]:
    """The side's client (Client, or an opened AsyncClient) on the test's database,
    checked for leaks before it closes."""
    async with side.client(db_url, max_connections=12) as c:
        yield c
        await assert_clean_either(c, db_url)


@pytest.fixture
async def aclient(db_url: str) -> AsyncIterator[que.AsyncClient]:
    """An opened AsyncClient on the test's database, checked for leaks before it closes."""
    async with que.AsyncClient(db_url, max_connections=12) as c:
        yield c
        await assert_clean_either(c, db_url)
