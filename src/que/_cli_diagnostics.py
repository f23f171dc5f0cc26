"""What ``que worker --log-level DEBUG`` logs when it starts: the details an operator
needs to debug it, beyond the one INFO line (the engines log each claim themselves).

Nothing here changes what the worker does; at INFO it is never called.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

import psycopg

from . import __version__
from ._cli_app import WorkMap
from ._cli_database import Database
from ._cli_settings import WorkerSettings
from ._cli_support import one_line
from ._work import describe_queues
from .errors import QueError
from .schema import current_version, notify_installed

logger = logging.getLogger("que.cli")


def log_setup(
    settings: WorkerSettings, database: Database, work_map: WorkMap, *, is_async: bool
) -> None:
    """Log, at DEBUG, the database, the settings, the versions and the work map."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    logger.debug("database %s: %s", database.describe(), _database_state(database, settings))
    engine = f"{settings.engine} engine" + (" (asyncio)" if is_async else "")
    logger.debug(
        "settings: %s, %s, concurrency %d, wake interval %gs, shutdown timeout %gs, "
        "job timeout %s; pid %d, que %s, psycopg %s (libpq %s), Python %s",
        describe_queues(settings.queues),
        engine,
        settings.concurrency,
        settings.interval,
        settings.shutdown_timeout,
        _timeouts(settings),
        os.getpid(),
        __version__,
        psycopg.__version__,
        _pg_version(psycopg.pq.version()),
        platform.python_version(),
    )
    logger.debug(
        "work map %s from %s: %s",
        settings.app,
        _module_file(settings.app),
        ", ".join(f"{name} -> {_name_of(func)}" for name, func in sorted(work_map.items())),
    )


def _database_state(database: Database, settings: WorkerSettings) -> str:
    """The server version, the schema version and whether idle workers are woken."""
    try:
        with database.connector.connect() as conn:
            server = _pg_version(conn.info.server_version)
            version = current_version(conn)
            woken = notify_installed(conn)
    except (psycopg.Error, QueError) as exc:
        return f"could not read its details: {one_line(exc)}"
    if not woken:
        trigger = (
            f"wake-up trigger not installed (idle workers look every {settings.interval:g}s; "
            "`que migrate --notify` adds it)"
        )
    elif settings.engine == "batch":
        trigger = "wake-up trigger installed (an enqueue wakes an idle worker at once)"
    else:
        trigger = "wake-up trigger installed (unused: the classic engine polls)"
    return f"PostgreSQL {server}, que_jobs schema version {version}, {trigger}"


def _timeouts(settings: WorkerSettings) -> str:
    default = settings.timeouts.default
    text = "none" if default is None else f"{default:g}s"
    per_type = ", ".join(f"{t}={s:g}s" for t, s in sorted(settings.timeouts.per_type.items()))
    return f"{text} (per type: {per_type})" if per_type else text


def _pg_version(number: int) -> str:
    """PostgreSQL's version number as it is written: 150010 -> '15.10'."""
    return f"{number // 10000}.{number % 10000}"


def _module_file(app: str) -> str:
    module = sys.modules.get(app.partition(":")[0])
    return str(getattr(module, "__file__", None) or "(no file)")


def _name_of(func: Callable[..., Any]) -> str:
    """module.qualname of a work function, or of the class of a callable object."""
    named: Any = func if hasattr(func, "__qualname__") else type(func)
    return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"
