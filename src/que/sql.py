"""Every SQL statement of the library, named. Nothing else holds SQL text.

Queue names, job types and every other value are always bound parameters.
The statements speak the Que 0.x protocol: session advisory locks keyed on
job_id, a walk of the primary key (queue, priority, run_at, job_id), and
writes by the full primary key.
"""

from __future__ import annotations

from typing import Final

# -- job locks as pg_locks shows them ----------------------------------------

# A job's advisory lock is one bigint key, its id: pg_locks shows the key's
# high 32 bits as classid and its low 32 bits as objid, with objsubid 1.
_JOB_LOCK_ID: Final = "(l.classid::bigint << 32) | l.objid::bigint"
_JOB_LOCK: Final = "l.locktype = 'advisory' AND l.objsubid = 1"
# Such a lock granted to any session (Python, Ruby or Go) of this database.
_JOB_LOCK_HERE: Final = (
    _JOB_LOCK
    + """
      AND l.granted
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
)

# -- enqueue ---------------------------------------------------------------

INSERT_JOB: Final = """
INSERT INTO que_jobs (queue, priority, run_at, job_class, args)
VALUES (
    %(queue)s,
    %(priority)s,
    coalesce(%(run_at)s::timestamptz, now()),
    %(job_class)s,
    %(args)s::json
)
RETURNING job_id, run_at
"""

# Many jobs in one statement, one round trip. The columns come as array
# literals and the args as one JSON array (bytes args stay as they were
# given); ROWS FROM walks them side by side, in order, with no join, and the
# rows take their ids from the sequence in that order, so the ids sorted are
# the jobs in input order. One row comes back, not one per job: those ids,
# and the now() every job without a run_at was given.
INSERT_JOBS: Final = """
WITH inserted AS (
    INSERT INTO que_jobs (queue, priority, run_at, job_class, args)
    SELECT k.queue, k.priority, coalesce(k.run_at, now()), k.job_class, k.args
    FROM ROWS FROM (
        unnest(%(queues)s::text::text[]), unnest(%(priorities)s::text::smallint[]),
        unnest(%(run_ats)s::text::timestamptz[]), unnest(%(job_classes)s::text::text[]),
        json_array_elements(%(args)s::json)
    ) WITH ORDINALITY AS k(queue, priority, run_at, job_class, args, n)
    ORDER BY k.n
    RETURNING job_id
)
SELECT array_agg(job_id ORDER BY job_id)::text AS job_ids, now() AS now FROM inserted
"""

# The common batch: every job alike but for its args (one type, queue,
# priority and run_at). The four shared values are bound once, so the server
# parses no column arrays; what comes back is as INSERT_JOBS gives.
INSERT_ALIKE_JOBS: Final = """
WITH inserted AS (
    INSERT INTO que_jobs (queue, priority, run_at, job_class, args)
    SELECT %(queue)s::text, %(priority)s::smallint,
        coalesce(%(run_at)s::timestamptz, now()), %(job_class)s::text, a.args
    FROM json_array_elements(%(args)s::json) WITH ORDINALITY AS a(args, n)
    ORDER BY a.n
    RETURNING job_id
)
SELECT array_agg(job_id ORDER BY job_id)::text AS job_ids, now() AS now FROM inserted
"""

# -- unique jobs (the que-pg extension, version 2) ----------------------------

# A unique job is inserted together with its row in que_unique_keys, which
# names the job holding the key. The job's id is taken from que_jobs' own
# sequence first, so both rows carry it, and the job row is written only if
# the key row was. A second producer inserting the same key while the first
# has not committed waits on the uncommitted key (the unique index), then
# does nothing if the first committed, or inserts if it rolled back: two
# producers never both insert. No row comes back when the key was there.
_NEW_JOB_ID: Final = """
WITH fresh AS (
    SELECT nextval(pg_get_serial_sequence('que_jobs', 'job_id')) AS job_id
), held AS ("""

_INSERT_HELD_JOB: Final = """
), inserted AS (
    INSERT INTO que_jobs (queue, priority, run_at, job_id, job_class, args)
    SELECT %(queue)s::text, %(priority)s::smallint,
           coalesce(%(run_at)s::timestamptz, now()), held.job_id,
           %(job_class)s::text, %(args)s::json
    FROM held
    RETURNING job_id, run_at
)
SELECT job_id, run_at FROM inserted
"""

INSERT_UNIQUE_JOB: Final = (
    _NEW_JOB_ID
    + """
    INSERT INTO que_unique_keys (unique_key, job_id, scope, expires_at)
    SELECT %(unique_key)s::text, fresh.job_id, %(scope)s::text,
           now() + make_interval(secs => %(period)s::float8)
    FROM fresh
    ON CONFLICT (unique_key) DO NOTHING
    RETURNING job_id"""
    + _INSERT_HELD_JOB
)

# The key's holder, read in a statement after INSERT_UNIQUE_JOB found the key
# (a fresh snapshot: it sees what the producer it waited for committed), and
# whether the key is live for its scope. 'active': the job is in que_jobs.
# 'queued': in que_jobs and no session of this database holds its advisory
# lock (the lock any worker, Python, Ruby or Go, takes to run it; see
# JOB_STATS). 'period': not yet expired. No row: the key was purged since.
UNIQUE_KEY_HOLDER: Final = (
    """
SELECT k.job_id,
       CASE WHEN k.scope = 'period' THEN k.expires_at > clock_timestamp()
            ELSE EXISTS (SELECT 1 FROM que_jobs AS j WHERE j.job_id = k.job_id)
                 AND (k.scope = 'active' OR NOT EXISTS (
                     SELECT 1
                     FROM pg_locks AS l
                     WHERE """
    + _JOB_LOCK_HERE
    + """
                       AND """
    + _JOB_LOCK_ID
    + """ = k.job_id
                 ))
       END AS live
FROM que_unique_keys AS k
WHERE k.unique_key = %(unique_key)s::text
"""
)

# A stale key passes to a new job, only if it still names the stale holder
# (%(old_job_id)s): of producers racing to take it over, the first updates
# the row and the others, waiting on its row lock, find another job_id there
# and update nothing (no row back), and look again.
TAKE_OVER_UNIQUE_KEY: Final = (
    _NEW_JOB_ID
    + """
    UPDATE que_unique_keys AS k
    SET job_id = fresh.job_id, scope = %(scope)s::text,
        expires_at = now() + make_interval(secs => %(period)s::float8), created_at = now()
    FROM fresh
    WHERE k.unique_key = %(unique_key)s::text AND k.job_id = %(old_job_id)s::bigint
    RETURNING k.job_id"""
    + _INSERT_HELD_JOB
)

# Stale keys go in small steps: a window of keys after %(after)s in key
# order (an index range scan), of which those whose job has left que_jobs
# ('queued', 'active') or whose period has passed are deleted. The delete
# matches the job_id read too: a key taken over meanwhile names a new job
# and stays. Returns how many went, how many were looked at, and the last
# key looked at (where the next window starts).
PURGE_STALE_UNIQUE_KEYS: Final = """
WITH examined AS (
    SELECT k.unique_key, k.job_id, k.scope, k.expires_at
    FROM que_unique_keys AS k
    WHERE k.unique_key > %(after)s::text
    ORDER BY k.unique_key
    LIMIT %(limit)s
), stale AS (
    SELECT e.unique_key, e.job_id
    FROM examined AS e
    WHERE CASE WHEN e.scope = 'period' THEN e.expires_at <= clock_timestamp()
               ELSE NOT EXISTS (SELECT 1 FROM que_jobs AS j WHERE j.job_id = e.job_id)
          END
), purged AS (
    DELETE FROM que_unique_keys AS d
    USING stale
    WHERE d.unique_key = stale.unique_key AND d.job_id = stale.job_id
    RETURNING d.unique_key
)
SELECT (SELECT count(*) FROM purged) AS purged,
       (SELECT count(*) FROM examined) AS examined,
       (SELECT max(e.unique_key) FROM examined AS e) AS last_key
"""

# -- claim -----------------------------------------------------------------

# Walk the due jobs of one queue in key order, one row per step, trying an
# advisory lock on each until one succeeds. The row is picked inside a
# LIMIT 1 subquery and the lock is called once on the outer level, so the
# function runs exactly once per visited row (never twice through a
# composite expansion, which would leak a re-entrant lock). The outer
# LIMIT 1 stops the recursion at the first locked row.
# The walk's steps, as a WITH item. SKIP_HELD marks where CLAIM_AFTER_JOB
# steps over the job its session still holds: the statement's snapshot still
# shows the row its own delete removes, and the re-entrant lock would succeed
# on it, only for the re-check to find it gone. LOCK_JOB steps over nothing.
_SKIP_HELD: Final = "\n          AND j.job_id IS DISTINCT FROM %(skip)s"
_WALK: Final = """walk AS (
    SELECT first.priority, first.run_at, first.job_id,
           pg_try_advisory_lock(first.job_id) AS locked
    FROM (
        SELECT j.priority, j.run_at, j.job_id
        FROM que_jobs AS j
        WHERE j.queue = %(queue)s AND j.run_at <= now()SKIP_HELD
        ORDER BY j.priority, j.run_at, j.job_id
        LIMIT 1
    ) AS first
  UNION ALL
    SELECT after.priority, after.run_at, after.job_id,
           pg_try_advisory_lock(after.job_id) AS locked
    FROM walk
    CROSS JOIN LATERAL (
        SELECT j.priority, j.run_at, j.job_id
        FROM que_jobs AS j
        WHERE j.queue = %(queue)s AND j.run_at <= now()
          AND (j.priority, j.run_at, j.job_id) > (walk.priority, walk.run_at, walk.job_id)SKIP_HELD
        ORDER BY j.priority, j.run_at, j.job_id
        LIMIT 1
    ) AS after
    WHERE NOT walk.locked
)"""

LOCK_JOB: Final = (
    "WITH RECURSIVE "
    + _WALK.replace("SKIP_HELD", "")
    + """
SELECT priority, run_at, job_id
FROM walk
WHERE locked
LIMIT 1
"""
)

# The walk's snapshot may predate another worker's delete: re-read the row
# by its full key in a fresh statement (a fresh snapshot in autocommit).
# Re-reads return args as text: the worker decodes them itself, so args it
# cannot decode (another producer's bignum, JSON nested thousands deep) fail
# that one job instead of every claim that meets its row.
RECHECK_JOB: Final = """
SELECT queue, priority, run_at, job_id, job_class, args::text AS args, error_count, last_error
FROM que_jobs
WHERE queue = %(queue)s AND priority = %(priority)s
  AND run_at = %(run_at)s AND job_id = %(job_id)s
"""

UNLOCK_JOB: Final = "SELECT pg_advisory_unlock(%(job_id)s) AS unlocked"

# A classic worker's claim on the session it keeps between jobs: the delete
# of the job it just finished (%(done_*)s, its full key; NULLs when none is
# owed) and the walk for the next one, in one statement. The walk steps over
# that job (%(skip)s), whose lock the session still holds. Always one row:
# how many rows the delete removed, and the key locked (NULLs when none).
CLAIM_AFTER_JOB: Final = (
    """WITH RECURSIVE finished AS (
    DELETE FROM que_jobs
    WHERE queue = %(done_queue)s AND priority = %(done_priority)s
      AND run_at = %(done_run_at)s AND job_id = %(done_id)s
    RETURNING job_id
), """
    + _WALK.replace("SKIP_HELD", _SKIP_HELD)
    + """
SELECT (SELECT count(*) FROM finished) AS deleted, next.priority, next.run_at, next.job_id
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT priority, run_at, job_id FROM walk WHERE locked LIMIT 1) AS next
  ON true
