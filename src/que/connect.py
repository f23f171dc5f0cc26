"""Connection factories: keyword parts, a libpq conninfo string, a URL, or the environment.

A Connector is the Python form of Go's driver.Connector: it knows how to
open a connection and how to describe its target without the password.

URLs may use SQLAlchemy's spelling, ``postgresql+<driver>://``; they are
rewritten to the ``postgresql://`` libpq reads. No error message here ever
quotes the string it was given, since that string may hold a password: a
message says what is wrong in words of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.rows import DictRow, dict_row

from .errors import DatabaseUnavailableError, QueError

# The schemes libpq reads itself.
URL_SCHEMES = ("postgresql", "postgres")
# SQLAlchemy's schemes for the PostgreSQL drivers; each becomes postgresql://.
DRIVER_URL_SCHEMES = (
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+asyncpg",
    "postgresql+pg8000",
)

# Environment variables naming a database, in the order they are consulted.
URL_ENV_VARS = ("QUE_DATABASE_URL", "DATABASE_URL")
LIBPQ_ENV_VARS = ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE")

# What starts a URL: a scheme and "://". ":" is let in so that a JDBC URL
# ("jdbc:postgresql://") is named as one scheme rather than read as conninfo.
_URL_START = re.compile(r"([A-Za-z][A-Za-z0-9+.:-]*)://")
# A scheme longer than this is not repeated in a message: it is no scheme.
_SCHEME_SHOWN_MAX = 32
_PORT = re.compile(r"\s*(\d{1,5})?\s*", re.ASCII)

_ACCEPTED = (
    "a database URL starts with postgresql://, postgres:// or postgresql+DRIVER:// "
    "(psycopg, psycopg2, asyncpg or pg8000)"
)
_AMBIGUOUS = (
    "a user name, password or database name in the URL has an unencoded '@', '/' or '?'; "
    "percent-encode them as %40, %2F and %3F"
)

# libpq's parse errors quote the input (often all of it), so only the kind of
# error is kept: a phrase of libpq's message, and what to say instead.
_PARSE_PROBLEMS = (
    (
        'missing "="',
        'a word without "=" (conninfo is key=value pairs separated by spaces; quote a '
        "value that has spaces in it; a URL starts with postgresql://)",
    ),
    ("unterminated quoted string", "a quoted value is not closed"),
    ("invalid connection option", "an option libpq does not know"),
    (
        "invalid URI query parameter",
        "a URL query parameter libpq does not know (a driver's own options, such as "
        "asyncpg's ssl=require, are not libpq's; libpq spells TLS sslmode=)",
    ),
    ("key/value separator", "a URL query parameter that is not one key=value pair"),
    ("IPv6 host address", "a bracketed IPv6 host address that is empty or not closed"),
    ("unexpected character", "an unexpected character after a bracketed IPv6 host address"),
    # Before "percent-encoded": libpq's message about spaces says that too.
    ("unexpected spaces", "a space in the URL (write it as %20)"),
    ("percent-encoded", "bad percent-encoding in the URL (% must start %XX, and %00 is refused)"),
)


@dataclass(frozen=True)
class Connector:
    """Opens psycopg connections to one database, set up the way que needs them.

    ``conninfo`` is a libpq string, key=value pairs or a URL; a SQLAlchemy URL
    given here is stored in its libpq form.
    """

    conninfo: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "conninfo", libpq_conninfo(self.conninfo))

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
    """A connector from ``key=value`` pairs or a URL (SQLAlchemy's driver forms included)."""
    return Connector(conninfo)


get_connector_from_conn_str = get_connector_from_conninfo


def get_connector_from_url(url: str) -> Connector:
    """A connector from a ``postgresql://`` URL, or ``postgres://``, or SQLAlchemy's
    ``postgresql+psycopg://``, ``+psycopg2``, ``+asyncpg`` or ``+pg8000``."""
    if _URL_START.match(url.strip()) is None:
        raise QueError(f"the database URL has no scheme: {_ACCEPTED}")
    return Connector(url)


def connector_from_env(environ: Mapping[str, str] | None = None) -> Connector | None:
    """The database named by QUE_DATABASE_URL, DATABASE_URL or libpq PG* variables.

    None when the environment names no database at all.
    """
    env = os.environ if environ is None else environ
    for name in URL_ENV_VARS:
        if env.get(name):
            try:
                return get_connector_from_conninfo(env[name])
            except QueError as exc:
                raise QueError(f"{name}: {exc}") from exc
    if any(env.get(name) for name in LIBPQ_ENV_VARS):
        return Connector("")  # libpq reads the PG* variables itself
    return None


def libpq_conninfo(text: str) -> str:
    """``text`` in a form libpq reads, checked; raises QueError saying what is wrong.

    A URL loses its surrounding whitespace and a SQLAlchemy scheme becomes
    postgresql://; conninfo pairs are returned as given.

    >>> libpq_conninfo(" postgresql+psycopg://app@db/jobs")
    'postgresql://app@db/jobs'
    >>> libpq_conninfo("host=db password=x")
    'host=db password=x'
    """
    conninfo = _rewrite(text)
    _checked_params(conninfo)
    return conninfo


def describe(conninfo: str) -> str:
    """A readable description of a connection target, never with the password."""
    try:
        params = _checked_params(_rewrite(conninfo))
    except QueError:
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
        password = _checked_params(_rewrite(conninfo)).get("password")
    except QueError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


# Each check below raises outside its ``except`` block, so that the error has
# no chained exception: libpq's and Python's messages quote the input.


def _rewrite(text: str) -> str:
    """``text`` with a SQLAlchemy scheme made postgresql://, after checks libpq cannot make."""
    if "\x00" in text:
        raise QueError("invalid connection string: it has a NUL character")
    try:
        text.encode()
        encodable = True
    except UnicodeEncodeError:
        encodable = False
    if not encodable:
        raise QueError("invalid connection string: it is not valid UTF-8 (a lone surrogate)")
    url = text.strip()
    start = _URL_START.match(url)
    if start is None:
        return text  # conninfo pairs
    scheme = start.group(1).lower()
    if scheme in URL_SCHEMES:
        prefix = scheme
    elif scheme in DRIVER_URL_SCHEMES:
        prefix = "postgresql"
    else:
        named = repr(scheme) if len(scheme) <= _SCHEME_SHOWN_MAX else "(too long to show)"
        raise QueError(f"unsupported database URL scheme {named}: {_ACCEPTED}")
    rest = url[start.end() :]
    if _ambiguous(rest):
        raise QueError(f"invalid connection string: {_AMBIGUOUS}")
    return f"{prefix}://{rest}"


def _ambiguous(rest: str) -> bool:
    """Whether libpq would split the URL after ``scheme://`` other than a reader would.

    libpq takes the user info to end at the first "@" before any "/". A
    second "@" before the query, or a "?" inside that user info, means a
    password or name had an unencoded "@", "/" or "?", and part of it would
    end up as the host, port or database name (which messages show).

    >>> _ambiguous("app:pw@db/jobs?application_name=me@home")
    False
    >>> _ambiguous("app:p@ss@db/jobs"), _ambiguous("app:p/ss@db/jobs")
    (True, True)
    >>> _ambiguous("db?password=p@ss")
    True
    """
    end = re.search(r"[@/]", rest)
    if end is not None and end.group() == "@":
        userinfo, after = rest[: end.start()], rest[end.end() :]
    else:
        userinfo, after = "", rest
    return "?" in userinfo or "@" in after.partition("?")[0]


def _checked_params(conninfo: str) -> dict[str, Any]:
    """libpq's reading of ``conninfo``, whose port (if any) is a port number."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        problem = _parse_problem(str(exc))
    else:
        ports = str(params.get("port", "")).split(",")
        if all(_valid_port(port) for port in ports):
            return params
        problem = "the port is not a number from 1 to 65535"
    raise QueError(f"invalid connection string: {problem}")


def _valid_port(text: str) -> bool:
    """Whether ``text`` is a port as libpq reads it (empty means the default)."""
    match = _PORT.fullmatch(text)
    return match is not None and (not match.group(1) or 1 <= int(match.group(1)) <= 65535)


def _parse_problem(message: str) -> str:
    """What a libpq parse error is about, in words that quote nothing of the input."""
    for phrase, problem in _PARSE_PROBLEMS:
        if phrase in message:
            return problem
    return "libpq cannot read it"
