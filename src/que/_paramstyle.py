"""Our statements, bound for a driver whose placeholders are not ``%(name)s``.

Every statement in ``sql`` is written once with psycopg's named placeholders
(``%(name)s``; psycopg2 and Django take them as they are). asyncpg numbers
its parameters (``$1``), and SQLAlchemy says which style its driver wants in
``dialect.paramstyle``. This rewrites the placeholders, never the SQL around
them: casts such as ``%(run_at)s::timestamptz`` become ``$3::timestamptz``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A named placeholder, or psycopg's escaped percent sign.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")

# The paramstyles of PEP 249 (and SQLAlchemy's numeric_dollar) we can bind.
NAMED_STYLES = frozenset({"pyformat"})
POSITIONAL_STYLES = frozenset({"numeric_dollar", "format"})


def bind(query: str, params: Mapping[str, Any], style: str) -> tuple[str, Any]:
    """``query`` and ``params`` in ``style``: a dict for ``pyformat``, else a tuple.

    >>> bind("SELECT %(a)s::int, %(b)s, %(a)s", {"a": 1, "b": "x"}, "numeric_dollar")
    ('SELECT $1::int, $2, $1', (1, 'x'))
    >>> bind("SELECT %(a)s, %(a)s, '%%'", {"a": 1}, "format")
    ("SELECT %s, %s, '%%'", (1, 1))
    >>> bind("SELECT %(a)s", {"a": 1}, "pyformat")
    ('SELECT %(a)s', {'a': 1})
    """
    if style in NAMED_STYLES:
        return query, dict(params)
    if style == "numeric_dollar":
        return _numbered(query, params)
    if style == "format":
        return _in_order(query, params)
    raise TypeError(
        f"a driver with paramstyle {style!r} is not supported "
        "(que binds pyformat, format and numeric_dollar)"
    )


def _numbered(query: str, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``$n`` placeholders: one number per name, however often it appears."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in numbers:
            numbers[name] = len(numbers) + 1
        return f"${numbers[name]}"

    text = _PLACEHOLDER.sub(number, query)
    return text, tuple(params[name] for name in numbers)


def _in_order(query: str, params: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``%s`` placeholders: one value per occurrence, in order."""
    values: list[Any] = []

    def placeholder(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%%"
        values.append(params[name])
        return "%s"

    return _PLACEHOLDER.sub(placeholder, query), tuple(values)
