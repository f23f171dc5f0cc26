"""What the job-management API of both faces shares, without IO: records,
filter checks, keyset cursors and the messages of refused actions.

Listings page by keyset (the key of the last row seen, in a cursor string)
rather than by OFFSET, so a page deep into millions of rows costs what the
first one costs.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar

from ._jobs import check_queue, decode_args, encode_args
from .errors import InvalidJobError, JobLockedError, JobNotFoundError

STATES = ("ready", "scheduled", "failed", "locked")
OUTCOMES = ("exhausted", "discarded", "cancelled")
DEFAULT_LIMIT = 50
MAX_LIMIT = 10_000

# Jobs are locked and retried this many at a time by retry_failed: one
# transaction holding many thousands of advisory locks fills the lock table.
RETRY_BATCH = 500

CANCELLED_BEFORE_RUN = "cancelled before it ran"

CancelResult = Literal["removed", "requested"]

R = TypeVar("R")


@dataclass(frozen=True)
class JobRecord:
    """A row of que_jobs as management sees it; ``locked`` when some worker
    (Python, Ruby or Go) holds the job's advisory lock: it is running."""

    id: int
    queue: str
    priority: int
    run_at: datetime
    type: str
    args: Any
    error_count: int
    last_error: str | None
    locked: bool


@dataclass(frozen=True)
class DeadJobRecord:
    """A row of que_dead_jobs: a job that will not run again unless retried.

    ``outcome`` is 'exhausted' (out of attempts), 'discarded' (its work
    function gave up on it) or 'cancelled'; ``reason`` says why in words.
    """

    id: int
    queue: str
    priority: int
    run_at: datetime
    type: str
    args: Any
    error_count: int
    last_error: str | None
    died_at: datetime
    outcome: str
    reason: str


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a listing; pass ``next`` as ``after`` for the following
    page (None: this is the last one)."""

    records: tuple[R, ...]
    next: str | None

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)


def job_record(row: Mapping[str, Any], locked: bool | None = None) -> JobRecord:
    """A JobRecord from a row with args as JSON text (args no one can decode
    stay that text)."""
    return JobRecord(**_job_fields(row), locked=bool(row["locked"]) if locked is None else locked)


def dead_record(row: Mapping[str, Any]) -> DeadJobRecord:
    return DeadJobRecord(
        **_job_fields(row), died_at=row["died_at"], outcome=row["outcome"], reason=row["reason"]
    )


def _job_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a que_jobs row, as both records name them."""
    args, _ = decode_args(row["args"])
    return {
        "id": row["job_id"],
        "queue": row["queue"],
        "priority": row["priority"],
        "run_at": row["run_at"],
        "type": row["job_class"],
        "args": args,
        "error_count": row["error_count"],
        "last_error": row["last_error"],
    }


def record_dict(record: JobRecord | DeadJobRecord) -> dict[str, Any]:
    """A record as JSON-ready values (times in ISO 8601), named like its fields."""
    out: dict[str, Any] = {}
    for name in record.__dataclass_fields__:
        value = getattr(record, name)
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


# -- checks ------------------------------------------------------------------------


def check_job_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise TypeError(f"a job id is an int, not {type(job_id).__name__}")
    return job_id


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an int from 1 to {MAX_LIMIT}, not {limit!r}")
    return limit


def _name(field: str, value: object) -> str | None:
    if value is None:
        return None
    try:
        return check_queue(value)
    except InvalidJobError as exc:
        raise ValueError(str(exc).replace("job queue", field)) from None


