"""last_error as the Que family writes it, whatever a work function raises."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from que._last_error import (
    LAST_ERROR_LIMIT,
    MESSAGE_LIMIT,
    failure_message,
    headline,
    storable,
)
from que.errors import UnknownJobTypeError

# Every code point, lone surrogates and NUL included: what JSON from Ruby, Go
# or SQL producers can put into args, and so into an exception's text.
ANY_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF))


def raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as a work function's exception has one."""

    def explode() -> None:
        raise exc

    try:
        explode()
    except BaseException as caught:
        return caught
    raise AssertionError("unreachable")


def assert_storable(text: str) -> None:
    assert "\x00" not in text
    text.encode("utf-8")  # raises on a lone surrogate: PostgreSQL could not take it


def test_first_line_is_type_and_message_then_the_traceback() -> None:
    message = failure_message(raised(KeyError("card 42")))
    lines = message.splitlines()
    assert lines[0] == "KeyError: 'card 42'"
    assert lines[1] == "Traceback (most recent call last):"
    assert "in explode" in message


def test_unknown_type_reads_as_go_writes_it() -> None:
    assert failure_message(UnknownJobTypeError("Billing::Refund")) == (
        'unknown job type: "Billing::Refund"'
    )


def test_message_on_the_first_line_is_cut_at_500_characters() -> None:
    first = failure_message(raised(ValueError("x" * 5000))).splitlines()[0]
    assert first.startswith("ValueError: x")
    assert len(first) == len("ValueError: ") + MESSAGE_LIMIT


def test_surrogates_are_escaped_before_the_cap() -> None:
    message = failure_message(raised(ValueError("\ud800" * 20_000)))
    assert len(message) <= LAST_ERROR_LIMIT
    assert_storable(message)


def test_megabytes_of_text_are_capped() -> None:
    message = failure_message(raised(RuntimeError("y" * 3_000_000)))
    assert len(message) <= LAST_ERROR_LIMIT
    assert message.startswith("RuntimeError: y")
    assert "[... cut ...]" in message


class BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


def test_an_exception_whose_str_raises_is_still_described() -> None:
    message = failure_message(raised(BrokenStr()))
    assert message.splitlines()[0].startswith("BrokenStr: <its message could not be read")
    assert "in explode" in message


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_exception_text_gives_a_storable_readable_last_error(text: str) -> None:
    message = failure_message(raised(ValueError(text)))
    assert_storable(message)
    assert message.startswith("ValueError")
    assert len(message) <= LAST_ERROR_LIMIT
    assert_storable(headline(ValueError(text)))


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_storable_keeps_ordinary_text_and_escapes_the_rest(text: str) -> None:
    stored = storable(text)
    assert_storable(stored)
    if "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert stored == text


@pytest.mark.parametrize("job_type", ["Mailer::Welcome", 'say "hi"', "ünïcode"])
def test_unknown_type_names_the_type(job_type: str) -> None:
    assert job_type.replace('"', '\\"') in str(UnknownJobTypeError(job_type))
