"""Versions of the que-pg extension without IO: the steps between them and
what each installs, for ``que migrate`` to say.

The extension holds what the Que family never had (dead jobs, cancel
requests, unique keys, paused queues, schedule ticks) in tables of its own,
and tunes autovacuum on que_jobs; the Que v3 table itself is left as Ruby
que 0.x and Go expect it. Its version is the
comment of que_dead_jobs (no table: version 0).
"""

from __future__ import annotations

from . import sql
from .errors import SchemaVersionError

EXTENSION_VERSION = 2

# What each version adds, for messages and docs.
EXTENSION_CONTENTS = {
    1: "que_dead_jobs (dead, discarded and cancelled jobs), que_cancel_requests, "
    "and autovacuum settings on que_jobs suited to a queue table",
    2: "que_unique_keys (unique jobs), que_paused_queues, que_schedules (periodic jobs' "
    "last ticks), and an index on que_jobs (job_id)",
}


def parse_extension_version(comment: str | None) -> int:
    """The version recorded in the que_dead_jobs comment."""
    try:
        return int((comment or "").strip())
    except ValueError:
        raise SchemaVersionError(
            f"que_dead_jobs has the comment {comment!r}, which is not an extension version; "
            "this table was not made by que"
        ) from None


def check_extension_target(version: int) -> None:
    if not 0 <= version <= EXTENSION_VERSION:
        raise SchemaVersionError(
            f"cannot migrate the extension to version {version}; "
            f"versions 0 to {EXTENSION_VERSION} exist"
        )


def extension_statements(found: int, target: int) -> list[str]:
    """The SQL steps that take the extension from version ``found`` to ``target``."""
    if target >= found:
        return [sql.EXTENSION_UP[v] for v in range(found + 1, target + 1)]
    return [sql.EXTENSION_DOWN[v] for v in range(found, target, -1)]


def extension_sql(target: int = EXTENSION_VERSION, found: int = 0) -> str:
    """The SQL of an extension migration as one script."""
    steps = [s.strip() + ";" for s in extension_statements(found, target)]
    if target > 0 and target != found:
        steps.append(sql.SET_EXTENSION_COMMENT.format(version=f"'{int(target)}'") + ";")
    return "BEGIN;\n" + "\n".join(steps) + "\nCOMMIT;\n"


def missing_extension_message(feature: str, version: int = 1) -> str:
    """Why ``feature`` cannot run on a database without (this version of) the extension."""
    return (
        f"{feature} needs version {version} or later of the que-pg extension "
        f"({EXTENSION_CONTENTS[version].split(',')[0]}); "
        "run `que migrate` (or que.migrate_extension(conn)) first"
    )