def _seconds(field: str, value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TypeError(f"{field} is a datetime.timedelta, not {type(value).__name__}")
    if value < timedelta(0):
        raise ValueError(f"{field} must not be negative, not {value}")
    return value.total_seconds()


def check_wait(wait: object) -> float | None:
    """Seconds delete() waits for a running job; None or 0: it does not wait."""
    if wait is None:
        return None
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < 86400:
        raise ValueError(f"wait must be seconds from 0 to 86400, not {wait!r}")
    return float(wait) or None


def lock_timeout(seconds: float) -> str:
    """A lock_timeout setting; at least 1 ms, as 0 would mean no timeout at all.

    >>> lock_timeout(2.5), lock_timeout(0.0001)
    ('2500ms', '1ms')
    """
    return f"{max(1, round(seconds * 1000))}ms"


# \u0000 in JSON text, not preceded by an escaped backslash.
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def list_params(
    *,
    queue: object,
    type: object,
    state: object,
    older_than: object,
    args_contain: object,
    after: object,
    limit: object,
) -> dict[str, Any]:
    """The LIST_JOBS parameters of a jobs.list() call, every filter checked."""
    if state is not None and state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)} (or None), not {state!r}")
    contain = None
    if args_contain is not None:
        try:
            contain = encode_args(args_contain)
        except InvalidJobError as exc:
            raise ValueError(str(exc).replace("args", "args_contain", 1)) from None
        if _NUL_ESCAPE.search(contain):
            # jsonb holds no NUL, so nothing could match: say so instead.
            raise ValueError("args_contain holds a NUL character, which no jsonb value can")
    params: dict[str, Any] = {
        "queue": _name("queue", queue),
        "type": _name("type", type),
        "older_than": _seconds("older_than", older_than),
        "args_contain": contain,
        "limit": check_limit(limit) + 1,  # one more row tells whether a next page exists
    }
    params.update({name: state == name for name in STATES})
    params.update(decode_job_cursor(_cursor(after)))
    return params


def dead_filter_params(*, queue: object, type: object, outcome: object) -> dict[str, Any]:
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)} (or None), not {outcome!r}")
    return {"queue": _name("queue", queue), "type": _name("type", type), "outcome": outcome}


def dead_list_params(
    *, queue: object, type: object, outcome: object, after: object, limit: object
) -> dict[str, Any]:
    params = dead_filter_params(queue=queue, type=type, outcome=outcome)
    params["limit"] = check_limit(limit) + 1
    params.update(decode_dead_cursor(_cursor(after)))
    return params


def purge_params(
    *, older_than: object, queue: object, type: object, outcome: object
) -> dict[str, Any]:
    params = dead_filter_params(queue=queue, type=type, outcome=outcome)
    params["older_than"] = _seconds("older_than", older_than)
    return params


def retry_failed_params(*, queue: object, type: object) -> dict[str, Any]:
    return {"queue": _name("queue", queue), "type": _name("type", type)}


def key_batches(rows: list[dict[str, Any]], size: int = RETRY_BATCH) -> Iterator[dict[str, Any]]:
    """Full keys of que_jobs rows in batches, as RETRY_JOBS_BY_KEY parameters."""
    for start in range(0, len(rows), size):
        batch = rows[start : start + size]
        yield {
            "queues": [row["queue"] for row in batch],
            "priorities": [row["priority"] for row in batch],
            "run_ats": [row["run_at"] for row in batch],
            "ids": [row["job_id"] for row in batch],
        }


def only_ids(batch: dict[str, Any], ids: set[int]) -> dict[str, Any]:
    """The keys of ``batch`` whose id is in ``ids``."""
    keep = [i for i, job_id in enumerate(batch["ids"]) if job_id in ids]
    return {name: [values[i] for i in keep] for name, values in batch.items()}


# -- cursors -----------------------------------------------------------------------

_JOB_CURSOR = "j1."
_DEAD_CURSOR = "d1."


def _cursor(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"after is a cursor string, not {type(value).__name__}")
    return value


