"""The Django app, in a real Django project (tests/django_project) on real
PostgreSQL: migrations, the settings-based client, enqueue in a request's
transaction on Django's connection (commit and rollback), a job finishing in
Django's transaction, and the management commands, each run by manage.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ..optional import require
from ..sides import wait_until

PROJECT = Path(__file__).resolve().parent.parent / "django_project"


@pytest.fixture
def manage(empty_db_url: str) -> Any:
    require("django")
    env = {**os.environ, "QUE_TEST_DJANGO_DB": empty_db_url, "PYTHONPATH": str(PROJECT)}
    env.pop("QUE_DATABASE_URL", None)

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            check=False,
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert done.returncode == 0, done.stderr
        return done

    run.env = env  # type: ignore[attr-defined]
    return run


def one(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_migrations_create_and_remove_the_que_tables(manage: Any, empty_db_url: str) -> None:
    manage("migrate")
    assert one(empty_db_url, "SELECT obj_description('que_jobs'::regclass, 'pg_class')") == "3"
    assert one(empty_db_url, "SELECT to_regclass('que_unique_keys') IS NOT NULL")
    manage("migrate", "shop", "zero")
    manage("migrate", "que", "zero")
    assert one(empty_db_url, "SELECT to_regclass('que_jobs') IS NULL")
    assert one(empty_db_url, "SELECT to_regclass('que_dead_jobs') IS NULL")
    manage("migrate")
    assert one(empty_db_url, "SELECT count(*) FROM que_jobs") == 0


async def test_orders_enqueue_in_djangos_transaction_and_the_worker_ships_them(
    manage: Any, empty_db_url: str
) -> None:
    manage("migrate")
    manage(
        "shell",
        "-c",
        "from shop.orders import place\n"
        "place(1)\n"
        "try:\n    place(2, fail=True)\nexcept RuntimeError:\n    pass\n"
        "place(3)\n",
    )
    assert one(empty_db_url, "SELECT count(*) FROM shop_order") == 2
    assert one(empty_db_url, "SELECT count(*) FROM que_jobs") == 2  # not the rolled-back one
    assert one(empty_db_url, "SELECT string_agg(DISTINCT job_class, ',') FROM que_jobs") == (
        "shop.jobs.ship"
    )
    stats = manage("que", "stats")
    assert "shop.jobs.ship" in stats.stdout

    worker = subprocess.Popen(
        [sys.executable, "manage.py", "que_worker", "--concurrency", "2"],
        cwd=PROJECT,
        env=manage.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        await wait_until(
            lambda: one(empty_db_url, "SELECT count(*) FROM que_jobs") == 0,
            60,
            "the worker shipped both orders",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert one(empty_db_url, "SELECT bool_and(shipped) FROM shop_order")
