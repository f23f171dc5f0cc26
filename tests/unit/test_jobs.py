import json
from datetime import datetime, timedelta, timezone

import pytest

from que import InvalidJobError, MissingTypeError
from que._jobs import encode_args, insert_params

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_defaults() -> None:
    params = insert_params("T", [], "", None, None)
    assert (params.queue, params.priority, params.run_at, params.args) == ("", 100, None, "[]")


def test_args_are_compact_json_keeping_unicode() -> None:
    assert encode_args([1, "two", {"k": "v"}]) == '[1,"two",{"k":"v"}]'
    assert json.loads(encode_args({"é": "\u2603"})) == {"é": "\u2603"}


def test_bytes_holding_json_are_stored_as_they_are() -> None:
    assert encode_args(b'[1, "x"]') == '[1, "x"]'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (object(), "not JSON-serialisable"),
        ({1, 2}, "not JSON-serialisable"),
        (float("nan"), "not JSON-serialisable"),
        ([float("inf")], "not JSON-serialisable"),
        (b"{not json", "not valid UTF-8 JSON"),
        (b"\xff\xfe", "not valid UTF-8 JSON"),
        (b"[NaN]", "not valid UTF-8 JSON"),
    ],
)
def test_bad_args_are_rejected(args: object, message: str) -> None:
    with pytest.raises(InvalidJobError, match=message):
        encode_args(args)


@pytest.mark.parametrize("job_type", [None, ""])
def test_missing_type(job_type: object) -> None:
    with pytest.raises(MissingTypeError, match="type must be specified"):
        insert_params(job_type, [], "", None, None)


@pytest.mark.parametrize(
    ("field", "kwargs", "message"),
    [
        ("type", {"job_type": "a\x00b"}, "type contains a NUL"),
        ("type", {"job_type": 5}, "type must be a str"),
        ("queue", {"queue": "q\x00"}, "queue contains a NUL"),
        ("queue", {"queue": None}, "queue must be a str"),
        ("priority", {"priority": 32768}, "priority 32768 is out of range"),
        ("priority", {"priority": -32769}, "priority -32769 is out of range"),
        ("priority", {"priority": 1.5}, "priority must be an int"),
        ("priority", {"priority": True}, "priority must be an int"),
        ("run_at", {"run_at": datetime(2026, 1, 1)}, "is naive"),
        ("run_at", {"run_at": "2026-01-01"}, "run_at must be a datetime"),
        # Year 0 in UTC: PostgreSQL would store it, and no worker could read it back.
        (
            "run_at",
            {"run_at": datetime(1, 1, 1, 2, tzinfo=timezone(timedelta(hours=5)))},
            "outside the years 1 to 9999 in UTC",
        ),
        (
            "run_at",
            {"run_at": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))},
            "outside the years 1 to 9999 in UTC",
        ),
        ("args", {"args": "\ud800"}, "not JSON-serialisable|Unicode"),
    ],
)
def test_bad_fields_name_the_field(field: str, kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {
        "job_type": "T",
        "args": [],
        "queue": "",
        "priority": None,
        "run_at": None,
    }
    values.update(kwargs)
    with pytest.raises(InvalidJobError, match=message):
        insert_params(
            values["job_type"],
            values["args"],
            values["queue"],
            values["priority"],
            values["run_at"],
        )


def test_priority_bounds_are_valid() -> None:
    assert insert_params("T", [], "", -32768, None).priority == -32768
    assert insert_params("T", [], "", 32767, None).priority == 32767
    assert insert_params("T", [], "", 0, None).priority == 0


def test_aware_run_at_in_any_zone_is_kept() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=-7)))
    assert insert_params("T", [], "", None, local).run_at == NOW


def test_bulk_insert_binds_array_literals_and_one_json_array() -> None:
    from que import Job
    from que._client_base import bulk_insert

    bulk = bulk_insert(
        [
            Job(type="A", args=[1], queue='q"1', priority=5, run_at=NOW),
            Job(type="B\\x", args=b'{"k":  2}'),
        ]
    )
    assert bulk.params == {
        "queues": '{"q\\"1",""}',
        "priorities": "{5,100}",
        "run_ats": '{"2026-01-02T03:04:05+00:00",NULL}',
        "job_classes": '{"A","B\\\\x"}',
        "args": '[[1],{"k":  2}]',
    }
    assert bulk.priorities == [5, 100]
    assert bulk.run_ats == [NOW, None]


