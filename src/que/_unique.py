"""Unique jobs without IO: the ``Unique`` spec, its keys, and the purge schedule.

A unique job holds a row of ``que_unique_keys`` (the que-pg extension, version
2) that names the job holding the key. Enqueueing with the same key while that
row is live finds the existing job instead of inserting another. What "live"
means is the spec's scope: 'queued' (the job is in que_jobs and no worker holds
its lock), 'active' (the job is in que_jobs), or 'period' (until a time after
enqueue, whatever becomes of the job). The IO is in ``async_unique``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, NamedTuple

from . import _durations
from ._extension_base import missing_extension_message
from ._jobs import InsertParams
from .errors import InvalidJobError, QueError, SchemaVersionError

# The extension version that holds que_unique_keys.
UNIQUE_EXTENSION_VERSION = 2

# A key lives in a btree index (at most about 2.7 kB per entry); keys are
# names, not documents.
MAX_KEY_BYTES = 1000

# How many times one enqueue tries to insert, or take over a stale key, when
# other producers keep changing the key row under it.
MAX_UNIQUE_ATTEMPTS = 10

Scope = Literal["queued", "active", "period"]


@dataclass(frozen=True)
class Unique:
    """How ``enqueue(job, unique=...)`` keeps a job unique.

    ``key``: the key that makes jobs the same; by default the job's type and a
    digest of its args, so the same call with the same args is one job.
    ``scope``: while the key holds. 'active' (the default): until the job is
    deleted (done, or moved to the dead jobs). 'queued': until a worker claims
    it (holds its lock; the batched engine claims a little ahead of running),
    so one more may be queued while one runs.
    ``period`` (seconds or a timedelta): the key holds for that long after the
    enqueue that took it, whatever happens to the job; ``scope`` is then
    'period'.

    >>> Unique().scope_name, Unique(period=60).scope_name, Unique(period=60).period_seconds
    ('active', 'period', 60.0)
    >>> Unique(scope="running")
    Traceback (most recent call last):
    ...
    ValueError: Unique scope must be 'queued' or 'active', not 'running' (give period= for a period)
    """

    key: str | None = None
    scope: Literal["queued", "active"] = "active"
    period: float | timedelta | None = None

    def __post_init__(self) -> None:
        if self.key is not None:
            check_key(self.key)
        if self.scope not in ("queued", "active"):
            raise ValueError(
                f"Unique scope must be 'queued' or 'active', not {self.scope!r} "
                "(give period= for a period)"
            )
        if self.period is not None:
            _period_seconds(self.period)

    @property
    def scope_name(self) -> Scope:
        """The scope stored with the key: 'period' when a period is given."""
        return "period" if self.period is not None else self.scope

    @property
    def period_seconds(self) -> float | None:
        return None if self.period is None else _period_seconds(self.period)


def _period_seconds(value: object) -> float:
    return _durations.seconds(value, "Unique period", allow_zero=False, maximum=3.2e9)


def as_unique(value: object) -> Unique | None:
    """The spec an ``enqueue(unique=...)`` argument stands for: True is ``Unique()``.

    >>> as_unique(True), as_unique(None)
    (Unique(key=None, scope='active', period=None), None)
    """
    if value is None or value is False:
        return None
    if value is True:
        return Unique()
    if isinstance(value, Unique):
        return value
    raise TypeError(f"unique must be a que.Unique, True or None, not {type(value).__name__}")


def check_key(key: object) -> str:
    """A given unique key: a non-empty str PostgreSQL can store, of at most MAX_KEY_BYTES."""
    if not isinstance(key, str):
        raise InvalidJobError(f"unique key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidJobError("unique key must not be empty")
    if "\x00" in key:
        raise InvalidJobError("unique key contains a NUL character, which PostgreSQL cannot store")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidJobError(f"unique key is not valid Unicode text: {exc}") from exc
    if size > MAX_KEY_BYTES:
        raise InvalidJobError(
            f"unique key is {size} bytes long; at most {MAX_KEY_BYTES} are allowed "
            f"(key starts {key[:40]!r})"
        )
    return key


def default_key(job_class: str, args_json: str) -> str:
    """The key of a job that gives none: its type and a SHA-256 digest of its
    args as canonical JSON (sorted keys, no spaces), so args equal as JSON
    make the same key however they were written.

    >>> default_key("Mail", '{"b": 1, "a": [2]}') == default_key("Mail", '{"a":[2],"b":1}')
    True
    >>> default_key("Mail", "[1]")[:12]
    'Mail:080a9ed'
    """
    canonical = json.dumps(
        json.loads(args_json), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    import hashlib  # here, not at the top: OpenSSL's hashlib adds 0.6 MB to every worker

    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    key = f"{job_class}:{digest}"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidJobError(
            f"job type {job_class[:40]!r}... is too long for a default unique key; "
            "give Unique(key=...)"
        )
    return key


def key_for(spec: Unique, params: InsertParams) -> str:
    """The key a job enqueued with ``spec`` holds."""
    return spec.key if spec.key is not None else default_key(params.job_class, params.args)


def unique_params(spec: Unique, key: str, params: InsertParams) -> dict[str, Any]:
    """The parameters of the unique statements for one job."""
    return {
        **params.as_params(),
        "unique_key": key,
        "scope": spec.scope_name,
        "period": spec.period_seconds,
    }


def check_extension(extension_version: int) -> None:
    """Refuse unique jobs on a database without que_unique_keys."""
    if extension_version < UNIQUE_EXTENSION_VERSION:
        raise SchemaVersionError(missing_extension_message("unique jobs", UNIQUE_EXTENSION_VERSION))


class Found(NamedTuple):
    """What one unique enqueue settled on: the job holding the key, and whether
    this call inserted it."""

    job_id: int
    run_at: Any
    inserted: bool


def attempts_error(key: str) -> QueError:
    return QueError(
        f"could not enqueue the unique job with key {key!r} after {MAX_UNIQUE_ATTEMPTS} "
        "attempts: other producers kept changing its key; try again"
    )


# How often a client's workers remove stale unique keys; how many keys one
# statement looks at, and how many statements one purge runs at most. A purge
# walks the keys in key order from where the last one stopped, so every key is
# looked at in turn however many there are, and no purge runs long.
UNIQUE_PURGE_PERIOD = 60.0
UNIQUE_PURGE_WINDOW = 1000
UNIQUE_PURGE_WINDOWS = 20


class UniquePurge:
    """When a client's workers next remove stale unique keys, and where the
    walk over the keys stands. One per client, shared by its workers and
    engines (of any thread), so they purge once per period between them.

    >>> purge = UniquePurge(period=60)
    >>> purge.ready(0.0), purge.ready(30.0), purge.ready(61.0)
    (True, False, True)
    >>> purge.advance(examined=1000, last_key="k", window=1000), purge.after
    (True, 'k')
    >>> purge.advance(examined=3, last_key="z", window=1000), purge.after
    (False, '')
    """

    def __init__(self, period: float = UNIQUE_PURGE_PERIOD) -> None:
        self.period = period
        self.after = ""  # the walk starts after this key ('' before every key)
        self._due = 0.0  # monotonic time; the first purge comes at once
        self._lock = threading.Lock()

    def ready(self, now: float) -> bool:
        with self._lock:
            if now < self._due:
                return False
            self._due = now + self.period
            return True

    def advance(self, *, examined: int, last_key: str | None, window: int) -> bool:
        """Move the walk past a window; whether keys are left after it (a
        window not full reached the end, and the next walk starts over)."""
        if examined < window or last_key is None:
            self.after = ""
            return False
        self.after = last_key
        return True


def unique_purge_due(extension_version: int, purge: UniquePurge, now: float) -> bool:
    """Whether a worker should purge stale unique keys now (only where the
    extension has que_unique_keys)."""
    return extension_version >= UNIQUE_EXTENSION_VERSION and purge.ready(now)
