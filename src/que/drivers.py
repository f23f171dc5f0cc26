# Generated from async_drivers.py by scripts/generate_sync.py: edit that file, not this one.
"""The application's connection, whatever its driver: our statements in its transaction.

``enqueue(job, conn=...)``, ``enqueue_many`` and ``job.delete(conn=...)`` run
statements of ``sql`` on a connection the application owns, inside whatever
transaction it has open, and never commit it: the application does. Every
driver gets the same statements and parameters; ``caller_statements`` wraps
the connection in a small object with two methods, ``fetch`` (run one
statement, return its rows as dicts) and ``atomic`` (a transaction for a
batch that must be all or none, when the connection is in autocommit).

Each face takes the connections of its kind (``_compat.CALLER_CONNECTIONS``:
asyncpg and SQLAlchemy's asyncio ones here, psycopg2, SQLAlchemy and Django
on the sync face) and refuses the other's with a clear TypeError. Optional
libraries are never imported here: an object can only be theirs if they are
loaded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Protocol

import psycopg
from psycopg.rows import DictRow, dict_row

from ._compat import CALLER_CONNECTIONS, OTHER_CLIENT, OTHER_FACE_MODULES, OtherConnection
from ._paramstyle import bind

Row = dict[str, Any]


class Statements(Protocol):
    """Runs our statements on one application connection."""

    def fetch(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        """Run ``query`` (``%(name)s`` placeholders) and return its rows as dicts."""
        ...

    def atomic(self) -> AbstractContextManager[object]:
        """A transaction around several statements, if the connection is not in one."""
        ...


@contextmanager
def caller_statements(
    conn: object, who: str, *, prepare: bool | None = None
) -> Iterator[Statements]:
    """``conn`` wrapped for our statements, or TypeError naming its type.

    ``prepare`` is psycopg 3's per-statement choice (None: its default).
    """
    if isinstance(conn, psycopg.Connection):
        with conn.cursor(row_factory=dict_row) as cur:
            yield PsycopgStatements(cur, prepare=prepare)
        return
    alchemy = _sqlalchemy_connection(conn)
    if alchemy is not None:
        yield SQLAlchemyStatements(alchemy)
        return
    if _instance(conn, "psycopg2.extensions", "connection"):
        yield Psycopg2Statements(conn)
        return
    django = _django_connection(conn)
    if django is not None:
        yield DjangoStatements(django)
        return
    raise TypeError(refusal(who, conn))


def refusal(who: str, conn: object) -> str:
    """Why ``conn`` is refused: what ``who`` takes, and which client takes it instead."""
    kind = type(conn)
    message = f"{who} needs {CALLER_CONNECTIONS}, not {kind.__module__}.{kind.__qualname__}"
    if isinstance(conn, OtherConnection) or kind.__module__.startswith(OTHER_FACE_MODULES):
        message += f" (that connection belongs with {OTHER_CLIENT})"
    return message


class PsycopgStatements:
    """psycopg 3: our statements as they are, on a dict-row cursor."""

    def __init__(self, cur: psycopg.Cursor[DictRow], *, prepare: bool | None) -> None:
        self._cur = cur
        self._prepare = prepare

    def fetch(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        self._cur.execute(query, params, prepare=self._prepare)
        return self._cur.fetchall()

    def atomic(self) -> AbstractContextManager[object]:
        conn = self._cur.connection
        return conn.transaction() if conn.autocommit else nullcontext()


class SQLAlchemyStatements:
    """A SQLAlchemy connection (a Session's, or the caller's own): the
    statement goes to its driver as written, placeholders in the driver's
    style, inside the connection's transaction (SQLAlchemy begins one on
    first use and the application commits it)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def fetch(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        text, bound = bind(query, params, self._conn.dialect.paramstyle)
        result = self._conn.exec_driver_sql(text, bound)
        return [dict(row) for row in result.mappings().all()]

    def atomic(self) -> AbstractContextManager[object]:
        return nullcontext()


def _sqlalchemy_connection(conn: object) -> Any:
    """The SQLAlchemy connection of ``conn`` (a Session's joins its transaction), or None."""
    if _instance(conn, "sqlalchemy.orm.session", "Session"):
        return conn.connection()  # type: ignore[attr-defined]
    if _instance(conn, "sqlalchemy.engine.base", "Connection"):
        return conn
    return None


class Psycopg2Statements:
    """psycopg2: the same placeholders as psycopg 3; rows built from the description."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def fetch(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        with self._conn.cursor() as cur:
            cur.execute(query, params)
            return _dict_rows(cur)

    @contextmanager
    def atomic(self) -> Iterator[object]:
        conn = self._conn
        if not conn.autocommit:
            yield None  # psycopg2 is always in a transaction then
            return
        conn.autocommit = False
        try:
            yield None
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.autocommit = True


class DjangoStatements:
    """A Django connection: its own cursor, so Django knows about the
    statement (atomic blocks, the connection's state, query logging)."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def fetch(self, query: str, params: Mapping[str, Any]) -> list[Row]:
        with self._db.cursor() as cur:
            cur.execute(query, params)
            return _dict_rows(cur)

    def atomic(self) -> AbstractContextManager[object]:
        atomic: AbstractContextManager[object] = sys.modules["django.db.transaction"].atomic(
            using=self._db.alias
        )
        return atomic


def _django_connection(conn: object) -> Any:
    """The DatabaseWrapper of a Django connection (``django.db.connection``
    is a proxy to the default one), or None; TypeError if not PostgreSQL."""
    if _instance(conn, "django.utils.connection", "ConnectionProxy"):
        proxy = vars(conn)
        conn = proxy["_connections"][proxy["_alias"]]
    if not _instance(conn, "django.db.backends.base.base", "BaseDatabaseWrapper"):
        return None
    vendor = getattr(conn, "vendor", None)
    if vendor != "postgresql":
        raise TypeError(f"que needs a Django connection to PostgreSQL, not to {vendor}")
    return conn


def _dict_rows(cur: Any) -> list[Row]:
    names = [column[0] for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _instance(obj: object, module: str, name: str) -> bool:
    """Whether ``obj`` is a ``module.name``; False when that module is not loaded."""
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None)
    return isinstance(kind, type) and isinstance(obj, kind)
