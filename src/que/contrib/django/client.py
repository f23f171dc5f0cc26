"""A que Client built from Django's settings: ``QUE = {"DATABASE": alias, ...}``.

The client opens its own pool to the database of that alias (a worker's
sessions hold advisory locks, which Django's request connections must not);
enqueueing in a request's transaction passes ``conn=django.db.connection``.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.db import connections
from psycopg.conninfo import make_conninfo

from ...client import Client

# Connection options of Django's OPTIONS that are libpq parameters too.
_LIBPQ_OPTIONS = frozenset(
    {
        "application_name",
        "connect_timeout",
        "options",
        "passfile",
        "service",
        "sslcert",
        "sslkey",
        "sslmode",
        "sslrootcert",
        "target_session_attrs",
    }
)

_clients: dict[str, Client] = {}
_lock = threading.Lock()


def que_settings() -> dict[str, Any]:
    """``settings.QUE``, with its defaults."""
    options: dict[str, Any] = {"DATABASE": "default", "MAX_CONNECTIONS": 10}
    options.update(getattr(settings, "QUE", {}))
    return options


def conninfo(alias: str | None = None) -> str:
    """The libpq conninfo of a Django database (``QUE["DATABASE"]`` by default)."""
    alias = alias or que_settings()["DATABASE"]
    db = connections[alias]
    if db.vendor != "postgresql":
        raise TypeError(f"que needs a PostgreSQL database; DATABASES[{alias!r}] is {db.vendor}")
    found = db.settings_dict
    params: dict[str, Any] = {
        "dbname": found.get("NAME"),
        "user": found.get("USER"),
        "password": found.get("PASSWORD"),
        "host": found.get("HOST"),
        "port": found.get("PORT"),
    }
    for key, value in (found.get("OPTIONS") or {}).items():
        if key in _LIBPQ_OPTIONS:
            params[key] = value
    return make_conninfo("", **{k: v for k, v in params.items() if v not in (None, "")})


def get_client(alias: str | None = None) -> Client:
    """The process's Client for a Django database, opened on first use."""
    options = que_settings()
    alias = alias or options["DATABASE"]
    with _lock:
        client = _clients.get(alias)
        if client is None:
            client = Client(conninfo(alias), max_connections=options["MAX_CONNECTIONS"])
            _clients[alias] = client
        return client


def close_clients() -> None:
    """Close every client ``get_client`` opened (tests, and shutting a process down)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
