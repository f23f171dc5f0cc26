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
        return storable(exception_text(exc))
    head = headline(exc)
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # a str() that raises, again, deep in the traceback module
        trace = "Traceback (most recent call last):\n" + "".join(
            traceback.format_tb(exc.__traceback__)
        )
    return storable(cap(f"{head}\n{trace.rstrip()}", LAST_ERROR_LIMIT))


def headline(exc: BaseException) -> str:
    """``ExceptionType: message``, one line of at most MESSAGE_LIMIT message characters."""
    message = cap(exception_text(exc), MESSAGE_LIMIT)
    return storable(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a note saying why there is none."""
    try:
        return str(exc)
    except Exception as failure:
        return f"<its message could not be read: str() raised {type(failure).__name__}>"


def cap(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end.

    >>> cap("a" * 10 + "b" * 10, 12)
    'aaaaaa\\n[... 8 characters cut ...]\\nbbbbbb'
    """
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]}\n[... {len(text) - 2 * keep} characters cut ...]\n{text[-keep:]}"


def storable(text: str) -> str:
    r"""``text`` as PostgreSQL's ``text`` can hold it: NUL and lone surrogates escaped.

    >>> storable("a\x00b\udc80c")
    'a\\0b\\udc80c'
    """
    if text.isascii() and "\x00" not in text:
        return text
    text = text.replace("\x00", "\\0")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
