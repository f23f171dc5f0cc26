"""One check for "seconds or a timedelta", each place keeping its own rule."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

import que
from que._durations import DurationTypeError, seconds
from que._registry import Registry


def test_seconds_and_timedeltas_become_float_seconds() -> None:
    assert seconds(5, "x") == 5.0 and isinstance(seconds(5, "x"), float)
    assert seconds(timedelta(milliseconds=1500), "x") == 1.5
    assert seconds(0, "x") == 0.0


@pytest.mark.parametrize("bad", ["5", None, True, [1], object()])
def test_not_a_duration_is_both_a_type_and_a_value_error(bad: object) -> None:
    with pytest.raises(DurationTypeError, match=r"x must be .*\(seconds or a timedelta\)"):
        seconds(bad, "x")
    assert issubclass(DurationTypeError, TypeError) and issubclass(DurationTypeError, ValueError)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -0.001, timedelta(seconds=-1)])
def test_infinite_and_negative_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="x must be a non-negative duration"):
        seconds(bad, "x")


def test_each_rule_is_said_in_the_message() -> None:
    with pytest.raises(ValueError, match="must be a positive duration"):
        seconds(0, "x", allow_zero=False)
    with pytest.raises(ValueError, match="must be a duration of at least 1 second "):
        seconds(timedelta(milliseconds=999), "x", minimum=1)
    with pytest.raises(ValueError, match=r"at least 2\.5 seconds"):
        seconds(2, "x", minimum=2.5)
    with pytest.raises(ValueError, match="under 10 seconds"):
        seconds(10, "x", maximum=10)
    assert seconds(1, "x", minimum=1) == 1.0 and seconds(9.5, "x", maximum=10) == 9.5


class Collect:
    def enqueue(self, job: Any, *, conn: Any = None) -> Any:
        return job


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "60", timedelta(seconds=-1)])
def test_a_job_delay_may_be_zero_but_not_negative_or_infinite(bad: object) -> None:
    reg = Registry()

    @que.job(name="T", registry=reg)
    def f() -> None: ...

    f.options(client=Collect(), delay=0)
    f.options(client=Collect(), delay=timedelta(hours=1))
    with pytest.raises(ValueError, match="delay must be a non-negative duration"):
        f.options(client=Collect(), delay=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, math.nan, 3.2e9, "60", True])
def test_a_unique_period_is_positive_and_bounded(bad: object) -> None:
    assert que.Unique(period=timedelta(days=1)).period_seconds == 86400.0
    with pytest.raises(ValueError, match="Unique period must be a positive duration under"):
        que.Unique(period=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.5, timedelta(milliseconds=999), math.inf, math.nan])
def test_a_schedule_interval_is_at_least_a_second(bad: object) -> None:
    assert que.Schedule("T", every=timedelta(minutes=1)).describe() == "every 60s"
    with pytest.raises(ValueError, match="schedule 'T': every must be a duration of at least 1"):
        que.Schedule("T", every=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="every must be"):
        que.Schedule("T", every="60")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "1"])
def test_drain_durations_are_checked_before_any_io(bad: object) -> None:
    from que.testing import advance, drain

    with pytest.raises(ValueError, match="by must be a non-negative duration"):
        advance(None, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="until must be a non-negative duration"):
        drain(None, {}, until=bad)  # type: ignore[arg-type]
