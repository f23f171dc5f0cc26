"""Each accepted URL scheme, rewritten for libpq, reaches a real server.

These need the test server (QUE_TEST_DATABASE_URL, else an embedded
PostgreSQL started for the session), unlike the rest of tests/unit.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from psycopg.conninfo import conninfo_to_dict

import que

SCHEMES = [
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+pg8000",
    "postgres",
]


def url_with_scheme(server_url: str, scheme: str) -> str:
    """The test server's maintenance database as a ``scheme://`` URL."""
    parts = conninfo_to_dict(server_url)
    userinfo = quote(str(parts.get("user", "")), safe="")
    if parts.get("password"):
        userinfo += ":" + quote(str(parts["password"]), safe="")
    host = quote(str(parts.get("host", "127.0.0.1")), safe="")  # a socket directory has "/"
    port = str(parts.get("port", "5432"))
    return f"{scheme}://{userinfo}@{host}:{port}/{parts.get('dbname', 'postgres')}"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_url_of_each_scheme_connects(server_url: str, scheme: str) -> None:
    url = url_with_scheme(server_url, scheme)
    connector = que.get_connector_from_url(url)
    with connector.connect() as conn:
        row = conn.execute("SELECT current_user AS user, current_database() AS db").fetchone()
    assert row is not None
    assert row["db"] == conninfo_to_dict(url_with_scheme(server_url, "postgresql"))["dbname"]
    user = conninfo_to_dict(server_url).get("user")
    assert user is None or row["user"] == user
    # Opening a Client connects once directly and fills its pool; either failing raises.
    with que.Client(url, check_schema=False, max_connections=1):
        pass
