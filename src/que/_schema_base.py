"""Schema versions of que_jobs without IO: what each version is, the steps
between them, and the messages for a table of the wrong version.

The version is the table's comment: no table is version 0, a table without
a comment version 1. Versions 4 and later belong to Ruby que 1.x/2.x, whose
table is not compatible, and are refused.
"""

from __future__ import annotations

from . import sql
from .errors import SchemaVersionError

CURRENT_VERSION = 3

# Key of the advisory lock that serialises migrations ("que", "migr").
MIGRATION_LOCK_KEY = {"namespace": 0x717565, "key": 0x6D696772}


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


def check_target(version: int) -> None:
    """Refuse a migration target that is not a version of the Que table."""
    if not 0 <= version <= CURRENT_VERSION:
        raise SchemaVersionError(
            f"cannot migrate to version {version}; versions 0 to {CURRENT_VERSION} exist"
        )


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


def mismatch_message(version: int) -> str:
    """Why a table at ``version`` cannot be used."""
    if version > CURRENT_VERSION:
        return too_new_message(version)
    if version == 0:
        return "que_jobs does not exist; run `que migrate` (or que.migrate(conn)) first"
    return (
        f"que_jobs is at schema version {version}, this library needs {CURRENT_VERSION}; "
        "run `que migrate`"
    )


def too_new_message(version: int) -> str:
    return (
        f"que_jobs is at schema version {version}, from Ruby que 1.x or later; "
        f"this library speaks version {CURRENT_VERSION} (que 0.x) and cannot use it"
    )
