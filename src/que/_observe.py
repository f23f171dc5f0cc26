"""What workers and engines tell an observer besides the jobs' own lifecycle
(``que.hooks``): the size of each claim and the connection errors they recover
from.

A seam for metrics: the Prometheus module (``_metrics``) adds an observer when
``que worker --metrics-port`` asks for one, so the engines never import
prometheus-client. With no observer (the usual case) a report costs a tuple
read.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

import psycopg

logger = logging.getLogger(__name__)


class Observer(Protocol):
    """Receives reports from every worker and engine of this process, from their
    threads (sync face) or the event loop (async face): keep it quick."""

    def claimed(self, count: int, wanted: int) -> None:
        """The batch engine claimed ``count`` jobs when it asked for up to ``wanted``."""

    def connection_error(self, session: str, exc: BaseException) -> None:
        """A ``session`` ('worker', 'locker' or 'listener') lost its connection or
        could not get one; it is retried."""


class Observers:
    """The observers of this process, safe to change from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._observers: tuple[Observer, ...] = ()

    def add(self, observer: Observer) -> None:
        with self._lock:
            self._observers = (*self._observers, observer)

    def remove(self, observer: Observer) -> None:
        with self._lock:
            self._observers = tuple(o for o in self._observers if o is not observer)

    def claimed(self, count: int, wanted: int) -> None:
        for observer in self._observers:
            try:
                observer.claimed(count, wanted)
            except Exception:
                logger.exception("observer %r failed on a claim report", observer)

    def loop_error(self, session: str, exc: BaseException) -> None:
        """Report an error a worker loop caught, if it is a connection error."""
        if not is_connection_error(exc):
            return
        for observer in self._observers:
            try:
                observer.connection_error(session, exc)
            except Exception:
                logger.exception("observer %r failed on a connection error report", observer)


def is_connection_error(exc: BaseException) -> bool:
    """True for a lost or refused connection, or none from the pool in time
    (psycopg_pool's PoolTimeout is an OperationalError too); not for an error
    the server raised on a healthy session (a bad statement, a lock timeout)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    # Errors the server reports with an SQLSTATE on a live session: a query
    # cancelled, a lock or statement timeout. Connection failures (class 08),
    # a server shutting down (57P01..57P03) and client-side losses count.
    sqlstate = getattr(exc, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(("08", "57P"))


# The process-wide observers every worker and engine reports to.
observers = Observers()
