"""The observer seam the metrics use: which errors count as connection errors,
and that a failing observer neither stops the others nor the worker."""

from __future__ import annotations

import logging

import psycopg
import psycopg_pool
import pytest
from psycopg import errors

from que._observe import Observers, is_connection_error


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (psycopg.OperationalError("server closed the connection unexpectedly"), True),
        (psycopg_pool.PoolTimeout("couldn't get a connection after 30 sec"), True),
        (errors.AdminShutdown("terminating connection due to administrator command"), True),
        (errors.ConnectionFailure("connection failure"), True),
        (errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (errors.LockNotAvailable("could not obtain lock"), False),
        (errors.UndefinedTable('relation "que_jobs" does not exist'), False),
        (ValueError("not a database error"), False),
    ],
)
def test_connection_errors_are_told_from_other_errors(exc: Exception, expected: bool) -> None:
    assert is_connection_error(exc) is expected


class Recorder:
    def __init__(self) -> None:
        self.claims: list[tuple[int, int]] = []
        self.errors: list[str] = []

    def claimed(self, count: int, wanted: int) -> None:
        self.claims.append((count, wanted))

    def connection_error(self, session: str, exc: BaseException) -> None:
        self.errors.append(session)


class Broken:
    def claimed(self, count: int, wanted: int) -> None:
        raise RuntimeError("broken observer")

    def connection_error(self, session: str, exc: BaseException) -> None:
        raise RuntimeError("broken observer")


def test_reports_reach_every_observer_even_past_a_broken_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observers = Observers()
    recorder = Recorder()
    observers.add(Broken())
    observers.add(recorder)
    with caplog.at_level(logging.ERROR, logger="que._observe"):
        observers.claimed(3, 10)
        observers.loop_error("locker", psycopg.OperationalError("connection lost"))
        observers.loop_error("locker", ValueError("a bug, not a connection error"))
    assert recorder.claims == [(3, 10)]
    assert recorder.errors == ["locker"]
    # The broken observer's two failures are logged with their tracebacks.
    assert [r.exc_info is not None for r in caplog.records] == [True, True]


def test_a_removed_observer_hears_nothing() -> None:
    observers = Observers()
    recorder = Recorder()
    observers.add(recorder)
    observers.remove(recorder)
    observers.claimed(1, 1)
    assert recorder.claims == []
