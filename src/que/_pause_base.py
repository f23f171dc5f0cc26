"""Paused queues without IO: how old a client's answer may be, and which
changes its workers should hear about.

A client reads que_paused_queues at most once a ``period`` (a NOTIFY on
que_pause makes the answer stale at once) and shares the answer with all of
its workers, so one worker or a hundred cost one cheap query a second.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# How old the answer may get before a worker reads the table again (seconds).
PAUSE_CHECK_PERIOD = 1.0


@dataclass(frozen=True)
class PauseChanges:
    """Queues that workers of this client work and that were paused or resumed."""

    paused: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()


@dataclass
class PauseBook:
    """The paused queues as last read, when they were read, and which of the
    queues workers work (only those are worth a log line).

    >>> book = PauseBook(period=1.0)
    >>> book.watch(["mail", ""])
    >>> book.due(now=10.0)
    True
    >>> began = book.begin()
    >>> book.update(["mail", "billing"], now=10.0, began=began)
    PauseChanges(paused=('mail',), resumed=())
    >>> book.due(now=10.5), "mail" in book.paused
    (False, True)
    >>> book.stale()
    >>> book.due(now=10.5)
    True
    >>> book.update([], now=10.5, began=book.begin())
    PauseChanges(paused=(), resumed=('mail',))

    A change announced while a read ran may have come after the read's
    snapshot: the answer is kept, but read again at the next look.

    >>> began = book.begin()
    >>> book.stale()
    >>> book.update([], now=11.0, began=began)
    PauseChanges(paused=(), resumed=())
    >>> book.due(now=11.0)
    True
    """

    period: float = PAUSE_CHECK_PERIOD
    paused: frozenset[str] = frozenset()
    read_at: float | None = None
    watched: frozenset[str] = field(default_factory=frozenset)
    changes: int = 0  # how many times stale() was called

    def watch(self, queues: Iterable[str]) -> None:
        """A worker works these queues: report their pauses and resumes."""
        self.watched = self.watched | frozenset(queues)

    def due(self, now: float) -> bool:
        """Whether the answer is too old (or was never read, or made stale)."""
        return self.read_at is None or not 0 <= now - self.read_at < self.period

    def stale(self) -> None:
        """Something changed (a NOTIFY, or this client paused a queue): read again."""
        self.read_at = None
        self.changes += 1

    def begin(self) -> int:
        """Call before reading the table; give the result to ``update``."""
        return self.changes

    def update(self, queues: Iterable[str], now: float, began: int) -> PauseChanges:
        """Record what the table said (read since ``begin()`` returned ``began``);
        the watched queues whose state changed."""
        before, after = self.paused, frozenset(queues)
        self.paused = after
        self.read_at = now if began == self.changes else None
        return PauseChanges(
            paused=tuple(sorted((after - before) & self.watched)),
            resumed=tuple(sorted((before - after) & self.watched)),
        )


def unpaused(queues: Iterable[str], paused: frozenset[str]) -> list[str]:
    """The queues a worker may claim from, in its order.

    >>> unpaused(["a", "b", "c"], frozenset({"b"}))
    ['a', 'c']
    """
    return [queue for queue in queues if queue not in paused]
