"""Pure logic shared by the sync and async sides: validating new jobs and decoding rows.

Nothing here does IO, so both clients run the very same checks and produce
the very same rows.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .errors import InvalidJobError, MissingTypeError

SMALLINT_MIN = -32768
SMALLINT_MAX = 32767
DEFAULT_PRIORITY = 100

# Compact JSON as Ruby and Go write it; NaN and Infinity are not JSON.
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class InsertParams(NamedTuple):
    """The validated column values of one new job, ready to bind."""

    queue: str
    priority: int
    run_at: datetime | None
    job_class: str
    args: str

    def as_params(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "priority": self.priority,
            "run_at": self.run_at,
            "job_class": self.job_class,
            "args": self.args,
        }


def insert_params(
    job_type: object, args: object, queue: object, priority: object, run_at: object
) -> InsertParams:
    """Validate a new job's fields; raise InvalidJobError naming the bad one."""
    return InsertParams(*check_fields(job_type, queue, priority, run_at), encode_args(args))


def check_fields(
    job_type: object, queue: object, priority: object, run_at: object
) -> tuple[str, int, datetime | None, str]:
    """A new job's fields other than args, validated: (queue, priority, run_at, type)."""
    if job_type is None or job_type == "":
        raise MissingTypeError()
    return _text("queue", queue), _priority(priority), _run_at(run_at), _text("type", job_type)


def encode_args(args: object) -> str:
    """JSON text for the args column.

    Any JSON-serialisable value is accepted (a list is the convention Ruby and
    Go use); ``bytes`` that already hold valid JSON are stored as they are.
    """
    if isinstance(args, bytes | bytearray | memoryview):
        try:
            text = bytes(args).decode("utf-8")
            json.loads(text, parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidJobError(f"args bytes are not valid UTF-8 JSON: {exc}") from exc
        _reject_nul("args", text)
        return text
    try:
        text = _ENCODER.encode(args)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidJobError(f"args are not JSON-serialisable: {exc}") from exc
    if not text.isascii():
        _reject_nul("args", text)  # lone surrogates cannot be encoded (JSON escapes NUL)
    return text


def encode_all_args(values: list[object]) -> str:
    """One JSON array holding every job's args, as ``encode_args`` gives each.

    A batch is encoded in one call of the encoder (setting it up costs more
    than encoding a small args list); a batch the encoder refuses (bytes
    among the args, say) is encoded job by job, which takes bytes as they
    are and names what was wrong with the others.

    >>> encode_all_args([[1, "a"], {"k": None}, b'[2]'])
    '[[1,"a"],{"k":null},[2]]'
    """
    try:
        text = _ENCODER.encode(values)
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        if text.isascii() or _encodable(text):
            return text
    encoded = (_encode_in_batch(index, value) for index, value in enumerate(values))
    return "[" + ",".join(encoded) + "]"


def _encode_in_batch(index: int, value: object) -> str:
    try:
        return encode_args(value)
    except InvalidJobError as exc:
        name_place(exc, index)
        raise


def name_place(exc: InvalidJobError, index: int) -> None:
    """Put the place of the failing job in a batch in front of its error's
    message, so the caller of enqueue_many knows which of its jobs to fix
    (the error keeps its type and its cause)."""
    exc.args = (f"jobs[{index}]: {exc}",)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _text(field: str, value: object) -> str:
    if type(value) is str and value in _CHECKED_TEXT:
        return value  # the same type and queue names come by again and again
    if not isinstance(value, str):
        raise InvalidJobError(f"job {field} must be a str, not {type(value).__name__}")
    _reject_nul(f"job {field}", value)
    if len(_CHECKED_TEXT) < _CHECKED_TEXT_MAX:
        _CHECKED_TEXT.add(value)
    return value


# Type and queue names already found valid (a bounded set: names repeat).
_CHECKED_TEXT: set[str] = set()
_CHECKED_TEXT_MAX = 10_000


def _reject_nul(field: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidJobError(f"{field} contains a NUL character, which PostgreSQL cannot store")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidJobError(f"{field} is not valid Unicode text: {exc}") from exc


def _priority(value: object) -> int:
    if value is None:
        return DEFAULT_PRIORITY
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidJobError(f"job priority must be an int, not {type(value).__name__}")
    if not SMALLINT_MIN <= value <= SMALLINT_MAX:
        raise InvalidJobError(
            f"job priority {value} is out of range ({SMALLINT_MIN} to {SMALLINT_MAX})"
        )
    return value


def _run_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidJobError(f"job run_at must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidJobError(
            f"job run_at {value.isoformat()} is naive; give it a timezone "
            "(for example datetime.now(timezone.utc))"
        )
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise InvalidJobError(
            f"job run_at {value.isoformat()} is outside the years 1 to 9999 in UTC, "
            "which no worker could read back"
        ) from None
    return value


def decode_args(text: str) -> tuple[Any, str | None]:
    """A job's args from the JSON text of its row, and why they could not be
    decoded (None when they could; the raw text stands in for them then).

    >>> decode_args('[1, "a"]'), decode_args("[" + "9" * 5000 + "]")[1][:30]
    (([1, 'a'], None), 'ValueError: Exceeds the limit ')
    """
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return text, f"{type(exc).__name__}: {exc}"


def check_queue(queue: object) -> str:
    """A queue name as given to lock_job or a worker, or InvalidJobError."""
    return _text("queue", queue)


def check_priority(value: object) -> int:
    """A job priority as enqueue accepts it (None is not one here), or InvalidJobError."""
    if value is None:
        raise InvalidJobError("job priority must be an int, not None")
    return _priority(value)


def check_run_at(value: object) -> datetime:
    """A timezone-aware run_at as enqueue accepts it (None is not one here), or InvalidJobError."""
    checked = _run_at(value)
    if checked is None:
        raise InvalidJobError("job run_at must be a datetime, not None")
    return checked


def text_array(values: list[str]) -> str:
    r"""A PostgreSQL text[] literal; names repeat, so each is quoted once.

    >>> print(text_array(["a", 'say "hi"', "a", "back\\slash"]))
    {"a","say \"hi\"","a","back\\slash"}
    """
    quoted: dict[str, str] = {}
    for value in values:
        if value not in quoted:
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            quoted[value] = f'"{escaped}"'
    return "{" + ",".join(quoted[v] for v in values) + "}"


def id_array(ids: list[int]) -> str:
    """A PostgreSQL array literal of ids, bound as text and cast to bigint[] in SQL.

    >>> id_array([3, 1, 2]), id_array([])
    ('{3,1,2}', '{}')
    """
    return "{" + ",".join(map(str, ids)) + "}"


def parse_id_array(text: str) -> list[int]:
    """The ids of a PostgreSQL bigint[] in its text form.

    >>> parse_id_array("{3,1,2}"), parse_id_array("{}")
    ([3, 1, 2], [])
    """
    inner = text[1:-1]
    return [int(part) for part in inner.split(",")] if inner else []
