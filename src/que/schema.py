"""Schema versions of que_jobs: detect, migrate up and down, exactly as Ruby que 0.x.

The version is the table's comment: no table is version 0, a table without
a comment version 1. Versions 4 and later belong to Ruby que 1.x/2.x, whose
table is not compatible, and are refused.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql as pgsql

from . import sql
from .errors import SchemaVersionError

CURRENT_VERSION = 3

# Key of the advisory lock that serialises migrations ("que", "migr").
_MIGRATION_LOCK = {"namespace": 0x717565, "key": 0x6D696772}


def current_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version of que_jobs on this connection's database (0 if absent)."""
    row = conn.execute(sql.TABLE_EXISTS).fetchone()
    if row is None or not _first(row):
        return 0
    comment_row = conn.execute(sql.TABLE_COMMENT).fetchone()
    comment = None if comment_row is None else _first(comment_row)
    return parse_version(comment)


async def current_version_async(conn: psycopg.AsyncConnection[Any]) -> int:
    """current_version() for an asyncio connection."""
    row = await (await conn.execute(sql.TABLE_EXISTS)).fetchone()
    if row is None or not _first(row):
        return 0
    comment_row = await (await conn.execute(sql.TABLE_COMMENT)).fetchone()
    return parse_version(None if comment_row is None else _first(comment_row))


def parse_version(comment: str | None) -> int:
    """The version recorded in a que_jobs table comment."""
    if comment is None or comment.strip() == "":
        return 1
    try:
        return int(comment.strip())
    except ValueError:
        raise SchemaVersionError(
            f"que_jobs has the comment {comment!r}, which is not a schema version; "
            "this table was not made by que"
        ) from None


def check_version(conn: psycopg.Connection[Any]) -> None:
    """Raise SchemaVersionError unless que_jobs is at the version this library speaks."""
    version = current_version(conn)
    if version != CURRENT_VERSION:
        raise SchemaVersionError(_mismatch(version))


async def check_version_async(conn: psycopg.AsyncConnection[Any]) -> None:
    """check_version() for an asyncio connection."""
    version = await current_version_async(conn)
    if version != CURRENT_VERSION:
        raise SchemaVersionError(_mismatch(version))


def migrate(conn: psycopg.Connection[Any], version: int = CURRENT_VERSION) -> int:
    """Move que_jobs to ``version`` (0 to 3), up or down, in one transaction.

    Returns the version found before. Concurrent migrations wait for each other.
    """
    if not 0 <= version <= CURRENT_VERSION:
        raise SchemaVersionError(
            f"cannot migrate to version {version}; versions 0 to {CURRENT_VERSION} exist"
        )
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, _MIGRATION_LOCK)
        found = current_version(conn)
        if found > CURRENT_VERSION:
            raise SchemaVersionError(_too_new(found))
        if found == CURRENT_VERSION and version < found:
            conn.execute(sql.UNINSTALL_NOTIFY)  # its function reads the queue column
        for statement in migration_statements(found, version):
            conn.execute(statement)
        if version > 0 and version != found:
            conn.execute(
                pgsql.SQL(sql.SET_TABLE_COMMENT).format(version=pgsql.Literal(str(version)))
            )
    return found


def migration_statements(found: int, target: int) -> list[str]:
    """The SQL steps that take que_jobs from version ``found`` to ``target``."""
    if target >= found:
        return [sql.MIGRATIONS_UP[v] for v in range(found + 1, target + 1)]
    return [sql.MIGRATIONS_DOWN[v] for v in range(found, target, -1)]


def schema_sql(target: int = CURRENT_VERSION, found: int = 0) -> str:
    """The SQL of a migration as one script, for teams with their own migration tool."""
    steps = [s.strip() + ";" for s in migration_statements(found, target)]
    if target > 0 and target != found:
        steps.append(sql.SET_TABLE_COMMENT.format(version=f"'{int(target)}'") + ";")
    return "BEGIN;\n" + "\n".join(steps) + "\nCOMMIT;\n"


def _mismatch(version: int) -> str:
    if version > CURRENT_VERSION:
        return _too_new(version)
    if version == 0:
        return "que_jobs does not exist; run `que migrate` (or que.migrate(conn)) first"
    return (
        f"que_jobs is at schema version {version}, this library needs {CURRENT_VERSION}; "
        "run `que migrate`"
    )


def _too_new(version: int) -> str:
    return (
        f"que_jobs is at schema version {version}, from Ruby que 1.x or later; "
        f"this library speaks version {CURRENT_VERSION} (que 0.x) and cannot use it"
    )


def _first(row: Any) -> Any:
    """The first column of a row, whether tuples or dicts are the row factory."""
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def install_notify(conn: psycopg.Connection[Any]) -> None:
    """Add the optional AFTER INSERT trigger that wakes listening workers at once.

    The table stays at version 3 and compatible with Ruby and Go.
    """
    check_version(conn)
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, _MIGRATION_LOCK)
        conn.execute(sql.INSTALL_NOTIFY)


def uninstall_notify(conn: psycopg.Connection[Any]) -> None:
    """Remove the wake-up trigger again."""
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, _MIGRATION_LOCK)
        conn.execute(sql.UNINSTALL_NOTIFY)


def notify_installed(conn: psycopg.Connection[Any]) -> bool:
    """Whether the wake-up trigger is on que_jobs."""
    row = conn.execute(sql.NOTIFY_INSTALLED).fetchone()
    return bool(row is not None and _first(row))
