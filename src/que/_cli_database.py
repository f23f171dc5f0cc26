"""Which database a ``que`` command uses, and how a worker process is handed it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from . import embedded
from ._cli_support import UsageError, one_line
from .connect import (
    LIBPQ_ENV_VARS,
    URL_ENV_VARS,
    Connector,
    connector_from_env,
    get_connector_from_conninfo,
)
from .errors import QueError


@dataclass(frozen=True)
class Database:
    """The database a command uses and where that choice came from."""

    connector: Connector
    source: str

    @property
    def conninfo(self) -> str:
        return self.connector.conninfo

    def describe(self) -> str:
        """Host, port, database and user, never the password, and where they came from."""
        return f"{self.connector.describe()} (from {self.source})"


def connector_from_setting(value: str, source: str) -> Connector:
    """A Connector from the URL or conninfo string that ``source`` (an option or a
    variable) gave, read by the library as que.connect reads it.

    No error repeats ``value``, which may hold a password: the library's
    messages never quote their input, and this one only names ``source``.
    """
    if not value.strip():
        raise UsageError(f"{source} is empty")
    try:
        return get_connector_from_conninfo(value)
    except QueError as exc:
        raise UsageError(f"{source}: {one_line(exc)}") from exc


def no_database_message() -> str:
    """What a data command says when it was given no database: every setting it reads."""
    return (
        "no database given: pass --database-url, or set "
        + ", ".join(URL_ENV_VARS)
        + " or the libpq variables ("
        + ", ".join(LIBPQ_ENV_VARS)
        + "); or add --embedded to use the embedded PostgreSQL (que-pg[embedded])"
    )


def select_database(
    url: str | None,
    use_embedded: bool,
    environ: Mapping[str, str],
    *,
    notes: TextIO,
) -> Database:
    """The database, in order: ``url``, QUE_DATABASE_URL, DATABASE_URL, PG* variables;
    the embedded server (started if needed) only with ``use_embedded``.

    With none of them the command fails: a production command never writes to a
    private embedded server that nothing else reads.
    """
    if url is not None:
        if use_embedded:
            raise UsageError("--database-url and --embedded contradict each other; give one")
        return Database(connector_from_setting(url, "--database-url"), "--database-url")
    if use_embedded:
        return embedded_database(notes=notes)
    for name in URL_ENV_VARS:
        value = environ.get(name, "")
        if value and not value.strip():
            raise UsageError(f"{name} is set but blank; unset it or give it a database URL")
    try:
        connector = connector_from_env(environ)
    except QueError as exc:  # names the variable, never its value
        raise UsageError(one_line(exc)) from exc
    if connector is None:
        raise UsageError(no_database_message())
    return Database(connector, _environment_source(environ))


def _environment_source(environ: Mapping[str, str]) -> str:
    """The variables connector_from_env took the database from, for messages."""
    for name in URL_ENV_VARS:
        if environ.get(name):
            return name
    return ", ".join(name for name in LIBPQ_ENV_VARS if environ.get(name))


def embedded_database(*, database: str = "postgres", notes: TextIO) -> Database:
    """The shared embedded server, started if it is not running; says so on ``notes``."""
    before = embedded.status()
    server = embedded.start(before.data_dir, keep_running=True)
    how = "already running" if before.running else "started it"
    print(
        f"que: using the embedded PostgreSQL in {before.data_dir} ({how}); "
        "`que embedded stop` stops it, `que embedded remove` deletes it",
        file=notes,
    )
    return Database(
        get_connector_from_conninfo(embedded.url(server, database)), "the embedded PostgreSQL"
    )


def child_environment(database: Database, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker process started by ``que worker --processes``."""
    env = dict(os.environ)
    env["QUE_DATABASE_URL"] = database.conninfo
    env.update(extra)
    return env
