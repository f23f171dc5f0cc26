"""que clients from a SQLAlchemy ``Engine``/``AsyncEngine`` or its URL.

The client opens its own psycopg 3 pool to the engine's database, whatever
driver the engine uses (psycopg, psycopg2, asyncpg): workers hold advisory
locks on their sessions, which the application's pool must not lend out.
Enqueueing in an application transaction passes ``conn=session`` (or a
``Connection``) instead. Messages show the URL without its password.
"""

from __future__ import annotations

from typing import Any

from psycopg import pq
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL, make_url

from ..async_client import AsyncClient
from ..client import Client

# asyncpg's ``ssl`` values that are libpq sslmode values too.
_SSLMODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})


def _libpq_keywords() -> frozenset[str]:
    return frozenset(option.keyword.decode() for option in pq.Conninfo.get_defaults())


def engine_url(source: Any) -> URL:
    """The URL of an Engine, an AsyncEngine, a URL or a URL string."""
    if isinstance(source, URL):
        return source
    if isinstance(source, str):
        return make_url(source)
    url = getattr(source, "url", None)
    if isinstance(url, URL):
        return url
    raise TypeError(
        f"expected a SQLAlchemy Engine, AsyncEngine, URL or URL string, not {type(source).__name__}"
    )


def conninfo(source: Any) -> str:
    """The libpq conninfo (for psycopg 3) of a PostgreSQL engine or URL of any driver.

    Query parameters that are libpq's pass through (``host`` for a Unix
    socket, ``sslmode``, ...), asyncpg's ``ssl=require`` becomes ``sslmode``;
    any other is refused rather than silently dropped.
    """
    url = engine_url(source)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"que needs a PostgreSQL database, not {shown}")
    params: dict[str, Any] = {
        "dbname": url.database,
        "user": url.username,
        "password": url.password,
        "host": url.host,
        "port": url.port,
    }
    keywords = _libpq_keywords()
    for name, raw in url.query.items():
        # A repeated parameter (several hosts) is a list to libpq.
        value = ",".join(raw) if isinstance(raw, tuple) else raw
        key = "sslmode" if name == "ssl" and value in _SSLMODES else name
        if key not in keywords:
            raise ValueError(
                f"the query parameter {key!r} of {shown} is not a libpq connection "
                "parameter; build the que client from a conninfo instead"
            )
        params[key] = value
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})


def client_from_engine(source: Any, **options: Any) -> Client:
    """An open ``Client`` on the database of a SQLAlchemy engine or URL;
    ``options`` are ``Client``'s (``max_connections``, ...)."""
    return Client(conninfo(source), **options)


def async_client_from_engine(source: Any, **options: Any) -> AsyncClient:
    """An ``AsyncClient`` (open it: ``async with``, or ``await client.open()``) on
    the database of a SQLAlchemy engine or URL; ``options`` are ``AsyncClient``'s."""
    return AsyncClient(conninfo(source), **options)