def _encode(prefix: str, key: list[Any]) -> str:
    text = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
    return prefix + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(prefix: str, cursor: object, listing: str) -> list[Any]:
    if not isinstance(cursor, str):
        raise TypeError(f"after is a cursor string from {listing}, not {type(cursor).__name__}")
    bad = ValueError(f"after={cursor[:80]!r} is not a cursor from {listing}")
    if not cursor.startswith(prefix):
        raise bad
    body = cursor[len(prefix) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        key = json.loads(raw.decode())
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(key, list):
        raise bad
    return key


def _moment(text: object) -> datetime:
    if not isinstance(text, str):
        raise ValueError(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def job_cursor(record: JobRecord) -> str:
    """Where a jobs.list() page ends: the record's primary key."""
    return _encode(
        _JOB_CURSOR, [record.queue, record.priority, record.run_at.isoformat(), record.id]
    )


def decode_job_cursor(cursor: str | None) -> dict[str, Any]:
    """LIST_JOBS' ``after_*`` parameters (all None without a cursor).

    >>> from datetime import timezone
    >>> r = JobRecord(7, "q", 1, datetime(2030, 1, 1, tzinfo=timezone.utc), "T", [], 0, None, False)
    >>> decode_job_cursor(job_cursor(r))["after_id"], decode_job_cursor(None)["after_id"]
    (7, None)
    """
    keys = ("after_queue", "after_priority", "after_run_at", "after_id")
    if cursor is None:
        return dict.fromkeys(keys)
    key = _decode(_JOB_CURSOR, cursor, "jobs.list()")
    try:
        queue, priority, run_at, job_id = key
        if not (isinstance(queue, str) and _is_int(priority) and _is_int(job_id)):
            raise ValueError(key)
        return dict(zip(keys, (queue, priority, _moment(run_at), job_id), strict=True))
    except ValueError:
        raise ValueError(f"after={cursor[:80]!r} is not a cursor from jobs.list()") from None


def dead_cursor(record: DeadJobRecord) -> str:
    """Where a dead.list() page ends: (died_at, id) of its last record."""
    return _encode(_DEAD_CURSOR, [record.died_at.isoformat(), record.id])


def decode_dead_cursor(cursor: str | None) -> dict[str, Any]:
    if cursor is None:
        return {"after_died_at": None, "after_id": None}
    key = _decode(_DEAD_CURSOR, cursor, "dead.list()")
    try:
        died_at, job_id = key
        if not _is_int(job_id):
            raise ValueError(key)
        return {"after_died_at": _moment(died_at), "after_id": job_id}
    except ValueError:
        raise ValueError(f"after={cursor[:80]!r} is not a cursor from dead.list()") from None


def page(records: list[R], limit: int, cursor: Any) -> Page[R]:
    """A page from up to ``limit + 1`` records: the extra one only says there is more."""
    if len(records) > limit:
        kept = records[:limit]
        return Page(tuple(kept), cursor(kept[-1]))
    return Page(tuple(records), None)


# -- messages ----------------------------------------------------------------------


def locked_error(job_id: int, action: str, hint: str = "") -> JobLockedError:
    return JobLockedError(
        f"job {job_id} is being worked right now (a worker holds its lock), so it was not "
        f"{action}; try again when it finishes{hint}",
        job_id,
    )


def not_found_error(job_id: int, dead: Mapping[str, Any] | None = None) -> JobNotFoundError:
    """Why ``job_id`` is not in que_jobs; ``dead`` is its que_dead_jobs row, if any."""
    if dead is not None:
        return JobNotFoundError(
            f"job {job_id} is not in que_jobs: it is in que_dead_jobs "
            f"({dead['outcome']}: {dead['reason']}); retry it from there",
            job_id,
        )
    return JobNotFoundError(
        f"job {job_id} is not in que_jobs: it was worked and deleted, or never existed",
        job_id,
    )


def dead_not_found_error(job_id: int, in_queue: bool) -> JobNotFoundError:
    where = "it is in que_jobs, waiting to run" if in_queue else "no dead job has that id"
    return JobNotFoundError(f"job {job_id} is not in que_dead_jobs: {where}", job_id)


_EXTENSION_TABLES = ("que_dead_jobs", "que_cancel_requests")


def names_extension_table(message: str) -> bool:
    """Whether an undefined-table error is about a table of the que-pg extension."""
    return any(table in message for table in _EXTENSION_TABLES)
