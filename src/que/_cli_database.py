"""Which database a ``que`` command uses, and how a worker process is handed it."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from . import embedded
from ._cli_support import UsageError, hide_password, one_line
from .connect import (
    LIBPQ_ENV_VARS,
    URL_ENV_VARS,
    Connector,
    get_connector_from_conninfo,
    get_connector_from_url,
)
from .errors import QueError

_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)?://")


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


def connector_from_text(text: str, source: str) -> Connector:
    """A Connector from a URL or conninfo given by ``source`` (an option or variable name)."""
    value = text.strip()
    if not value:
        raise UsageError(f"{source} is empty")
    shown = hide_password(value)
    url = _URL_SCHEME.match(value)
    if url is not None:
        scheme = url.group(1)
        if scheme not in ("postgres", "postgresql"):
            raise UsageError(
                f"{source} must be a postgresql:// URL, not "
                + (f"a {scheme}:// one" if scheme else repr(shown))
            )
        try:
            return get_connector_from_url(value)
        except (QueError, ValueError) as exc:  # urlsplit raises ValueError
            raise UsageError(
                f"{source} is not a valid database URL ({shown}): {hide_password(one_line(exc))}"
            ) from exc
    if "=" not in value:
        raise UsageError(
            f"{source} must be a postgresql:// URL or a libpq conninfo string "
            f"such as 'host=... dbname=...', not {shown!r}"
        )
    try:
        return get_connector_from_conninfo(value)
    except QueError as exc:
        raise UsageError(
            f"{source} is not a valid conninfo string ({shown}): {hide_password(one_line(exc))}"
        ) from exc


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
        return Database(connector_from_text(url, "--database-url"), "--database-url")
    if use_embedded:
        return embedded_database(notes=notes)
    for name in URL_ENV_VARS:
        value = environ.get(name, "")
        if value and not value.strip():
            raise UsageError(f"{name} is set but blank; unset it or give it a database URL")
        if value:
            return Database(connector_from_text(value, name), name)
    given = [name for name in LIBPQ_ENV_VARS if environ.get(name)]
    if given:
        return Database(Connector(""), ", ".join(given))
    raise UsageError(no_database_message())


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
