"""Durations given as seconds or a timedelta, checked one way everywhere.

Each caller keeps its own rule (a delay may be zero, a unique period may
not, a schedule's interval is at least a second) and names what it checks,
so the error says which argument was wrong and what it must be.
"""

from __future__ import annotations

import math
from datetime import timedelta


class DurationTypeError(TypeError, ValueError):
    """A duration that is neither seconds nor a timedelta. Also a ValueError,
    which is what most of the places checking durations raised for it."""


def seconds(
    value: object,
    what: str,
    *,
    minimum: float = 0.0,
    allow_zero: bool = True,
    maximum: float | None = None,
) -> float:
    """``value`` (seconds as an int or float, or a timedelta) in seconds, when it
    is finite, at least ``minimum``, above zero unless ``allow_zero``, and below
    ``maximum`` if given; otherwise an error naming ``what`` and the rule.

    >>> seconds(timedelta(minutes=1), "delay"), seconds(0, "delay")
    (60.0, 0.0)
    >>> seconds(-1, "delay")
    Traceback (most recent call last):
    ...
    ValueError: delay must be a non-negative duration (seconds or a timedelta), not -1
    >>> seconds(0.5, "every", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: every must be a duration of at least 1 second (seconds or a timedelta), not 0.5
    """
    rule = _rule(minimum, allow_zero, maximum)
    if isinstance(value, timedelta):
        found = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        found = float(value)
    else:
        raise DurationTypeError(f"{what} must be {rule}, not {value!r}")
    if (
        not math.isfinite(found)
        or found < minimum
        or (found == 0 and not allow_zero)
        or (maximum is not None and found >= maximum)
    ):
        raise ValueError(f"{what} must be {rule}, not {value!r}")
    return found


def _rule(minimum: float, allow_zero: bool, maximum: float | None) -> str:
    """The rule in words, for the error message."""
    if minimum > 0:
        rule = f"a duration of at least {minimum:g} second{'' if minimum == 1 else 's'}"
    else:
        rule = "a non-negative duration" if allow_zero else "a positive duration"
    if maximum is not None:
        rule += f" under {maximum:g} seconds"
    return rule + " (seconds or a timedelta)"