def test_bulk_insert_binds_shared_fields_once_when_jobs_differ_only_in_args() -> None:
    from que import Job, sql
    from que._client_base import bulk_insert

    alike = bulk_insert([Job(type="A", args=[n], queue="q", run_at=NOW) for n in range(3)])
    assert alike.statement == sql.INSERT_ALIKE_JOBS
    assert alike.params == {
        "queue": "q",
        "priority": 100,
        "run_at": NOW,
        "job_class": "A",
        "args": "[[0],[1],[2]]",
    }
    mixed = bulk_insert([Job(type="A"), Job(type="A", priority=1)])
    assert mixed.statement == sql.INSERT_JOBS
    assert mixed.params["priorities"] == "{100,1}"


def test_bulk_insert_names_the_bad_job_before_anything_is_bound() -> None:
    from que import Job
    from que._client_base import bulk_insert

    with pytest.raises(InvalidJobError, match=r"jobs\[1\]: args are not JSON-serialisable"):
        bulk_insert([Job(type="A", args=[1]), Job(type="B", args=[object()])])
    with pytest.raises(InvalidJobError, match=r"jobs\[1\]: args bytes are not valid UTF-8"):
        bulk_insert([Job(type="A", args=[1]), Job(type="B", args=b"[1")])
    with pytest.raises(InvalidJobError, match=r"jobs\[0\]: args are not JSON-serialisable"):
        bulk_insert([Job(type="A", args=[float("nan")])])
    with pytest.raises(InvalidJobError, match=r"jobs\[1\]: .*not valid Unicode"):
        bulk_insert([Job(type="A", args=["ok"]), Job(type="B", args=["\ud800"])])
    with pytest.raises(InvalidJobError, match=r"jobs\[1\]: .*priority"):
        bulk_insert([Job(type="A", args=[1]), Job(type="B", priority=99999)])
    with pytest.raises(MissingTypeError, match=r"jobs\[2\]: job type must be specified"):
        bulk_insert([Job(type="A"), Job(type="A"), Job(type="")])
    with pytest.raises(TypeError, match=r"que\.Jobs; jobs\[1\] is a dict"):
        bulk_insert([Job(type="A"), {"type": "B"}])
    with pytest.raises(InvalidJobError, match=r"jobs\[1\]: args") as info:
        bulk_insert([Job(type="A"), Job(type="B", args=b"\xff")])
    assert isinstance(info.value.__cause__, UnicodeDecodeError)  # the cause is kept


def test_unique_batch_params_name_the_bad_job_too() -> None:
    from que import Job
    from que._client_base import batch_params

    assert [p.job_class for p in batch_params([Job(type="A"), Job(type="B")])] == ["A", "B"]
    with pytest.raises(InvalidJobError, match=r"jobs\[1\]: .*queue"):
        batch_params([Job(type="A"), Job(type="B", queue=7)])
    with pytest.raises(TypeError, match=r"jobs\[0\] is a str"):
        batch_params(["A"])


def test_bulk_insert_keeps_apart_run_ats_on_either_side_of_a_dst_fold() -> None:
    """02:30 on 2030-10-27 happens twice in Berlin; fold tells which. The two
    compare equal (same zone, same wall time) but are an hour apart."""
    from zoneinfo import ZoneInfo

    from que import Job
    from que._client_base import bulk_insert

    first = datetime(2030, 10, 27, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    second = first.replace(fold=1)
    folded = bulk_insert([Job(type="A", run_at=first), Job(type="A", run_at=second)])
    assert folded.params["run_ats"] == '{"2030-10-27T02:30:00+02:00","2030-10-27T02:30:00+01:00"}'
    same = bulk_insert([Job(type="A", run_at=second), Job(type="A", run_at=second)])
    assert same.params["run_at"] == datetime(2030, 10, 27, 1, 30, tzinfo=timezone.utc)


def test_all_args_in_one_encoding_match_each_encoded_alone() -> None:
    from que._jobs import encode_all_args, encode_args

    values: list[object] = [[1, "é", None], {"k": [True, 0.5]}, "s", 7, [], b"[ 1 ]"]
    assert encode_all_args(values) == "[" + ",".join(encode_args(v) for v in values) + "]"
    assert encode_all_args(values[:-1]) == "[" + ",".join(encode_args(v) for v in values[:-1]) + "]"
