"""Benchmark databases: one fresh database per system, scenario and repetition."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

_counter = itertools.count()


def with_database(url: str, dbname: str) -> str:
    """``url`` (a postgresql:// URL) pointing at database ``dbname`` instead."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"need a postgresql:// URL, not {url!r}")
    return urlunsplit(parts._replace(path="/" + dbname))


@contextmanager
def fresh_database(admin_url: str, label: str) -> Iterator[str]:
    """Create an empty database, yield its URL, and drop it afterwards."""
    name = re.sub(r"[^a-z0-9_]", "_", f"bench_{label}_{os.getpid()}_{next(_counter)}".lower())[:63]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def scalar(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query.encode()).fetchone()
    return None if row is None else row[0]


class Poller:
    """A connection kept open to count a system's unfinished jobs quickly and often."""

    def __init__(self, url: str, query: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.query = query.encode()

    def pending(self) -> int:
        row = self.conn.execute(self.query).fetchone()
        return 0 if row is None else int(row[0])

    def wait_empty(self, timeout: float, interval: float = 0.002) -> float:
        """Poll until nothing is pending; the perf_counter time it was first seen so."""
        deadline = time.perf_counter() + timeout
        while True:
            if self.pending() == 0:
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"jobs still pending after {timeout:.0f}s")
            time.sleep(interval)

    def close(self) -> None:
        self.conn.close()
