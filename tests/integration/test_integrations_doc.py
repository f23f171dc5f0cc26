"""docs/integrations.md's examples run: each code block is a file the suite
runs (docs/examples/*.py here; the Django project's by test_django.py), and
the page shows exactly that file's text."""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest

from ..helpers import advisory_lock_count
from ..optional import require, sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"
EXAMPLE = re.compile(r"<!-- example: (\S+) -->\n```python\n(.*?)```", flags=re.DOTALL)


def test_every_python_block_of_the_page_is_a_file_the_suite_runs() -> None:
    text = DOC.read_text()
    examples = EXAMPLE.findall(text)
    assert len(examples) == len(re.findall(r"```python\n", text)), "a block without its file"
    assert {path for path, _ in examples} >= {
        "docs/examples/fastapi_app.py",
        "docs/examples/sqlalchemy_enqueue.py",
        "tests/django_project/shop/tasks.py",
    }
    for path, block in examples:
        assert block in (ROOT / path).read_text(), f"the block for {path} is not in that file"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``condition`` (checked every 20 ms); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def query(url: str, sql: str) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def orders_db(db_url: str) -> str:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE orders (id serial PRIMARY KEY, shipped bool NOT NULL DEFAULT false)"
        )
    return db_url


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_the_fastapi_example_enqueues_in_the_request_and_works_in_the_lifespan(
    orders_db: str, driver: str
) -> None:
    require("fastapi")
    require(driver)
    from fastapi.testclient import TestClient

    url = sqlalchemy_url(orders_db, driver).render_as_string(hide_password=False)
    app = load_example("fastapi_app").create_app(url)
    with TestClient(app) as http:  # runs the lifespan: the worker starts
        placed = http.post("/orders")
        assert placed.status_code == 200, placed.text
        refused = http.post("/orders", params={"fail": "true"})
        assert refused.status_code == 409
        poll(
            lambda: query(orders_db, "SELECT count(*) FILTER (WHERE shipped) FROM orders") == 1,
            60,
            "the lifespan's worker shipped the order",
        )
    assert query(orders_db, "SELECT count(*) FROM orders") == 1  # the refused one rolled back
    assert query(orders_db, "SELECT count(*) FROM que_jobs") == 0
    assert advisory_lock_count(orders_db) == 0


@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_the_sqlalchemy_example_enqueues_in_the_session(orders_db: str, driver: str) -> None:
    sqlalchemy = require("sqlalchemy")
    require(driver)
    example = load_example("sqlalchemy_enqueue")
    engine = sqlalchemy.create_engine(sqlalchemy_url(orders_db, driver))
    try:
        with example.open_client(engine) as client:
            order_id = example.place_order(engine, client)
            with pytest.raises(RuntimeError):
                example.place_order(engine, client, fail=True)
            assert [stat.count for stat in client.stats()] == [1]
            job = client.lock_job()
            assert job is not None
            assert (job.type, job.args) == ("ship", [order_id])
            job.delete()
            job.done()
    finally:
        engine.dispose()
    assert query(orders_db, "SELECT count(*) FROM orders") == 1