"""
)

# RECHECK_JOB in a fresh statement after CLAIM_AFTER_JOB, with the unlock of
# the job finished before it (%(unlock)s, or NULL): that job's delete
# committed with the claim, so the lock can go now. Always one row: the
# unlock's result, then the re-read row (NULLs when it is gone).
RECHECK_JOB_AND_UNLOCK: Final = """
WITH released AS MATERIALIZED (SELECT pg_advisory_unlock(%(unlock)s) AS unlocked)
SELECT r.unlocked, j.queue, j.priority, j.run_at, j.job_id, j.job_class,
       j.args::text AS args, j.error_count, j.last_error
FROM released AS r
LEFT JOIN que_jobs AS j
  ON j.queue = %(queue)s AND j.priority = %(priority)s
 AND j.run_at = %(run_at)s AND j.job_id = %(job_id)s
"""

# PgBouncer mode: the same walk taking transaction-level locks, which share
# the key space of the session locks (a Ruby or Go worker's lock on a job
# still excludes it, and ours excludes theirs). The claim's transaction holds
# them until it ends; they cannot be unlocked one by one.
LOCK_JOB_XACT: Final = LOCK_JOB.replace("pg_try_advisory_lock", "pg_try_advisory_xact_lock")

# The batched engine's claim: the same walk in key order, trying the lock on
# each due row after the key %(after_*)s until %(limit)s are held, as one
# index scan instead of one recursive step per row. The subquery's own LIMIT
# (the window, %(window)s rows) keeps the planner on the ordered index scan
# even when the table's statistics are stale, and fences the subquery, so
# the volatile lock call is never pushed below its ORDER BY: no row is
# locked out of order. The outer LIMIT stops pulling rows, and so taking
# locks, as soon as it has enough. Advisory locks are re-entrant, so the
# locker's own session would lock its jobs in flight a second time:
# %(held)s lists them and the walk steps over them (cast straight to
# bigint[], so the list is read once per statement, not parsed again for
# every row the walk passes). When a window holds
# fewer free jobs than wanted (other sessions hold the rest), CLAIM_WINDOW_END
# gives its last key and the walk goes on after it: a due job is claimed
# however many held jobs stand before it.
# The window of due rows both statements below walk: they must agree on it.
_CLAIM_WINDOW: Final = """
    FROM que_jobs AS j
    WHERE j.queue = %(queue)s AND j.run_at <= now()
      AND (j.priority, j.run_at, j.job_id) > (
          %(after_priority)s::smallint, %(after_run_at)s::text::timestamptz, %(after_id)s::bigint
      )
      AND j.job_id <> ALL (%(held)s::bigint[])
    ORDER BY j.priority, j.run_at, j.job_id
