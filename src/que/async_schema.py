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

AnyConnection = psycopg.AsyncConnection[Any]

# Migration steps hold several commands, which a prepared statement cannot:
# they run with prepare=False even after prepare_statements() on the connection.


async def _value(conn: AnyConnection, query: str, column: str) -> Any:
    """One column of the one row ``query`` returns, whatever the connection's row factory."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query)
        row = await cur.fetchone()
    assert row is not None  # every query given here returns one row
    return row[column]


async def current_version_async(conn: AnyConnection) -> int:
    """The schema version of que_jobs on this connection's database (0 if absent)."""
    if not await _value(conn, sql.TABLE_EXISTS, "present"):
        return 0
    return parse_version(await _value(conn, sql.TABLE_COMMENT, "comment"))


async def check_version_async(conn: AnyConnection) -> None:
    """Raise SchemaVersionError unless que_jobs is at the version this library speaks."""
    version = await current_version_async(conn)
    if version != CURRENT_VERSION:
        raise SchemaVersionError(mismatch_message(version))


async def migrate_async(conn: AnyConnection, version: int = CURRENT_VERSION) -> int:
    """Move que_jobs to ``version`` (0 to 3), up or down, in one transaction.

    Returns the version found before. Concurrent migrations wait for each other.
    """
    check_target(version)
    async with conn.transaction():
        await conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        found = await current_version_async(conn)
        if found > CURRENT_VERSION:
            raise SchemaVersionError(too_new_message(found))
        if found == CURRENT_VERSION and version < found:
            # Its function reads the queue column.
            await conn.execute(sql.UNINSTALL_NOTIFY, prepare=False)
            # The extension belongs with version 3 (its dead jobs go with it).
            for statement in extension_statements(await extension_version_async(conn), 0):
                await conn.execute(statement, prepare=False)
        for statement in migration_statements(found, version):
            await conn.execute(statement, prepare=False)
        if version > 0 and version != found:
            comment = pgsql.SQL(sql.SET_TABLE_COMMENT).format(version=pgsql.Literal(str(version)))
            await conn.execute(comment)
    return found


async def install_notify_async(conn: AnyConnection) -> None:
    """Add the optional AFTER INSERT trigger that wakes listening workers at once.

    The table stays at version 3 and compatible with Ruby and Go.
    """
    await check_version_async(conn)
    async with conn.transaction():
        await conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        await conn.execute(sql.INSTALL_NOTIFY, prepare=False)


async def uninstall_notify_async(conn: AnyConnection) -> None:
    """Remove the wake-up trigger again."""
    async with conn.transaction():
        await conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        await conn.execute(sql.UNINSTALL_NOTIFY, prepare=False)


async def notify_installed_async(conn: AnyConnection) -> bool:
    """Whether the wake-up trigger is on que_jobs."""
    return bool(await _value(conn, sql.NOTIFY_INSTALLED, "installed"))


async def extension_version_async(conn: AnyConnection) -> int:
    """The version of the que-pg extension on this database (0: not installed)."""
    if not await _value(conn, sql.EXTENSION_TABLE_EXISTS, "present"):
        return 0
    return parse_extension_version(await _value(conn, sql.EXTENSION_COMMENT, "comment"))


async def migrate_extension_async(conn: AnyConnection, version: int = EXTENSION_VERSION) -> int:
    """Move the que-pg extension to ``version`` (0 removes it, dropping dead jobs),
    in one transaction; que_jobs must be at version 3. Returns the version found."""
    check_extension_target(version)
    await check_version_async(conn)
    async with conn.transaction():
        await conn.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        found = await extension_version_async(conn)
        if found > EXTENSION_VERSION:
            raise SchemaVersionError(
                f"the que-pg extension is at version {found}, newer than this library's "
                f"{EXTENSION_VERSION}; upgrade que-pg"
            )
        for statement in extension_statements(found, version):
            await conn.execute(statement, prepare=False)
        if version > 0 and version != found:
            comment = pgsql.SQL(sql.SET_EXTENSION_COMMENT).format(
                version=pgsql.Literal(str(version))
            )
            await conn.execute(comment)
    return found
