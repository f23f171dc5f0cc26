"""What Client and AsyncClient share: settings, job bookkeeping, and row handling.

The IO methods of the two clients are short shells around these helpers, so
both validate, encode and decode in exactly the same way.
"""

from __future__ import annotations

import threading
from collections import ChainMap
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Generic, NamedTuple, TypeVar

from . import sql
from ._jobs import (
    InsertParams,
    check_fields,
    encode_all_args,
    insert_params,
    name_place,
    parse_id_array,
    text_array,
)
from ._registry import registry
from ._unique import Found, UniquePurge
from .backoff import Backoff, RetryInterval
from .connect import Connector, get_connector_from_conninfo
from .errors import InvalidJobError, LockAttemptsError, QueError
from .job import BaseJob, JobStats, stats_from_row

MAX_LOCK_ATTEMPTS = 10

J = TypeVar("J", bound=BaseJob)
AnyJob = TypeVar("AnyJob", bound=BaseJob)
T = TypeVar("T")


class ClientBase(Generic[J]):
    """Settings and the registry of claimed jobs, for one client of either side."""

    def __init__(
        self,
        *,
        min_connections: int,
        max_connections: int,
        retry_intervals: dict[str, RetryInterval] | None,
    ) -> None:
        if min_connections < 0 or max_connections < max(1, min_connections):
            raise ValueError(
                "need 0 <= min_connections <= max_connections and max_connections >= 1, "
                f"got {min_connections} and {max_connections}"
            )
        # A @que.job's retry= applies to every client; the client's own setting wins.
        self.backoff = Backoff(ChainMap(dict(retry_intervals or {}), registry.retry_intervals))
        self._jobs: set[J] = set()
        self._jobs_lock = threading.Lock()
        self._closed = False
        self._target = ""
        # When this client's workers next remove stale unique keys (shared by all).
        self.unique_purge = UniquePurge()

    @property
    def target(self) -> str:
        """Where this client connects, without the password."""
        return self._target

    def _track(self, job: J) -> J:
        with self._jobs_lock:
            self._jobs.add(job)
        return job

    def _untrack(self, job: J) -> None:
        with self._jobs_lock:
            self._jobs.discard(job)

    def _held_jobs(self) -> list[J]:
        with self._jobs_lock:
            return list(self._jobs)


def as_connector(source: object, client: str, pool: str) -> Connector:
    """The Connector for a client's ``source`` that is not a pool."""
    if isinstance(source, Connector):
        return source
    if not isinstance(source, str):
        raise TypeError(
            f"{client} takes a connection string, a que.Connector or a {pool}, "
            f"not {type(source).__name__}"
        )
    return get_connector_from_conninfo(source)


def job_params(job: object) -> InsertParams:
    """Validated insert parameters of a job to enqueue."""
    if not isinstance(job, BaseJob):
        raise TypeError(f"enqueue takes a que.Job, not {type(job).__name__}")
    return insert_params(job.type, job.args, job.queue, job.priority, job.run_at)


class BulkInsert(NamedTuple):
    """A validated batch of new jobs: the statement that inserts it, its
    parameters, and what each job is given."""

    statement: str
    params: dict[str, Any]
    priorities: list[int]
    run_ats: list[datetime | None]


