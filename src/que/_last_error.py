"""What a failed job's ``last_error`` says, written like the rest of the Que family.

Ruby que 0.x writes ``Class: message`` (the message cut at 500 characters)
and then the backtrace; Go writes the error's text. We write
``ExceptionType: message`` on the first line, then the traceback, the whole
capped at LAST_ERROR_LIMIT characters. Whatever a work function raises (an
exception whose ``str()`` raises, megabytes of text, a lone UTF-16 surrogate
from JSON another producer wrote), the result can be stored and read.
"""

from __future__ import annotations

import traceback

from .errors import UnknownJobTypeError

MESSAGE_LIMIT = 500  # characters of the message on the first line, as Ruby que 0.x
LAST_ERROR_LIMIT = 8000  # characters of last_error in all


def failure_message(exc: BaseException) -> str:
    r"""``last_error`` for a job whose work function raised ``exc``.

    >>> print(failure_message(ValueError("bad\ud800")).splitlines()[0])
    ValueError: bad\ud800
    >>> failure_message(UnknownJobTypeError("Billing::Refund"))
    'unknown job type: "Billing::Refund"'
    """
    if isinstance(exc, UnknownJobTypeError):
        return cap(storable(exception_text(exc)), LAST_ERROR_LIMIT)
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # a str() that raises, again, deep in the traceback module
        trace = "Traceback (most recent call last):\n" + "".join(
            traceback.format_tb(exc.__traceback__)
        )
    return cap(f"{headline(exc)}\n{storable(trace.rstrip())}", LAST_ERROR_LIMIT)


def undecodable_message(problem: str) -> str:
    """Why a job whose args this worker cannot decode fails.

    >>> undecodable_message("RecursionError: maximum recursion depth exceeded")
    'job args could not be decoded: RecursionError: maximum recursion depth exceeded'
    """
    return f"job args could not be decoded: {problem}"


def headline(exc: BaseException) -> str:
    r"""``ExceptionType: message`` on one line, the message cut at MESSAGE_LIMIT characters.

    >>> headline(ValueError("a\nb")), len(headline(ValueError("x" * 900)))
    ('ValueError: a b', 512)
    """
    message = " ".join(storable(exception_text(exc)).splitlines())
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a note saying why there is none."""
    try:
        return str(exc)
    except Exception as failure:
        return f"<its message could not be read: str() raised {type(failure).__name__}>"


def cap(text: str, limit: int) -> str:
    r"""``text`` in at most ``limit`` characters: its first line, then as much of
    its end as fits after a note that the middle was cut.

    >>> cap("head\n" + "a" * 10 + "b" * 10, 24)
    'head\n[... cut ...]\nbbbbb'
    """
    if len(text) <= limit:
        return text
    first, _, rest = text.partition("\n")
    first = first[:limit]
    keep = limit - len(first) - 1 - len(_CUT)
    return f"{first}\n{_CUT}{rest[-keep:]}" if keep > 0 else first


_CUT = "[... cut ...]\n"


def storable(text: str) -> str:
    r"""``text`` as PostgreSQL's ``text`` can hold it: NUL and lone surrogates escaped.

    >>> storable("a\x00b\udc80c")
    'a\\0b\\udc80c'
    """
    if text.isascii() and "\x00" not in text:
        return text
    text = text.replace("\x00", "\\0")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
