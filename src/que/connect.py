"""Connection factories: keyword parts, a libpq conninfo string, a URL, or the environment.

A Connector is the Python form of Go's driver.Connector: it knows how to
open a connection and how to describe its target without the password.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.rows import DictRow, dict_row

from .errors import DatabaseUnavailableError, QueError

URL_SCHEMES = ("postgres", "postgresql")

# Environment variables naming a database, in the order they are consulted.
URL_ENV_VARS = ("QUE_DATABASE_URL", "DATABASE_URL")
LIBPQ_ENV_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE")


@dataclass(frozen=True)
class Connector:
    """Opens psycopg connections to one database, set up the way que needs them."""

    conninfo: str

    def __post_init__(self) -> None:
        try:
            pg_conninfo.conninfo_to_dict(self.conninfo)
        except psycopg.ProgrammingError as exc:
            raise QueError(f"invalid connection string: {exc}") from exc

    def connect(self, *, connect_timeout: float = 10) -> psycopg.Connection[DictRow]:
        """A new autocommit connection returning dict rows."""
        try:
            return psycopg.connect(
                self.conninfo,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, round(connect_timeout)),
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailableError(
                f"cannot connect to {self.describe()}: {redact(str(exc), self.conninfo)}"
            ) from exc

    def describe(self) -> str:
        """The target as host:port/dbname user=..., never with the password."""
        return describe(self.conninfo)

    def __repr__(self) -> str:
        return f"Connector({self.describe()!r})"


def get_connector(
    host: str = "",
    port: int | None = None,
    user: str = "",
    password: str = "",
    database: str = "",
    **options: Any,
) -> Connector:
    """A connector from keyword parts (Go's GetConnector); empty parts fall back to libpq."""
    parts = {"host": host, "port": port, "user": user, "password": password, "dbname": database}
    parts.update(options)
    kept = {k: v for k, v in parts.items() if v not in (None, "")}
    return Connector(pg_conninfo.make_conninfo("", **kept))


def get_connector_from_conninfo(conninfo: str) -> Connector:
    """A connector from a libpq string, either ``key=value`` pairs or a URL."""
    return Connector(conninfo)


get_connector_from_conn_str = get_connector_from_conninfo


def get_connector_from_url(url: str) -> Connector:
    """A connector from a ``postgresql://`` (or ``postgres://``) URL."""
    scheme = urlsplit(url).scheme
    if scheme not in URL_SCHEMES:
        raise QueError(
            f"database URL must start with postgresql:// or postgres://, not {scheme or url!r}"
        )
    return Connector(url)


def connector_from_env(environ: Mapping[str, str] | None = None) -> Connector | None:
    """The database named by QUE_DATABASE_URL, DATABASE_URL or libpq PG* variables.

    None when the environment names no database at all.
    """
    env = os.environ if environ is None else environ
    for name in URL_ENV_VARS:
        if env.get(name):
            return get_connector_from_conninfo(env[name])
    if any(env.get(name) for name in LIBPQ_ENV_VARS):
        return Connector("")  # libpq reads the PG* variables itself
    return None


def describe(conninfo: str) -> str:
    """A readable description of a connection target, never with the password."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<invalid connection string>"
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    dbname = str(params.get("dbname") or os.environ.get("PGDATABASE") or "")
    user = str(params.get("user") or os.environ.get("PGUSER") or "")
    where = f"{host}:{port}" if not host.startswith("/") else f"{host} (socket) port {port}"
    text = f"{where}/{dbname}"
    return f"{text} user={user}" if user else text


def redact(text: str, conninfo: str) -> str:
    """``text`` with the password of ``conninfo`` (if any) replaced by ***."""
    try:
        password = pg_conninfo.conninfo_to_dict(conninfo).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text
