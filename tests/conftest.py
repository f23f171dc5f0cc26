"""Shared fixtures: a PostgreSQL server, a migrated template, and a fresh database per test.

The server is QUE_TEST_DATABASE_URL when set, otherwise an embedded
PostgreSQL started for the session. Every test that touches the database
gets its own database cloned from a migrated template, and after it the
fixtures assert that no advisory lock and no borrowed connection is left.
The same databases can be reached through a real PgBouncer in transaction
pooling mode (``pgbouncer``, ``bouncer_url``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import que
from que._test_databases import Dropper, database_server, fresh_database, migrated_template

from .helpers import advisory_lock_count, assert_clean, assert_clean_either
from .pgbouncer import PgBouncer, required_executable
from .sides import SIDES, AnyClient, Engines, Side

# pytester: a test of que's pytest plugin runs pytest on a sample project.
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A maintenance URL (database postgres) of the server the tests use."""
    with database_server() as url:
        yield url


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """The name of a database migrated to the current schema, cloned by each test.

    Every test runs with the extension installed: Ruby's and Go's rows, and
    everything else, must work beside it."""
    with migrated_template(server_url) as name:
        yield name


@pytest.fixture(scope="session")
def _dropper(server_url: str) -> Iterator[Dropper]:
    dropper = Dropper(server_url)
    try:
        yield dropper
    finally:
        dropper.close()


@pytest.fixture
def db_url(server_url: str, template_db: str, _dropper: Dropper) -> Iterator[str]:
    """Conninfo of a fresh database with que_jobs at the current schema version."""
    yield from fresh_database(server_url, template_db, _dropper)


@pytest.fixture
def empty_db_url(server_url: str, _dropper: Dropper) -> Iterator[str]:
    """Conninfo of a fresh database without que_jobs (schema version 0)."""
    yield from fresh_database(server_url, "template0", _dropper)


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
async def run(side: Side, qc: AnyClient) -> AsyncIterator[Engines]:
    """Starts workers of the side on ``qc`` by name (see ``Engines``), polling every
    0.05 s, and stops each after the test, before ``qc`` is checked for leaks."""
    engines = Engines(side, qc, interval=0.05)
    yield engines
    await engines.stop_all()


@pytest.fixture
async def aclient(db_url: str) -> AsyncIterator[que.AsyncClient]:
    """An opened AsyncClient on the test's database, checked for leaks before it closes."""
    async with que.AsyncClient(db_url, max_connections=12) as c:
        yield c
        await assert_clean_either(c, db_url)
