"""Whether an idle session's socket has anything to read, without a round trip."""

from __future__ import annotations

import select
from typing import Any

import psycopg


def socket_quiet(conn: Any) -> bool:
    """Whether an idle connection's socket has nothing to read.

    A server that ends a session (a restart, pg_terminate_backend) sends it a
    message and closes it, which makes the socket readable; an idle session
    otherwise receives nothing but a NOTIFY or a notice, which only costs the
    caller the round trip it would have made anyway. ``poll`` takes any
    descriptor (``select`` refuses those past 1023); where there is none,
    ``select`` serves.
    """
    try:
        fd = conn.fileno()
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return not poller.poll(0)
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable
