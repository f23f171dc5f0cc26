"""Unique specs and keys, without a database."""

from __future__ import annotations

from datetime import timedelta

import pytest

import que
from que._jobs import insert_params
from que._unique import (
    MAX_KEY_BYTES,
    UniquePurge,
    as_unique,
    check_extension,
    default_key,
    key_for,
    unique_purge_due,
)

NEEDS_V2 = r"unique jobs needs the que-pg extension \(version 2"


def test_the_default_key_is_the_type_and_a_digest_of_canonical_args() -> None:
    spaced = default_key("Mail", '{"to": "a", "n": [1, 2]}')
    compact = default_key("Mail", '{"n":[1,2],"to":"a"}')
    assert spaced == compact
    assert spaced.startswith("Mail:") and len(spaced) == len("Mail:") + 64
    assert default_key("Mail", "[1]") != default_key("Mail", "[2]")
    assert default_key("Mail", "[1]") != default_key("Sms", "[1]")
    assert default_key("Mail", '["é"]') == default_key("Mail", '["\\u00e9"]')


def test_a_given_key_is_used_as_it_is() -> None:
    params = insert_params("Mail", [1], "", None, None)
    assert key_for(que.Unique(key="user:42"), params) == "user:42"
    assert key_for(que.Unique(), params) == default_key("Mail", "[1]")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "must not be empty"),
        ("a\x00b", "NUL"),
        ("\ud800", "not valid Unicode"),
        ("x" * (MAX_KEY_BYTES + 1), f"at most {MAX_KEY_BYTES}"),
        (42, "must be a str, not int"),
    ],
)
def test_bad_keys_are_refused_by_name(key: object, message: str) -> None:
    with pytest.raises(que.InvalidJobError, match=message):
        que.Unique(key=key)  # type: ignore[arg-type]


def test_a_long_type_with_no_key_asks_for_one() -> None:
    with pytest.raises(que.InvalidJobError, match="give Unique"):
        default_key("T" * MAX_KEY_BYTES, "[]")


def test_scopes_and_periods() -> None:
    assert que.Unique().scope_name == "active"
    assert que.Unique(scope="queued").scope_name == "queued"
    spec = que.Unique(scope="queued", period=timedelta(minutes=5))
    assert (spec.scope_name, spec.period_seconds) == ("period", 300.0)
    for bad in (0, -1, True, "60", timedelta(0)):
        with pytest.raises(ValueError, match="positive duration"):
            que.Unique(period=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'queued' or 'active'"):
        que.Unique(scope="period")  # type: ignore[arg-type]


def test_unique_true_means_the_default_spec() -> None:
    assert as_unique(True) == que.Unique()
    assert as_unique(None) is None and as_unique(False) is None
    spec = que.Unique(key="k")
    assert as_unique(spec) is spec
    with pytest.raises(TypeError, match="not str"):
        as_unique("k")


def test_unique_jobs_need_extension_version_2() -> None:
    check_extension(2)
    for version in (0, 1):
        with pytest.raises(que.SchemaVersionError, match=NEEDS_V2):
            check_extension(version)


def test_the_purge_comes_once_per_period_and_only_with_the_extension() -> None:
    purge = UniquePurge(period=60)
    assert not unique_purge_due(1, purge, 0.0)
    assert unique_purge_due(2, purge, 0.0)
    assert not unique_purge_due(2, purge, 59.0)
    assert unique_purge_due(2, purge, 60.0)
