"""Unique jobs: insert one unless its key is held, and purge stale keys.

``insert_unique`` runs the statements of ``sql`` in the transaction of the
connection it is given (the client's own pooled one, or the caller's, of any
driver ``async_drivers`` takes).
It is race-free under READ COMMITTED: a producer inserting a key another has
not yet committed waits for it (see ``sql.INSERT_UNIQUE_JOB``), then reads the
key's holder in a fresh statement, and takes a stale key over only if it still
names the holder it read. The pure parts are in ``_unique``.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg.rows import dict_row

from . import sql
from ._jobs import InsertParams
from ._unique import (
    MAX_UNIQUE_ATTEMPTS,
    UNIQUE_PURGE_WINDOW,
    UNIQUE_PURGE_WINDOWS,
    Found,
    Unique,
    UniquePurge,
    attempts_error,
    unique_params,
)
from .async_drivers import AsyncStatements

logger = logging.getLogger(__name__)


async def insert_unique(
    statements: AsyncStatements, params: InsertParams, spec: Unique, key: str
) -> Found:
    """Insert the job unless a live job holds ``key``; the job that holds it after."""
    values = unique_params(spec, key, params)
    for _ in range(MAX_UNIQUE_ATTEMPTS):
        rows = await statements.fetch(sql.INSERT_UNIQUE_JOB, values)
        if rows:
            return Found(rows[0]["job_id"], rows[0]["run_at"], True)
        holders = await statements.fetch(sql.UNIQUE_KEY_HOLDER, values)
        if not holders:
            continue  # purged since the insert found it: insert again
        holder = holders[0]
        if holder["live"]:
            return Found(holder["job_id"], None, False)
        old = {**values, "old_job_id": holder["job_id"]}
        rows = await statements.fetch(sql.TAKE_OVER_UNIQUE_KEY, old)
        if rows:
            return Found(rows[0]["job_id"], rows[0]["run_at"], True)
        # Another producer took the stale key first: look at its holder again.
    raise attempts_error(key)


async def purge_stale_unique_keys(conn: psycopg.AsyncConnection[Any], purge: UniquePurge) -> int:
    """Delete unique keys whose job is gone or whose period has passed, a
    window at a time (each its own statement, on ``conn`` in autocommit).
    Logged, never fatal: a key left stale is taken over by the next enqueue
    anyway. Returns how many went."""
    total = 0
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            for _ in range(UNIQUE_PURGE_WINDOWS):
                await cur.execute(
                    sql.PURGE_STALE_UNIQUE_KEYS,
                    {"after": purge.after, "limit": UNIQUE_PURGE_WINDOW},
                )
                row = await cur.fetchone()
                assert row is not None  # an aggregate always returns its row
                total += row["purged"]
                more = purge.advance(
                    examined=row["examined"], last_key=row["last_key"], window=UNIQUE_PURGE_WINDOW
                )
                if not more:
                    break
    except psycopg.Error as exc:
        logger.warning("could not purge stale unique keys: %s", exc)
        return total
    if total:
        logger.info("purged %d stale unique key(s)", total)
    return total
