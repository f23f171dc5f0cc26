"""What the numbers were measured on: recorded in every result line."""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

from bench.snapshot import COMMIT_VARIABLE

ROOT = Path(__file__).resolve().parent.parent

PG_SETTINGS = (
    "server_version",
    "synchronous_commit",
    "fsync",
    "shared_buffers",
    "max_connections",
    "autovacuum",
)


def describe(url: str, packages: Iterable[str]) -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(_memory_bytes() / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": _pg_settings(url),
        "packages": {name: _version(name) for name in sorted(set(packages))},
        "que_commit": _git_commit(),
        "que_source": _que_source(),
    }


def cpu_model() -> str:
    model = platform.processor() or platform.machine()
    virtual = False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    virtual = "hypervisor" in value.split()
                    break
    except OSError:
        pass
    return f"{model} (virtual machine)" if virtual else model


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def _pg_settings(url: str) -> dict[str, str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {
            name: str(conn.execute(f"SHOW {name}".encode()).fetchone()[0])  # type: ignore[index]
            for name in PG_SETTINGS
        }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _que_source() -> str | None:
    """Where the benchmarked ``que`` package is imported from."""
    spec = importlib.util.find_spec("que")
    return None if spec is None or spec.origin is None else str(Path(spec.origin).parent)


def _git_commit() -> str | None:
    """The que commit benchmarked: the ``--que-commit`` snapshot's, else the work tree's
    HEAD with ``+dirty`` when src/ has uncommitted changes (None if unknown)."""
    pinned = os.environ.get(COMMIT_VARIABLE)
    if pinned:
        return pinned
    if _que_source() != str(ROOT / "src" / "que"):
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+dirty" if dirty else commit
