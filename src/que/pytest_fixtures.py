"""que's pytest fixtures (opt in: ``que_fixtures = true``, or ``-p que.pytest_fixtures``).

Each test that asks for a database gets its own, cloned from a template
migrated with the que-pg extension, on QUE_TEST_DATABASE_URL's server or
else an embedded PostgreSQL started once for the session; after the test no
advisory lock may be left in it. Every name starts with ``que_``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ._registry import registry
from ._test_databases import Dropper, database_server, fresh_database, migrated_template
from .async_client import AsyncClient
from .async_drain import drain_async
from .client import Client
from .drain import drain
from .testing import InlineQueue

# pytest-asyncio, in its default strict mode, runs only the async fixtures
# declared with its own decorator; without it, whatever async runner the
# project has must handle a plain one.
if TYPE_CHECKING:
    async_fixture = pytest.fixture
else:
    try:
        from pytest_asyncio import fixture as async_fixture
    except ImportError:  # another async runner (anyio, ...) handles a plain one
        async_fixture = pytest.fixture


@pytest.fixture(scope="session")
def que_server_url() -> Iterator[str]:
    """A maintenance URL of the test server: QUE_TEST_DATABASE_URL, else an
    embedded PostgreSQL (needs the ``que-pg[embedded]`` extra)."""
    with database_server() as url:
        yield url


@pytest.fixture(scope="session")
def que_template(que_server_url: str) -> Iterator[str]:
    """The name of the migrated template each test's database is cloned from."""
    with migrated_template(que_server_url) as name:
        yield name


@pytest.fixture(scope="session")
def que_dropper(que_server_url: str) -> Iterator[Dropper]:
    dropper = Dropper(que_server_url)
    try:
        yield dropper
    finally:
        dropper.close()


@pytest.fixture
def que_db_url(que_server_url: str, que_template: str, que_dropper: Dropper) -> Iterator[str]:
    """Conninfo of this test's own migrated database."""
    yield from fresh_database(que_server_url, que_template, que_dropper)


@pytest.fixture
def que_client(que_db_url: str) -> Iterator[Client]:
    """A que.Client on this test's database, and the client ``@que.job``
    functions enqueue through during the test."""
    with Client(que_db_url) as client:
        before = registry.client
        registry.client = client
        try:
            yield client
        finally:
            registry.client = before


@async_fixture
async def que_async_client(que_db_url: str) -> AsyncIterator[AsyncClient]:
    """A que.AsyncClient on this test's database, and the one ``enqueue_async``
    goes through. A pytest-asyncio fixture when pytest-asyncio is installed
    (so strict mode runs it); else an async test runner must handle it."""
    async with AsyncClient(que_db_url) as client:
        before = registry.aclient
        registry.aclient = client
        try:
            yield client
        finally:
            registry.aclient = before


@pytest.fixture
def que_inline() -> Iterator[InlineQueue]:
    """Inline mode: ``@que.job`` enqueues (both faces) are collected here, not written."""
    inline = InlineQueue()
    with inline.active():
        yield inline


@pytest.fixture
def que_drain(que_client: Client) -> Callable[..., int]:
    """``que_drain(until=None, ...)``: ``que.testing.drain`` on ``que_client``."""

    def run(*args: Any, **options: Any) -> int:
        return drain(que_client, *args, **options)

    return run


@pytest.fixture
def que_async_drain(que_async_client: AsyncClient) -> Callable[..., Any]:
    """``await que_async_drain(...)``: ``que.testing.drain_async`` on ``que_async_client``."""

    async def run(*args: Any, **options: Any) -> int:
        return await drain_async(que_async_client, *args, **options)

    return run
