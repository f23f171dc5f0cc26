import pytest

from que import Job
from que._timeouts import Timeouts, Watchdog


def test_per_type_then_default() -> None:
    limits = Timeouts(60, {"Report": 600})
    assert (limits.seconds("Report"), limits.seconds("Mail")) == (600.0, 60.0)
    assert Timeouts().seconds("Mail") is None and not Timeouts().enabled


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "10", True])
def test_bad_limits_name_the_type(bad: object) -> None:
    with pytest.raises(ValueError, match="'Report'"):
        Timeouts(None, {"Report": bad})  # type: ignore[dict-item]


def test_watchdog_reports_each_overdue_job_once() -> None:
    seen: list[tuple[int | None, float, float]] = []
    dog = Watchdog(
        Timeouts(1.0, {"Slow": 10.0}), lambda job, ran, limit: seen.append((job.id, ran, limit))
    )
    quick, slow = Job(type="Quick", id=1), Job(type="Slow", id=2)
    dog.started(quick)
    dog.started(slow)
    base = dog._running[id(quick)][1]
    assert dog.check(now=base + 0.5) == []
    assert dog.check(now=base + 2.0) == [quick]
    assert dog.check(now=base + 3.0) == []  # reported once
    dog.finished(slow)
    assert dog.check(now=base + 60.0) == []  # finished jobs are forgotten
    assert dog.overdue_total == 1
    assert seen == [(1, 2.0, 1.0)]