"""

# The walk's tail, after the columns it selects of each row.
_LOCK_WALK: Final = (
    _CLAIM_WINDOW
    + """    LIMIT %(window)s
) AS due
WHERE pg_try_advisory_lock(due.job_id)
LIMIT %(limit)s
"""
)

LOCK_JOBS: Final = (
    """
SELECT due.queue, due.priority, due.run_at, due.job_id
FROM (
    SELECT j.queue, j.priority, j.run_at, j.job_id"""
    + _LOCK_WALK
)

# LOCK_JOBS giving each locked row's key and where that row version lies
# (its ctid), for LOCK_JOBS_NOTED.
_LOCK_JOBS_AT: Final = (
    """
SELECT due.priority, due.run_at, due.job_id, due.ctid
FROM (
    SELECT j.priority, j.run_at, j.job_id, j.ctid"""
    + _LOCK_WALK
)

# The key of the last row of the window LOCK_JOBS walked with the same
# parameters; no row when the window was not full (nothing lies beyond it).
CLAIM_WINDOW_END: Final = (
    """
    SELECT j.priority, j.run_at, j.job_id"""
    + _CLAIM_WINDOW
    + """    OFFSET %(window)s - 1
    LIMIT 1
"""
)

# LOCK_JOBS for the engine's first claim of a turn: one row with the ids it
# locked, and the keys and ctids of those rows noted in session settings, where
# RECHECK_NOTED, sent right behind it in the same pipeline, reads them. The
# re-check must be a later statement (a snapshot taken after the locks), and
# this way it costs no round trip of its own. The array_agg calls all read
# the same rows in the same order, so the arrays line up. When it locked
# fewer than %(limit)s, the row also gives the key of its window's last row
# (as CLAIM_WINDOW_END would, in the same snapshot), or NULLs when the window
# was not full: an engine with nothing more due then learns so without
# another statement. The walk to that row runs only in that case.
LOCK_JOBS_NOTED: Final = (
    """
SELECT noted.priorities, noted.run_ats, noted.ids, window_end.priority AS end_priority,
       window_end.run_at AS end_run_at, window_end.job_id AS end_job_id
FROM (
    SELECT set_config('que.locked_priorities', coalesce(array_agg(l.priority)::text, '{}'), false)
               AS priorities,
           set_config('que.locked_run_ats', coalesce(array_agg(l.run_at)::text, '{}'), false)
               AS run_ats,
           set_config('que.locked_ids', coalesce(array_agg(l.job_id)::text, '{}'), false) AS ids,
           set_config('que.locked_ctids', coalesce(array_agg(l.ctid)::text, '{}'), false)
               AS ctids,
           count(*) AS locked
    FROM ("""
    + _LOCK_JOBS_AT
    + """) AS l
) AS noted
LEFT JOIN LATERAL ("""
    + CLAIM_WINDOW_END.replace("WHERE j.queue", "WHERE noted.locked < %(limit)s AND j.queue")
    + """) AS window_end ON true
"""
)

# The batched statements take their keys as array literals built by the
# engine (one string each, cast in SQL): psycopg would otherwise adapt
# Python lists element by element. Each statement takes the jobs of one
# queue (an engine serving several queues sends one statement per queue).

# Re-read a batch of locked rows by their full keys in one fresh statement.
# One primary-key lookup per row (LIMIT 1 keeps the planner from turning the
# lookups into a scan of the whole queue when its statistics are stale).
RECHECK_JOBS: Final = """
SELECT j.queue, j.priority, j.run_at, j.job_id, j.job_class, j.args::text AS args,
       j.error_count, j.last_error
FROM unnest(
    %(priorities)s::text::smallint[], %(run_ats)s::text::timestamptz[], %(ids)s::text::bigint[]
) AS k(priority, run_at, job_id)
CROSS JOIN LATERAL (
    SELECT r.queue, r.priority, r.run_at, r.job_id, r.job_class, r.args,
           r.error_count, r.last_error
    FROM que_jobs AS r
    WHERE r.queue = %(queue)s AND r.priority = k.priority
      AND r.run_at = k.run_at AND r.job_id = k.job_id
    LIMIT 1
) AS j
"""

# RECHECK_JOBS of the rows LOCK_JOBS_NOTED noted on this session, each read
# straight from the row version the claim locked (a TID scan: no index
# descent per row, the largest part of a re-check's cost; LIMIT 1 keeps it a
# lookup per row, in the claim's order, as in RECHECK_JOBS). A row found there
# has the same key and is still in the table. A row updated since the claim
# has moved, and counts as gone, as it would if its key had changed: the
# engine unlocks it, and it is claimed again. The key must still match: a
# ctid freed by a delete and a vacuum can hold another job's row.
RECHECK_NOTED: Final = (
    RECHECK_JOBS.replace("%(priorities)s", "current_setting('que.locked_priorities')")
    .replace("%(run_ats)s", "current_setting('que.locked_run_ats')")
    .replace("%(ids)s", "current_setting('que.locked_ids')")
    .replace(
        ") AS k(priority, run_at, job_id)",
        ", current_setting('que.locked_ctids')::text::tid[]\n"
        ") AS k(priority, run_at, job_id, row_ctid)",
    )
    .replace("WHERE r.queue", "WHERE r.ctid = k.row_ctid AND r.queue")
)

UNLOCK_JOBS: Final = "SELECT pg_advisory_unlock(id) FROM unnest(%(ids)s::text::bigint[]) AS id"

# The job locks (one bigint key: high half in classid, low half in objid) that
# this session holds: after a failed claim, the locker unlocks those it never
# learnt of.
SESSION_JOB_LOCKS: Final = (
    """
SELECT coalesce(array_agg("""
    + _JOB_LOCK_ID
    + """), '{}')::text AS ids
FROM pg_locks AS l
WHERE """
    + _JOB_LOCK
    + """ AND l.pid = pg_backend_pid()
"""
)

# PgBouncer mode's batched claim (see LOCK_JOB_XACT).
LOCK_JOBS_XACT: Final = LOCK_JOBS.replace("pg_try_advisory_lock", "pg_try_advisory_xact_lock")

# When nothing is due: the earliest scheduled job, to sleep exactly until then.
NEXT_RUN_AT: Final = """
SELECT min(run_at) AS next_run_at
FROM que_jobs
WHERE queue = ANY (%(queues)s::text[]) AND run_at > now()
"""

# -- finish ----------------------------------------------------------------

DELETE_JOB: Final = """
DELETE FROM que_jobs
WHERE queue = %(queue)s AND priority = %(priority)s
  AND run_at = %(run_at)s AND job_id = %(job_id)s
RETURNING job_id
"""

SET_JOB_ERROR: Final = """
UPDATE que_jobs
SET error_count = least(error_count, 2147483646) + 1,
    run_at = now() + make_interval(secs => %(delay)s),
    last_error = %(last_error)s
WHERE queue = %(queue)s AND priority = %(priority)s
  AND run_at = %(run_at)s AND job_id = %(job_id)s
RETURNING error_count, run_at
"""

# A snoozed job runs again later; no failure is counted.
SNOOZE_JOB: Final = """
UPDATE que_jobs
SET run_at = now() + make_interval(secs => %(delay)s)
WHERE queue = %(queue)s AND priority = %(priority)s
  AND run_at = %(run_at)s AND job_id = %(job_id)s
RETURNING run_at
"""

# Dead jobs past a worker's retention go (que_dead_jobs_died_at serves it).
PURGE_EXPIRED_DEAD_JOBS: Final = """
DELETE FROM que_dead_jobs WHERE died_at < now() - make_interval(secs => %(retention)s)
"""

# Batched finishing: many jobs by full key in one statement each.
DELETE_JOBS: Final = """
DELETE FROM que_jobs AS j
USING unnest(
    %(priorities)s::text::smallint[], %(run_ats)s::text::timestamptz[], %(ids)s::text::bigint[]
) AS k(priority, run_at, job_id)
WHERE j.queue = %(queue)s AND j.priority = k.priority
  AND j.run_at = k.run_at AND j.job_id = k.job_id
"""

SET_JOBS_ERROR: Final = """
UPDATE que_jobs AS j
SET error_count = least(j.error_count, 2147483646) + 1,
    run_at = now() + make_interval(secs => k.delay),
    last_error = k.last_error
FROM unnest(
    %(priorities)s::text::smallint[], %(run_ats)s::text::timestamptz[], %(ids)s::text::bigint[],
    %(delays)s::text::float8[], %(messages)s::text[]
) AS k(priority, run_at, job_id, delay, last_error)
WHERE j.queue = %(queue)s AND j.priority = k.priority
  AND j.run_at = k.run_at AND j.job_id = k.job_id
"""

# An explicit transaction inside a pipeline, so that the writes before COMMIT
# are committed before the statements after it run.
BEGIN: Final = "BEGIN"
COMMIT: Final = "COMMIT"

# Sent first in the transaction of a batched claim (LOCK_JOBS and the window
# statements): a table bulk-filled since its last ANALYZE looks small to the
# planner, which then sorts every due row of the queue for each claim (a
# quarter of a second at 500,000 jobs) instead of walking the index in order
# and stopping at the window. With sorting priced out, the walk is the plan.
WALK_IN_INDEX_ORDER: Final = "SET LOCAL enable_sort = off"

# A job's own transaction when its worker was made with synchronous_commit=False:
# its commit (the job's writes with its delete) returns before the WAL is
# flushed; see docs/reliability.md for what a crash can then lose.
ASYNC_COMMIT: Final = "SET LOCAL synchronous_commit = off"

# PgBouncer mode: a job's own transaction nests in the transaction that holds
# its lock, so rolling the job's writes back keeps the lock.
JOB_SAVEPOINT: Final = "SAVEPOINT que_job"
ROLLBACK_TO_JOB_SAVEPOINT: Final = "ROLLBACK TO SAVEPOINT que_job"

# -- stats -----------------------------------------------------------------

# Each job of que_jobs AS j, with held.job_id set when a session of this
# database holds its advisory lock. A bigint advisory lock is shown in
# pg_locks as classid (high 32 bits) and objid (low 32 bits) with objsubid 1;
# locks of other databases are ignored.
_JOBS_AND_LOCKS: Final = (
    """
FROM que_jobs AS j
LEFT JOIN (
    SELECT DISTINCT """
    + _JOB_LOCK_ID
    + """ AS job_id
    FROM pg_locks AS l
    WHERE """
    + _JOB_LOCK_HERE
    + """
) AS held ON held.job_id = j.job_id
"""
)

JOB_STATS: Final = (
    """
SELECT j.queue,
       j.job_class,
       count(*) AS count,
       count(held.job_id) AS count_working,
       count(*) FILTER (WHERE j.error_count > 0) AS count_errored,
       max(j.error_count) AS highest_error_count,
       min(j.run_at) AS oldest_run_at"""
    + _JOBS_AND_LOCKS
    + """GROUP BY j.queue, j.job_class
ORDER BY j.queue, j.job_class
"""
)


# Jobs per (queue, job_class) by state, one snapshot. A job is locked when
# any session of this database holds the advisory lock on its id (Ruby's and
# Go's workers included; see JOB_STATS); ready and scheduled count the
# unlocked jobs due now and later, so ready + scheduled + locked is every
# row. oldest_due_age is the queue's latency: how long the oldest due,
# unlocked job has waited.
QUEUE_STATS: Final = (
    """
SELECT j.queue,
       j.job_class,
       count(*) FILTER (WHERE held.job_id IS NULL AND j.run_at <= now()) AS ready,
       count(*) FILTER (WHERE held.job_id IS NULL AND j.run_at > now()) AS scheduled,
       count(held.job_id) AS locked,
       count(*) FILTER (WHERE j.error_count > 0) AS failed,
       now() - min(j.run_at) FILTER (WHERE held.job_id IS NULL AND j.run_at <= now())
           AS oldest_due_age,
       max(j.error_count) AS highest_error_count,
       min(j.run_at) AS oldest_run_at"""
    + _JOBS_AND_LOCKS
    + """GROUP BY j.queue, j.job_class
ORDER BY j.queue, j.job_class
"""
)

# Dead jobs per (queue, job_class); only run when the extension is installed.
DEAD_JOB_COUNTS: Final = """
SELECT queue, job_class, count(*) AS dead
FROM que_dead_jobs
GROUP BY queue, job_class
"""

# What PostgreSQL knows about que_jobs: the statistics' row estimates, the
# last (auto)vacuum and (auto)analyze, its size, whether autovacuum can run
# (server settings, the table's reloptions), whether the extension is
# installed, and the oldest open transaction of this database that holds an
# xmin (vacuum keeps every row deleted after it began).
TABLE_HEALTH: Final = """
SELECT now() AS checked_at,
       s.n_live_tup,
       s.n_dead_tup,
       s.last_vacuum,
       s.last_autovacuum,
       s.last_analyze,
       s.last_autoanalyze,
       pg_total_relation_size(c.oid) AS total_bytes,
       current_setting('autovacuum') AS autovacuum,
       current_setting('track_counts') AS track_counts,
       c.reloptions::text[] AS reloptions,
       to_regclass('que_dead_jobs') IS NOT NULL AS extension_installed,
       (
           SELECT max(now() - a.xact_start)
           FROM pg_stat_activity AS a
           WHERE a.datname = current_database()
             AND a.backend_type = 'client backend'
             AND a.backend_xmin IS NOT NULL
             AND a.pid <> pg_backend_pid()
       ) AS longest_transaction
FROM pg_class AS c
LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid
WHERE c.oid = 'que_jobs'::regclass
"""

# -- wake-up notifications ---------------------------------------------------

# The channel is que_jobs: the name INSTALL_NOTIFY's pg_notify uses.
LISTEN: Final = "LISTEN que_jobs"
UNLISTEN: Final = "UNLISTEN que_jobs"

# An optional addition to the version 3 table: one NOTIFY per insert
# statement and queue, so idle workers wake at once, whoever enqueued
# (Ruby and Go producers included). The payload is the queue name. It adds
# no column and changes no existing one, so other Que members are unaffected.
INSTALL_NOTIFY: Final = """
CREATE OR REPLACE FUNCTION que_jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $body$
BEGIN
    PERFORM pg_notify('que_jobs', inserted.queue)
    FROM (SELECT DISTINCT queue FROM que_inserted_jobs) AS inserted;
    RETURN NULL;
END
$body$;
DROP TRIGGER IF EXISTS que_jobs_notify ON que_jobs;
CREATE TRIGGER que_jobs_notify
AFTER INSERT ON que_jobs
REFERENCING NEW TABLE AS que_inserted_jobs
FOR EACH STATEMENT EXECUTE FUNCTION que_jobs_notify()
"""

UNINSTALL_NOTIFY: Final = """
DROP TRIGGER IF EXISTS que_jobs_notify ON que_jobs;
DROP FUNCTION IF EXISTS que_jobs_notify()
"""

NOTIFY_INSTALLED: Final = """
SELECT EXISTS (
    SELECT 1 FROM pg_trigger
    WHERE tgname = 'que_jobs_notify' AND tgrelid = to_regclass('que_jobs')
) AS installed
"""

# -- schema ----------------------------------------------------------------

TABLE_EXISTS: Final = "SELECT to_regclass('que_jobs') IS NOT NULL AS present"

TABLE_COMMENT: Final = "SELECT obj_description('que_jobs'::regclass, 'pg_class') AS comment"

# COMMENT does not take parameters; the version is validated as an int and
# rendered by psycopg.sql.Literal in schema.py.
SET_TABLE_COMMENT: Final = "COMMENT ON TABLE que_jobs IS {version}"

# Serialises concurrent migrations. The two-int4 form of the advisory lock
# lives in a key space apart from the bigint job locks (objsubid 2, not 1).
MIGRATION_LOCK: Final = "SELECT pg_advisory_xact_lock(%(namespace)s, %(key)s)"

MIGRATIONS_UP: Final[dict[int, str]] = {
    1: """
CREATE TABLE que_jobs (
    priority    integer     NOT NULL DEFAULT 1,
    run_at      timestamptz NOT NULL DEFAULT now(),
    job_id      bigserial   NOT NULL,
    job_class   text        NOT NULL,
    args        json        NOT NULL DEFAULT '[]'::json,
    error_count integer     NOT NULL DEFAULT 0,
    last_error  text,
    CONSTRAINT que_jobs_pkey PRIMARY KEY (priority, run_at, job_id)
)
""",
    2: "ALTER TABLE que_jobs ALTER COLUMN priority SET DEFAULT 100",
    3: """
ALTER TABLE que_jobs ALTER COLUMN priority TYPE smallint;
ALTER TABLE que_jobs ADD COLUMN queue text NOT NULL DEFAULT '';
ALTER TABLE que_jobs DROP CONSTRAINT que_jobs_pkey;
ALTER TABLE que_jobs ADD CONSTRAINT que_jobs_pkey PRIMARY KEY (queue, priority, run_at, job_id)
""",
}

# MIGRATIONS_DOWN[n] takes a table of version n to version n - 1.
MIGRATIONS_DOWN: Final[dict[int, str]] = {
    1: "DROP TABLE que_jobs",
    2: "ALTER TABLE que_jobs ALTER COLUMN priority SET DEFAULT 1",
    3: """
ALTER TABLE que_jobs DROP CONSTRAINT que_jobs_pkey;
ALTER TABLE que_jobs DROP COLUMN queue;
ALTER TABLE que_jobs ALTER COLUMN priority TYPE integer;
ALTER TABLE que_jobs ADD CONSTRAINT que_jobs_pkey PRIMARY KEY (priority, run_at, job_id)
""",
}

# -- the que-pg extension ------------------------------------------------------

# Tables of this library's own beside que_jobs (dead jobs, cancel requests),
# and autovacuum settings for que_jobs. Ruby que 0.x and Go never read them;
# que_jobs keeps every column, default and key of version 3. The extension's
# version is the comment of que_dead_jobs.
EXTENSION_TABLE_EXISTS: Final = "SELECT to_regclass('que_dead_jobs') IS NOT NULL AS present"

EXTENSION_COMMENT: Final = (
    "SELECT obj_description('que_dead_jobs'::regclass, 'pg_class') AS comment"
)

SET_EXTENSION_COMMENT: Final = "COMMENT ON TABLE que_dead_jobs IS {version}"

# A queue table churns every row it holds: vacuum it after a fixed number of
# dead rows, whatever its size, and without the cost-based pauses.
_QUEUE_AUTOVACUUM: Final = {
    "autovacuum_vacuum_scale_factor": "0",
    "autovacuum_vacuum_threshold": "1000",
    "autovacuum_vacuum_insert_scale_factor": "0",
    "autovacuum_vacuum_insert_threshold": "10000",
    "autovacuum_analyze_scale_factor": "0",
    "autovacuum_analyze_threshold": "5000",
    "autovacuum_vacuum_cost_delay": "0",
}

# The extension's autovacuum settings of que_jobs, for table health to compare.
QUEUE_AUTOVACUUM_SETTINGS: Final = _QUEUE_AUTOVACUUM

EXTENSION_UP: Final[dict[int, str]] = {
    1: """
CREATE TABLE que_dead_jobs (
    priority    smallint    NOT NULL,
    run_at      timestamptz NOT NULL,
    job_id      bigint      NOT NULL,
    job_class   text        NOT NULL,
    args        json        NOT NULL,
    error_count integer     NOT NULL,
    last_error  text,
    queue       text        NOT NULL,
    died_at     timestamptz NOT NULL DEFAULT now(),
    outcome     text        NOT NULL,
    reason      text        NOT NULL,
    CONSTRAINT que_dead_jobs_pkey PRIMARY KEY (job_id),
    CONSTRAINT que_dead_jobs_outcome CHECK (outcome IN ('exhausted', 'discarded', 'cancelled'))
);
CREATE INDEX que_dead_jobs_died_at ON que_dead_jobs (died_at, job_id);
CREATE TABLE que_cancel_requests (
    job_id       bigint      NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT que_cancel_requests_pkey PRIMARY KEY (job_id)
);
ALTER TABLE que_jobs SET ("""
    + ", ".join(f"{name} = {value}" for name, value in _QUEUE_AUTOVACUUM.items())
    + ")",
    # Version 2: unique keys, paused queues, schedule ticks, and an index on
    # que_jobs.job_id (Que v3 has none) so a job is found by its id alone.
    2: """
CREATE INDEX que_jobs_job_id ON que_jobs (job_id);
CREATE TABLE que_unique_keys (
    unique_key text        NOT NULL,
    job_id     bigint      NOT NULL,
    scope      text        NOT NULL,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT que_unique_keys_pkey PRIMARY KEY (unique_key),
    CONSTRAINT que_unique_keys_scope CHECK (scope IN ('queued', 'active', 'period')),
    CONSTRAINT que_unique_keys_expiry CHECK ((scope = 'period') = (expires_at IS NOT NULL))
);
CREATE INDEX que_unique_keys_job_id ON que_unique_keys (job_id);
CREATE TABLE que_paused_queues (
    queue     text        NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT que_paused_queues_pkey PRIMARY KEY (queue)
);
CREATE TABLE que_schedules (
    name        text        NOT NULL,
    last_tick   timestamptz NOT NULL,
    last_job_id bigint,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT que_schedules_pkey PRIMARY KEY (name)
)""",
}

EXTENSION_DOWN: Final[dict[int, str]] = {
    1: """
DROP TABLE que_cancel_requests;
DROP TABLE que_dead_jobs;
ALTER TABLE que_jobs RESET ("""
    + ", ".join(_QUEUE_AUTOVACUUM)
    + ")",
    2: """
DROP TABLE que_schedules;
DROP TABLE que_paused_queues;
DROP TABLE que_unique_keys;
DROP INDEX que_jobs_job_id""",
}

# Move one job from que_jobs to que_dead_jobs by its full key, in one
# statement (one transaction): the job exists in exactly one of the tables.
# %(failed)s is 1 when this move records a failed attempt (error_count + 1,
# and %(last_error)s replaces the old one), 0 otherwise (last_error kept).
# A dead row of the same id (a job retried from the dead before) is replaced.
MOVE_JOB_TO_DEAD: Final = """
WITH moved AS (
    DELETE FROM que_jobs
    WHERE queue = %(queue)s AND priority = %(priority)s
      AND run_at = %(run_at)s AND job_id = %(job_id)s
    RETURNING *
)
INSERT INTO que_dead_jobs AS d (
    priority, run_at, job_id, job_class, args, error_count, last_error, queue, outcome, reason
)
SELECT priority, run_at, job_id, job_class, args,
       least(error_count, 2147483646) + %(failed)s::int,
       coalesce(%(last_error)s::text, last_error), queue, %(outcome)s, %(reason)s
FROM moved
ON CONFLICT (job_id) DO UPDATE
SET priority = excluded.priority, run_at = excluded.run_at, job_class = excluded.job_class,
    args = excluded.args, error_count = excluded.error_count,
    last_error = excluded.last_error, queue = excluded.queue, died_at = now(),
    outcome = excluded.outcome, reason = excluded.reason
RETURNING d.job_id, d.error_count, d.died_at
"""

# Ask the worker running a job to stop it: the request stays in the database
# (a worker on another host, or one started later, finds it) and a NOTIFY on
# que_cancel (payload: the job id) makes a listening worker act at once.
CANCEL_CHANNEL: Final = "que_cancel"
REQUEST_CANCEL: Final = """
WITH requested AS (
    INSERT INTO que_cancel_requests (job_id) VALUES (%(job_id)s)
    ON CONFLICT (job_id) DO UPDATE SET requested_at = que_cancel_requests.requested_at
    RETURNING job_id
)
SELECT pg_notify('que_cancel', job_id::text) FROM requested
"""

# Cancel requests of the jobs a worker runs; the requests of jobs it finished.
CANCEL_REQUESTED: Final = """
SELECT job_id FROM que_cancel_requests WHERE job_id = ANY (%(ids)s::bigint[])
"""
FORGET_CANCEL_REQUESTS: Final = """
DELETE FROM que_cancel_requests WHERE job_id = ANY (%(ids)s::bigint[])
"""
LISTEN_CANCEL: Final = "LISTEN que_cancel"
UNLISTEN_CANCEL: Final = "UNLISTEN que_cancel"
# -- managing jobs -----------------------------------------------------------------

# Inspecting and acting on jobs by id (que jobs ..., que dead ...). An action
# on a job in que_jobs follows the protocol in one transaction: try the job's
# transaction-level advisory lock (which excludes Python, Ruby and Go workers
# alike, and behind PgBouncer too), re-read the row, write by its full key,
# commit (which unlocks). The listings take their filters as parameters that
# are NULL (or false) when unused: run unprepared, each is planned with its
# values, so an unused filter folds away and the planner sees only the rest.
# Que v3 has no index on job_id alone: a lookup by id scans que_jobs.

_JOB_COLUMNS: Final = """j.queue, j.priority, j.run_at, j.job_id, j.job_class,
       j.args::text AS args, j.error_count, j.last_error"""

# The job ids of this database's bigint advisory locks (held by any session:
# Python, Ruby or Go workers), as an array computed once per statement.
_HELD_JOB_IDS: Final = (
    """ARRAY(
    SELECT """
    + _JOB_LOCK_ID
    + """
    FROM pg_locks AS l
    WHERE """
    + _JOB_LOCK_HERE
    + """
)"""
)

# json cannot become jsonb when it holds \u0000 or a lone surrogate escape
# (text never written by que, but Ruby or Go producers may): such args never
# match args_contain instead of failing the whole listing.
_ARGS_CONTAIN: Final = r"""
  AND (%(args_contain)s::text IS NULL OR CASE
      WHEN j.args::text ~* '(^|[^\\])(\\\\)*\\u(0000|d[89a-f])' THEN false
      ELSE j.args::jsonb @> %(args_contain)s::jsonb
  END)"""

# One page of que_jobs in primary-key order, after the key of %(after_*)s:
# with a queue, an index range scan of que_jobs_pkey that stops at %(limit)s.
LIST_JOBS: Final = (
    "SELECT "
    + _JOB_COLUMNS
    + ",\n       j.job_id = ANY ("
    + _HELD_JOB_IDS
    + """) AS locked
FROM que_jobs AS j
WHERE (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
  AND (%(type)s::text IS NULL OR j.job_class = %(type)s::text)
  AND (NOT %(ready)s::bool OR (j.run_at <= now() AND j.job_id <> ALL ("""
    + _HELD_JOB_IDS
    + """)))
  AND (NOT %(scheduled)s::bool OR j.run_at > now())
  AND (NOT %(failed)s::bool OR j.error_count > 0)
  AND (NOT %(locked)s::bool OR j.job_id = ANY ("""
    + _HELD_JOB_IDS
    + """))
  AND (%(older_than)s::float8 IS NULL
       OR j.run_at < now() - make_interval(secs => %(older_than)s::float8))"""
    + _ARGS_CONTAIN
    + """
  AND (%(after_id)s::bigint IS NULL OR (j.queue, j.priority, j.run_at, j.job_id) > (
      %(after_queue)s::text, %(after_priority)s::smallint,
      %(after_run_at)s::timestamptz, %(after_id)s::bigint
  ))
ORDER BY j.queue, j.priority, j.run_at, j.job_id
LIMIT %(limit)s
"""
)

GET_JOB: Final = (
    "SELECT "
    + _JOB_COLUMNS
    + ",\n       j.job_id = ANY ("
    + _HELD_JOB_IDS
    + """) AS locked
FROM que_jobs AS j
WHERE j.job_id = %(job_id)s
"""
)

# The job's lock for the rest of the transaction, if no one holds it.
TRY_LOCK_JOB_XACT: Final = "SELECT pg_try_advisory_xact_lock(%(job_id)s) AS locked"

# Wait for the job's lock, up to the transaction's lock_timeout.
WAIT_LOCK_JOB_XACT: Final = "SELECT pg_advisory_xact_lock(%(job_id)s)"

# SET LOCAL takes no parameters; set_config(..., true) is the same thing.
SET_LOCAL_LOCK_TIMEOUT: Final = "SELECT set_config('lock_timeout', %(timeout)s, true)"

_BY_FULL_KEY: Final = """
WHERE j.queue = %(queue)s AND j.priority = %(priority)s
  AND j.run_at = %(run_at)s AND j.job_id = %(job_id)s
RETURNING """

RETRY_JOB: Final = "UPDATE que_jobs AS j SET run_at = now()" + _BY_FULL_KEY + _JOB_COLUMNS

RESCHEDULE_JOB: Final = (
    "UPDATE que_jobs AS j SET run_at = %(new_run_at)s" + _BY_FULL_KEY + _JOB_COLUMNS
)

SET_JOB_PRIORITY: Final = (
    "UPDATE que_jobs AS j SET priority = %(new_priority)s" + _BY_FULL_KEY + _JOB_COLUMNS
)

DELETE_JOB_BY_KEY: Final = "DELETE FROM que_jobs AS j" + _BY_FULL_KEY + "j.job_id"

# The keys of the failed jobs to retry, read once; they are then locked and
# written in small transactions (a transaction holding thousands of advisory
# locks would fill the server's lock table).
FAILED_JOB_KEYS: Final = """
SELECT j.queue, j.priority, j.run_at, j.job_id
FROM que_jobs AS j
WHERE j.error_count > 0
  AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
  AND (%(type)s::text IS NULL OR j.job_class = %(type)s::text)
ORDER BY j.queue, j.priority, j.run_at, j.job_id
"""

# Of the given ids, the ones whose lock this transaction now holds.
TRY_LOCK_JOBS_XACT: Final = """
SELECT k.job_id
FROM unnest(%(ids)s::bigint[]) AS k(job_id)
WHERE pg_try_advisory_xact_lock(k.job_id)
"""

# In a statement after the locks were taken: rows a worker changed between
# FAILED_JOB_KEYS and the lock no longer match their key and are left alone.
RETRY_JOBS_BY_KEY: Final = """
UPDATE que_jobs AS j
SET run_at = now()
FROM unnest(
    %(queues)s::text[], %(priorities)s::smallint[], %(run_ats)s::timestamptz[], %(ids)s::bigint[]
) AS k(queue, priority, run_at, job_id)
WHERE j.queue = k.queue AND j.priority = k.priority
  AND j.run_at = k.run_at AND j.job_id = k.job_id
  AND j.error_count > 0
"""

# -- dead jobs (the que-pg extension) ----------------------------------------------

_DEAD_COLUMNS: Final = """d.queue, d.priority, d.run_at, d.job_id, d.job_class,
       d.args::text AS args, d.error_count, d.last_error, d.died_at, d.outcome, d.reason"""

_DEAD_FILTERS: Final = """
  AND (%(queue)s::text IS NULL OR d.queue = %(queue)s::text)
  AND (%(type)s::text IS NULL OR d.job_class = %(type)s::text)
  AND (%(outcome)s::text IS NULL OR d.outcome = %(outcome)s::text)"""

# Newest first, on the index que_dead_jobs_died_at read backwards.
LIST_DEAD_JOBS: Final = (
    "SELECT "
    + _DEAD_COLUMNS
    + """
FROM que_dead_jobs AS d
WHERE (%(after_id)s::bigint IS NULL OR (d.died_at, d.job_id) < (
      %(after_died_at)s::timestamptz, %(after_id)s::bigint
  ))"""
    + _DEAD_FILTERS
    + """
ORDER BY d.died_at DESC, d.job_id DESC
LIMIT %(limit)s
"""
)

GET_DEAD_JOB: Final = (
    "SELECT " + _DEAD_COLUMNS + "\nFROM que_dead_jobs AS d WHERE d.job_id = %(job_id)s"
)

# Back to que_jobs in one statement: the same id, due now, its attempts
# given back (error_count 0), last_error kept. A cancel request left for the
# id goes too, or the job's next worker would cancel it at once.
_REVIVE: Final = """
), cleared AS (
    DELETE FROM que_cancel_requests AS c USING moved WHERE c.job_id = moved.job_id
)
INSERT INTO que_jobs AS j (
    priority, run_at, job_id, job_class, args, error_count, last_error, queue
)
SELECT priority, now(), job_id, job_class, args, 0, last_error, queue
FROM moved
"""

RETRY_DEAD_JOB: Final = (
    """
WITH moved AS (
    DELETE FROM que_dead_jobs AS d WHERE d.job_id = %(job_id)s RETURNING d.*"""
    + _REVIVE
    + "RETURNING "
    + _JOB_COLUMNS
)

RETRY_DEAD_JOBS: Final = (
    """
WITH moved AS (
    DELETE FROM que_dead_jobs AS d WHERE true"""
    + _DEAD_FILTERS
    + "\n    RETURNING d.*"
    + _REVIVE
)

PURGE_DEAD_JOBS: Final = (
    """
DELETE FROM que_dead_jobs AS d
WHERE (%(older_than)s::float8 IS NULL
       OR d.died_at < now() - make_interval(secs => %(older_than)s::float8))"""
    + _DEAD_FILTERS
)

# -- schedules (extension version 2) --------------------------------------------

# The leader of a set of schedules holds this session lock; two int4 keys
# are a key space apart from the bigint keys of job locks.
TRY_LEAD_SCHEDULES: Final = "SELECT pg_try_advisory_lock(%(space)s, %(key)s) AS leading"

STOP_LEADING_SCHEDULES: Final = "SELECT pg_advisory_unlock(%(space)s, %(key)s) AS unlocked"

SCHEDULE_TICKS: Final = """
SELECT name, last_tick, last_job_id, updated_at
FROM que_schedules
WHERE %(names)s::text[] IS NULL OR name = ANY(%(names)s::text[])
ORDER BY name
"""

# A schedule seen for the first time starts from its latest tick, without
# enqueueing it: only ticks after that are due.
START_SCHEDULE: Final = """
INSERT INTO que_schedules (name, last_tick) VALUES (%(name)s, %(tick)s)
ON CONFLICT (name) DO NOTHING
"""

# Record a tick and insert its job in one statement: the job is written only
# when the tick is later than the one recorded, so however many processes
# try the same tick, one job is enqueued for it. The job's run_at is the tick.
ENQUEUE_TICK: Final = """
WITH new_job AS (
    SELECT nextval(pg_get_serial_sequence('que_jobs', 'job_id')) AS job_id
), tick AS (
    INSERT INTO que_schedules AS s (name, last_tick, last_job_id)
    SELECT %(name)s, %(tick)s, job_id FROM new_job
    ON CONFLICT (name) DO UPDATE
    SET last_tick = excluded.last_tick, last_job_id = excluded.last_job_id, updated_at = now()
    WHERE s.last_tick < excluded.last_tick
    RETURNING last_job_id
)
INSERT INTO que_jobs (job_id, queue, priority, run_at, job_class, args)
SELECT last_job_id, %(queue)s, %(priority)s, %(tick)s, %(job_class)s, %(args)s::json
FROM tick
RETURNING job_id
"""

# The database's clock: every host computes ticks from the same time.
DATABASE_NOW: Final = "SELECT clock_timestamp() AS now"

# The session that leads a set of schedules, if any (for `que schedules`).
SCHEDULE_LEADER: Final = """
SELECT a.pid, a.client_addr::text AS client_addr, a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
  AND l.classid = %(space)s::bigint::oid AND l.objid = (%(key)s::bigint & 4294967295)::oid
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

# -- que.testing: drain and a test's clock --------------------------------------

# The queues that hold jobs, for a drain that works them all.
TESTING_QUEUES: Final = "SELECT DISTINCT queue FROM que_jobs ORDER BY queue"

# The next job a drain of %(queues)s could work, and the seconds until it
# comes due (negative: already due): jobs of other queues, of the paused
# queues %(paused)s and jobs another session holds are left out, since
# letting time pass never makes the drain work them.
TESTING_NEXT_DUE: Final = f"""
SELECT EXTRACT(epoch FROM j.run_at - now())::float8 AS wait, j.job_id, j.queue
FROM que_jobs AS j
WHERE j.queue = ANY(%(queues)s::text[])
  AND NOT j.queue = ANY(%(paused)s::text[])
  AND j.job_id <> ALL({_HELD_JOB_IDS})
ORDER BY j.run_at, j.job_id
LIMIT 1
"""

# Time passing for que_jobs: every job comes due that much sooner.
TESTING_ADVANCE: Final = (
    "UPDATE que_jobs SET run_at = run_at - make_interval(secs => %(seconds)s::float8)"
)
# -- paused queues (extension version 2) -------------------------------------------

# A paused queue is a row of que_paused_queues: Python workers on every host
# read the table (at most once a second) and claim nothing from it; Ruby and
# Go workers never read it. Pausing and resuming NOTIFY on que_pause in the
# same statement, so listening engines re-read at once; the payload is only
# informative (the table is what workers trust), and is left empty for a
# name too long for a NOTIFY.
PAUSE_CHANNEL: Final = "que_pause"
LISTEN_PAUSE: Final = "LISTEN que_pause"
UNLISTEN_PAUSE: Final = "UNLISTEN que_pause"

_PAUSE_NOTIFY: Final = """
SELECT pg_notify(
    'que_pause',
    CASE WHEN octet_length(changed.queue) < 4000 THEN changed.queue ELSE '' END
) FROM changed
"""

# One row when the queue was not paused before, none when it was.
PAUSE_QUEUE: Final = (
    """
WITH changed AS (
    INSERT INTO que_paused_queues (queue) VALUES (%(queue)s)
    ON CONFLICT (queue) DO NOTHING
    RETURNING queue
)"""
    + _PAUSE_NOTIFY
)

# One row when the queue was paused, none when it was not.
RESUME_QUEUE: Final = (
    """
WITH changed AS (
    DELETE FROM que_paused_queues WHERE queue = %(queue)s RETURNING queue
)"""
    + _PAUSE_NOTIFY
)

PAUSED_QUEUES: Final = "SELECT queue, paused_at FROM que_paused_queues ORDER BY queue"

# What a worker checks: the names only.
PAUSED_QUEUE_NAMES: Final = "SELECT queue FROM que_paused_queues"


# -- the dashboard (que web) -------------------------------------------------------

# Rows ever deleted from que_jobs, by every member of the database (Python,
# Ruby, Go): a finished or buried job is a deleted row. Sampled over time it
# gives the throughput chart. None until the statistics know the table.
JOBS_TABLE_ACTIVITY: Final = """
SELECT clock_timestamp() AS sampled_at, s.n_tup_del AS deleted
FROM pg_stat_user_tables AS s
WHERE s.relid = 'que_jobs'::regclass
"""
