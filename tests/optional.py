"""The optional libraries the integration tests need, and URLs for them.

Without one of them a test is skipped, except under CI ($CI set), where it
fails: the integrations must not pass by being skipped.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict


def require(module: str) -> ModuleType:
    """Import ``module`` (an extra of the test suite); skip, or fail under CI, without it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{module} is not installed ({exc}); pip install -e '.[dev]'"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; $CI is set, so the integration tests must run", pytrace=False)
        pytest.skip(reason)


def parts(conninfo: str) -> dict[str, Any]:
    """The host, port, user, password and database of a libpq conninfo string."""
    info = conninfo_to_dict(conninfo)
    return {
        "host": info.get("host"),
        "port": int(info["port"]) if info.get("port") else None,
        "user": info.get("user"),
        "password": info.get("password"),
        "database": info.get("dbname"),
    }


def sqlalchemy_url(conninfo: str, driver: str) -> Any:
    """A SQLAlchemy URL for ``driver`` (psycopg2, psycopg, asyncpg) to the same database."""
    sqlalchemy = require("sqlalchemy")
    p = parts(conninfo)
    host = p["host"]
    query = {}
    if host and host.startswith("/"):
        query, host = {"host": host}, None
    return sqlalchemy.URL.create(
        f"postgresql+{driver}",
        username=p["user"],
        password=p["password"],
        host=host,
        port=p["port"],
        database=p["database"],
        query=query,
    )


async def asyncpg_connect(conninfo: str) -> Any:
    """An asyncpg connection to the database of ``conninfo``."""
    asyncpg = require("asyncpg")
    return await asyncpg.connect(**parts(conninfo))
