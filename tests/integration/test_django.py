"""The Django app, in a real Django project (tests/django_project) on real
PostgreSQL: migrations, the settings-based client, enqueue in a request's
transaction on Django's connection (commit and rollback), a job finishing in
Django's transaction, and the management commands, each run by manage.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


def printed(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a shell script printed last (``shell`` may print a banner first)."""
    return json.loads(done.stdout.strip().splitlines()[-1])


@asynccontextmanager
async def que_worker(manage: Any, *args: str) -> AsyncIterator[None]:
    """Run ``manage.py que_worker`` for the block, then stop it with SIGTERM as a
    process manager would; it must exit cleanly (its output shows if not)."""
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "que_worker", *args],
        cwd=PROJECT,
        env=manage.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output


def one(url: str, query: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_migrations_create_and_remove_the_que_tables(manage: Any, empty_db_url: str) -> None:
    manage("migrate")
    assert one(empty_db_url, "SELECT obj_description('que_jobs'::regclass, 'pg_class')") == "3"
    assert one(empty_db_url, "SELECT to_regclass('que_unique_keys') IS NOT NULL")
    assert one(empty_db_url, "SELECT to_regclass('que_task_results') IS NOT NULL")
    manage("makemigrations", "que", "--check", "--dry-run")  # models match migrations
    manage("migrate", "shop", "zero")
    manage("migrate", "que", "zero")
    assert one(empty_db_url, "SELECT to_regclass('que_jobs') IS NULL")
    assert one(empty_db_url, "SELECT to_regclass('que_dead_jobs') IS NULL")
    assert one(empty_db_url, "SELECT to_regclass('que_task_results') IS NULL")
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

    async with que_worker(manage, "--concurrency", "2"):
        await wait_until(
            lambda: one(empty_db_url, "SELECT count(*) FROM que_jobs") == 0,
            60,
            "the worker shipped both orders",
        )
    assert one(empty_db_url, "SELECT bool_and(shipped) FROM shop_order")


# Run by manage.py shell: enqueue tasks (one in a rolled-back transaction),
# print their result ids and what the framework reads back before any ran.
ENQUEUE_TASKS = """
import json
from datetime import timedelta
from django.utils import timezone
from shop.tasks import doomed, flaky, place_with_receipt, receipt, welcome
ids = {"receipt": place_with_receipt(1)}
try:
    place_with_receipt(2, fail=True)
except RuntimeError:
    pass
ids["welcome"] = welcome.enqueue("ann").id
ids["flaky"] = flaky.enqueue(7).id
ids["doomed"] = doomed.enqueue(8).id
later = receipt.using(run_after=timezone.now() + timedelta(hours=1), priority=-100)
ids["later"] = later.enqueue(9).id
ready = receipt.get_result(ids["receipt"])
print(json.dumps({"ids": ids, "status": ready.status, "args": ready.args,
                  "kwargs": ready.kwargs, "queue": ready.task.queue_name}))
"""

# Run by manage.py shell after the worker: each result, as the framework gives it.
READ_RESULTS = """
import json
import psycopg
from que.contrib.django import conninfo
from shop.tasks import doomed, flaky, receipt, welcome
ids = IDS  # set by the test
def show(task, key):
    r = task.get_result(ids[key])
    value = r.return_value if r.status == "SUCCESSFUL" else None
    return {"status": r.status, "value": value, "attempts": r.attempts,
            "errors": [e.exception_class_path for e in r.errors],
            "finished": r.finished_at is not None, "started": r.started_at is not None}
out = {key: show(task, key) for key, task in
       [("receipt", receipt), ("welcome", welcome), ("flaky", flaky), ("doomed", doomed),
        ("later", receipt)]}
with psycopg.connect(conninfo(), autocommit=True) as other:
    other.execute("SELECT pg_advisory_lock(%s)", [int(ids["later"])])
    out["later_locked"] = receipt.get_result(ids["later"]).status
try:
    receipt.get_result("999999")
except Exception as exc:
    out["missing"] = type(exc).__name__
print(json.dumps(out))
"""


async def test_django_tasks_go_through_que_and_their_results_read_back(
    manage: Any, empty_db_url: str
) -> None:
    manage("migrate")
    enqueued = printed(manage("shell", "-c", ENQUEUE_TASKS))
    ids = enqueued["ids"]
    assert enqueued["status"] == "READY"
    assert enqueued["args"] == [int(one(empty_db_url, "SELECT max(id) FROM shop_order"))]
    assert enqueued["kwargs"] == {"note": "order 1"}
    assert enqueued["queue"] == "default"
    assert one(empty_db_url, "SELECT count(*) FROM shop_order") == 1  # the rolled-back one is not
    assert one(empty_db_url, "SELECT count(*) FROM que_jobs") == 5
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT job_id::text, job_class, queue, priority, run_at > now() FROM que_jobs"
        ).fetchall()
    jobs = {row[0]: row[1:] for row in rows}
    assert jobs[ids["receipt"]] == ("shop.tasks.receipt", "", 100, False)
    assert jobs[ids["welcome"]] == ("shop.tasks.welcome", "mail", 50, False)
    assert jobs[ids["later"]] == ("shop.tasks.receipt", "", 200, True)

    async with que_worker(manage, "-q", "", "-q", "mail", "--max-attempts", "shop.tasks.doomed=1"):
        await wait_until(
            lambda: one(empty_db_url, "SELECT count(*) FROM que_jobs") == 1,
            90,
            "every task but the deferred one ran",
        )
    assert one(empty_db_url, "SELECT bool_and(shipped) FROM shop_order")

    results = printed(manage("shell", "-c", f"IDS = {ids!r}\n" + READ_RESULTS))
    assert results["receipt"] == {
        "status": "SUCCESSFUL",
        "value": {"order": enqueued["args"][0], "note": "order 1"},
        "attempts": 1,
        "errors": [],
        "finished": True,
        "started": True,
    }
    assert results["welcome"]["value"] == "welcome ann"  # an async task
    assert results["flaky"]["status"] == "SUCCESSFUL"
    assert results["flaky"]["value"] == 2  # the context's attempt number
    assert results["flaky"]["attempts"] == 2
    assert results["flaky"]["errors"] == ["builtins.RuntimeError"]
    assert results["doomed"]["status"] == "FAILED"
    assert results["doomed"]["errors"] == ["builtins.ValueError"]
    assert results["doomed"]["finished"]
    assert results["later"]["status"] == "READY"
    assert results["later_locked"] == "RUNNING"
    assert results["missing"] == "TaskResultDoesNotExist"
