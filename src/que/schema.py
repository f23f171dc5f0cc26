# Generated from async_schema.py by scripts/generate_sync.py: edit that file, not this one.
"""Detect and migrate the que_jobs schema version on a connection, and add or
remove the optional wake-up trigger; exactly as Ruby que 0.x migrates.

The asyncio functions end in ``_async``; ``que.migrate`` and the other sync
ones take a sync connection.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import dict_row

from . import sql
from ._extension_base import (
    EXTENSION_VERSION,
    check_extension_target,
    extension_statements,
    parse_extension_version,
)
from ._schema_base import (
    CURRENT_VERSION,
    MIGRATION_LOCK_KEY,
    check_target,
    migration_statements,
    mismatch_message,
    parse_version,
    too_new_message,
)
from .errors import SchemaVersionError

AnyConnection = psycopg.Connection[Any]

# Migration steps hold several commands, which a prepared statement cannot:
# they run with prepare=False even after prepare_statements() on the connection.


def _value(conn: AnyConnection, query: str, column: str) -> Any:
    """One column of the one row ``query`` returns, whatever the connection's row factory."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query)
        row = cur.fetchone()
    assert row is not None  # every query given here returns one row
    return row[column]


def current_version(conn: AnyConnection) -> int:
    """The schema version of que_jobs on this connection's database (0 if absent)."""
    if not _value(conn, sql.TABLE_EXISTS, "present"):
        return 0
    return parse_version(_value(conn, sql.TABLE_COMMENT, "comment"))


def check_version(conn: AnyConnection) -> None:
    """Raise SchemaVersionError unless que_jobs is at the version this library speaks."""
    version = current_version(conn)
    if version != CURRENT_VERSION:
        raise SchemaVersionError(mismatch_message(version))


def migrate(conn: AnyConnection, version: int = CURRENT_VERSION) -> int:
    """Move que_jobs to ``version`` (0 to 3), up or down, in one transaction.

    Returns the version found before. Concurrent migrations wait for each other.
    """
    check_target(version)
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        found = current_version(conn)
        if found > CURRENT_VERSION:
            raise SchemaVersionError(too_new_message(found))
        if found == CURRENT_VERSION and version < found:
            # Its function reads the queue column.
            conn.execute(sql.UNINSTALL_NOTIFY, prepare=False)
            # The extension belongs with version 3 (its dead jobs go with it).
            for statement in extension_statements(extension_version(conn), 0):
                conn.execute(statement, prepare=False)
        for statement in migration_statements(found, version):
            conn.execute(statement, prepare=False)
        if version > 0 and version != found:
            comment = pgsql.SQL(sql.SET_TABLE_COMMENT).format(version=pgsql.Literal(str(version)))
            conn.execute(comment)
    return found


def install_notify(conn: AnyConnection) -> None:
    """Add the optional AFTER INSERT trigger that wakes listening workers at once.

    The table stays at version 3 and compatible with Ruby and Go.
    """
    check_version(conn)
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        conn.execute(sql.INSTALL_NOTIFY, prepare=False)


def uninstall_notify(conn: AnyConnection) -> None:
    """Remove the wake-up trigger again."""
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        conn.execute(sql.UNINSTALL_NOTIFY, prepare=False)


def notify_installed(conn: AnyConnection) -> bool:
    """Whether the wake-up trigger is on que_jobs."""
    return bool(_value(conn, sql.NOTIFY_INSTALLED, "installed"))


def extension_version(conn: AnyConnection) -> int:
    """The version of the que-pg extension on this database (0: not installed)."""
    if not _value(conn, sql.EXTENSION_TABLE_EXISTS, "present"):
        return 0
    return parse_extension_version(_value(conn, sql.EXTENSION_COMMENT, "comment"))


def migrate_extension(conn: AnyConnection, version: int = EXTENSION_VERSION) -> int:
    """Move the que-pg extension to ``version`` (0 removes it, dropping dead jobs),
    in one transaction; que_jobs must be at version 3. Returns the version found."""
    check_extension_target(version)
    check_version(conn)
    with conn.transaction():
        conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        found = extension_version(conn)
        if found > EXTENSION_VERSION:
            raise SchemaVersionError(
                f"the que-pg extension is at version {found}, newer than this library's "
                f"{EXTENSION_VERSION}; upgrade que-pg"
            )
        for statement in extension_statements(found, version):
            conn.execute(statement, prepare=False)
        if version > 0 and version != found:
            comment = pgsql.SQL(sql.SET_EXTENSION_COMMENT).format(
                version=pgsql.Literal(str(version))
            )
            conn.execute(comment)
    return found
