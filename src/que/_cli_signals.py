"""SIGTERM and SIGINT for ``que worker``: the first stops gracefully, a second one
is handled by a policy the caller picks (exit at once, or ignore it)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._cli_logging import flush_logs

# One logger name for everything the command logs, as users filter on it.
logger = logging.getLogger("que.cli")


class Signals:
    """SIGTERM and SIGINT: the first sets ``stop``; a later one calls ``on_repeat``."""

    NAMES = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, on_repeat: Callable[[int], None]) -> None:
        self.stop = threading.Event()
        self.received: int | None = None
        self._on_repeat = on_repeat
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in self.NAMES:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop.is_set():
            self._on_repeat(signum)
            return
        self.received = signum
        self.stop.set()

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else "a stop request"


def exit_now(signum: int) -> None:
    """A second signal to a lone worker: exit without waiting for the running jobs."""
    logger.warning(
        "second %s: exiting now; the jobs still running are released with their "
        "connections and will be worked again",
        signal.Signals(signum).name,
    )
    flush_logs()
    os._exit(128 + signum)


def ignore_repeat(signum: int) -> None:
    """A second signal to a supervised worker: its supervisor decides, so only log it."""
    logger.info("%s received again: already stopping", signal.Signals(signum).name)