def bulk_insert(jobs: list[Any]) -> BulkInsert:
    """Validate every job of a batch (raising before anything is sent) and bind them.

    The args go as one JSON array. A batch of jobs alike in all else binds
    the shared fields once (INSERT_ALIKE_JOBS); any other batch binds each
    column as an array literal (INSERT_JOBS).
    """
    fields = _each_in_batch(
        jobs, lambda job: check_fields(job.type, job.queue, job.priority, job.run_at)
    )
    args = encode_all_args([job.args for job in jobs])
    columns = zip(*fields, strict=True)
    queues, priorities, run_ats, job_classes = (list(column) for column in columns)
    # Alike means the same instant: aware datetimes in one zone compare (and
    # hash) by wall time alone, so two sides of a DST fold would pass as one.
    instants = {None if r is None else r.astimezone(timezone.utc) for r in run_ats}
    if len(instants) == 1 and len(set(zip(queues, priorities, job_classes, strict=True))) == 1:
        alike = {
            "queue": queues[0],
            "priority": priorities[0],
            "run_at": instants.pop(),
            "job_class": job_classes[0],
        }
        return BulkInsert(sql.INSERT_ALIKE_JOBS, {**alike, "args": args}, priorities, run_ats)
    params = {
        "queues": text_array(queues),
        "priorities": "{" + ",".join(map(str, priorities)) + "}",
        "run_ats": "{"
        + ",".join("NULL" if r is None else f'"{r.isoformat()}"' for r in run_ats)
        + "}",
        "job_classes": text_array(job_classes),
        "args": args,
    }
    return BulkInsert(sql.INSERT_JOBS, params, priorities, run_ats)


def batch_params(jobs: list[Any]) -> list[InsertParams]:
    """``job_params`` of every job of a batch (the unique path of enqueue_many)."""
    return _each_in_batch(jobs, job_params)


def _each_in_batch(jobs: list[Any], validate: Callable[[Any], T]) -> list[T]:
    """``validate`` of every job of a batch; an error names the job's place."""
    validated = []
    for index, job in enumerate(jobs):
        if not isinstance(job, BaseJob):
            raise TypeError(f"enqueue_many takes que.Jobs; jobs[{index}] is a {type(job).__name__}")
        try:
            validated.append(validate(job))
        except InvalidJobError as exc:
            name_place(exc, index)
            raise
    return validated


def set_all_inserted(jobs: list[Any], bulk: BulkInsert, row: dict[str, Any]) -> None:
    """Record a bulk insert on its jobs: the ids the database gave them in
    order, and the statement's now() where no run_at was given."""
    ids = parse_id_array(row["job_ids"] or "{}")  # NULL when no row was written
    if len(ids) != len(jobs):
        raise QueError(f"enqueue_many wrote {len(ids)} rows for {len(jobs)} jobs")
    for job, job_id, priority, run_at in zip(jobs, ids, bulk.priorities, bulk.run_ats, strict=True):
        job.id = job_id
        job.run_at = row["now"] if run_at is None else run_at
        job.priority = priority
        job.inserted = True


def set_inserted(job: BaseJob, params: InsertParams, row: dict[str, Any]) -> None:
    """Copy what the database assigned to an enqueued job onto it."""
    job.id = row["job_id"]
    job.run_at = row["run_at"]
    job.priority = params.priority
    job.inserted = True


def set_found(job: BaseJob, params: InsertParams, found: Found) -> None:
    """Record a unique enqueue on its job: the row inserted, or the id of the
    job that holds the key (the job's other fields stay as they were given)."""
    if found.inserted:
        set_inserted(job, params, {"job_id": found.job_id, "run_at": found.run_at})
    else:
        job.id = found.job_id
        job.inserted = False


def recheck_key(locked: dict[str, Any], queue: str) -> dict[str, Any]:
    """The full primary key of a row the walk locked, to re-read it."""
    return {**locked, "queue": queue}


def lock_attempts_error(queue: str) -> LockAttemptsError:
    return LockAttemptsError(
        f"could not lock a job in queue {queue!r} after {MAX_LOCK_ATTEMPTS} attempts: "
        "every job found was deleted concurrently; try again"
    )


def stats_rows(rows: list[dict[str, Any]]) -> list[JobStats]:
    return [stats_from_row(row) for row in rows]


def pool_conninfo(pool: Any) -> str:
    """The conninfo of a psycopg pool when it is a plain string ('' when it is computed)."""
    conninfo = pool.conninfo
    return conninfo if isinstance(conninfo, str) else ""


def unlocked(row: dict[str, Any] | None) -> bool:
    """Whether UNLOCK_JOB reported that it released a lock."""
    return row is not None and bool(row["unlocked"])
