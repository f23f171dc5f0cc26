"""The Django migrations' operations: que_jobs and the que-pg extension,
moved in the migration's own transaction on Django's connection (no BEGIN or
COMMIT of ours), with the statements and checks ``que migrate`` uses."""

from __future__ import annotations

from typing import Any

from ... import sql
from ..._extension_base import EXTENSION_VERSION, extension_statements, parse_extension_version
from ..._schema_base import (
    CURRENT_VERSION,
    MIGRATION_LOCK_KEY,
    migration_statements,
    parse_version,
    too_new_message,
)
from ...errors import SchemaVersionError


def _value(cur: Any, query: str) -> Any:
    cur.execute(query)
    return cur.fetchone()[0]


def _jobs_version(cur: Any) -> int:
    if not _value(cur, sql.TABLE_EXISTS):
        return 0
    return parse_version(_value(cur, sql.TABLE_COMMENT))


def _extension_version(cur: Any) -> int:
    if not _value(cur, sql.EXTENSION_TABLE_EXISTS):
        return 0
    return parse_extension_version(_value(cur, sql.EXTENSION_COMMENT))


def migrate_jobs(connection: Any, target: int = CURRENT_VERSION) -> int:
    """Move que_jobs to ``target`` on a Django connection; the version found.
    A table Ruby or Go already made at version 3 is left as it is."""
    with connection.cursor() as cur:
        cur.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        found = _jobs_version(cur)
        if found > CURRENT_VERSION:
            raise SchemaVersionError(too_new_message(found))
        for statement in migration_statements(found, target):
            cur.execute(statement)
        if target > 0 and target != found:
            cur.execute(sql.SET_TABLE_COMMENT.format(version=f"'{int(target)}'"))
    return found


def migrate_extension(connection: Any, target: int = EXTENSION_VERSION) -> int:
    """Move the que-pg extension to ``target`` on a Django connection; the version found."""
    with connection.cursor() as cur:
        cur.execute(sql.MIGRATION_LOCK, MIGRATION_LOCK_KEY)
        found = _extension_version(cur)
        if found > EXTENSION_VERSION:
            raise SchemaVersionError(
                f"the que-pg extension is at version {found}, newer than this "
                f"library's {EXTENSION_VERSION}; upgrade que-pg"
            )
        for statement in extension_statements(found, target):
            cur.execute(statement)
        if target > 0 and target != found:
            cur.execute(sql.SET_EXTENSION_COMMENT.format(version=f"'{int(target)}'"))
    return found


def jobs_up(apps: Any, schema_editor: Any) -> None:
    migrate_jobs(schema_editor.connection)


def jobs_down(apps: Any, schema_editor: Any) -> None:
    migrate_jobs(schema_editor.connection, 0)


def extension_up(apps: Any, schema_editor: Any) -> None:
    migrate_extension(schema_editor.connection)


def extension_down(apps: Any, schema_editor: Any) -> None:
    migrate_extension(schema_editor.connection, 0)
