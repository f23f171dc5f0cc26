"""``que web`` as users meet it: the real command serving a real database, its
pages driven in Debian's chromium. Each page's screenshot is kept in
tests/artifacts/."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By

from ..browser import chromium, screenshot
from .conftest import Cli, wait_for


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def dashboard(cli: Cli, db_url: str) -> str:
    """``que web`` on a free port of 127.0.0.1, with the schedules of
    tests.acceptance.apps declared; its base URL."""
    port = free_port()
    server = cli.background(
        "web", "--database-url", db_url, "--port", str(port), "--refresh", "1",
        "--schedules", "tests.acceptance.apps:schedules",
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"que web exited:\n{server.stderr}")
        try:
            with urllib.request.urlopen(base + "/", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(up, "que web to answer")
    return base


def insert(conn: psycopg.Connection[Any], **fields: Any) -> int:
    columns = ", ".join(fields)
    marks = ", ".join(["%s"] * len(fields))
    row = conn.execute(
        f"INSERT INTO que_jobs ({columns}) VALUES ({marks}) RETURNING job_id",
        list(fields.values()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def text_of(driver: Any, css: str) -> str:
    """The element's text, read in one script: the live refresh may swap it any time."""
    text = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", css
    )
    assert text is not None, f"no {css} on {driver.current_url}"
    return str(text)


def page_text(driver: Any) -> str:
    """The whole page's text; empty while the browser is between two pages."""
    try:
        return str(driver.execute_script("return document.body ? document.body.innerText : '';"))
    except WebDriverException:
        return ""


def click(driver: Any, element_id: str) -> bool:
    """Click the element; False when the live refresh replaced it meanwhile."""
    try:
        driver.find_element(By.ID, element_id).click()
    except StaleElementReferenceException:
        return False
    return True


def wait_text(driver: Any, css: str, expected: str, what: str) -> None:
    def shown() -> bool:
        try:
            return expected in text_of(driver, css)
        except AssertionError:  # not on the page yet
            return False

    wait_for(shown, what)


def test_every_page_loads_and_refreshes_live(
    browser: Any, dashboard: str, conn: psycopg.Connection[Any]
) -> None:
    failed = insert(
        conn,
        job_class="Billing::Refund",
        queue="billing",
        args=json.dumps([42, {"note": "<script>alert(1)</script>"}]),
        error_count=2,
        last_error="RuntimeError: card declined\n  from app/jobs/refund.rb:12",
        run_at="2999-01-01T00:00:00Z",
    )
    for n in range(3):
        insert(conn, job_class="Mailer", queue="mail", args=json.dumps([n]))
    dead = insert(conn, job_class="Report", queue="reports")
    conn.execute(
        "INSERT INTO que_dead_jobs (job_id, priority, run_at, job_class, args, error_count, "
        "last_error, queue, outcome, reason) SELECT job_id, priority, run_at, job_class, args, "
        "25, 'gave up', queue, 'exhausted', 'failed 25 time(s)' FROM que_jobs WHERE job_id = %s",
        [dead],
    )
    conn.execute("DELETE FROM que_jobs WHERE job_id = %s", [dead])
    conn.execute(
        "INSERT INTO que_schedules (name, last_tick, last_job_id) VALUES ('nightly-report', "
        "now(), %s)",
        [dead],
    )

    browser.get(dashboard + "/")
    assert browser.title == "Queues · que"
    wait_text(browser, "#queues", "billing", "the queues table")
    browser.execute_script("window.notReloaded = true;")
    insert(conn, job_class="Mailer", queue="late-arrival")
    wait_text(browser, "#queues", "late-arrival", "a new queue shown by the live refresh")
    assert browser.execute_script("return window.notReloaded === true;")  # no reload
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    screenshot(browser, "queues")

    browser.get(dashboard + "/jobs")
    wait_text(browser, "#jobs", "Billing::Refund", "the jobs table")
    screenshot(browser, "jobs")

    browser.get(f"{dashboard}/jobs/{failed}")
    assert "card declined" in text_of(browser, "#job-last-error")
    assert "<script>alert(1)</script>" in text_of(browser, "#job-args")  # shown as text
    assert not browser.find_elements(By.CSS_SELECTOR, "#job-args script")
    screenshot(browser, "job")

    browser.get(dashboard + "/dead")
    wait_text(browser, "#dead", "exhausted", "the dead jobs table")
    screenshot(browser, "dead")
    browser.get(f"{dashboard}/dead/{dead}")
    assert "failed 25 time(s)" in text_of(browser, "#job")
    screenshot(browser, "dead-job")

    browser.get(dashboard + "/schedules")
    wait_text(browser, "#declared-schedules", "every second", "the declared schedules")
    assert "No leader" in text_of(browser, "#leader")  # no worker runs them
    # Recorded in que_schedules, not declared by the application.
    wait_text(browser, "#schedules", "nightly-report", "the recorded ticks")
    screenshot(browser, "schedules")


def test_filter_and_page_through_ten_thousand_jobs(
    browser: Any, dashboard: str, conn: psycopg.Connection[Any]
) -> None:
    conn.execute(
        "INSERT INTO que_jobs (job_class, queue, args) "
        "SELECT 'Bulk', 'bulk', json_build_array(n) FROM generate_series(1, 10000) AS n"
    )
    insert(conn, job_class="Other", queue="elsewhere")
    browser.get(dashboard + "/jobs")
    field = browser.find_element(By.CSS_SELECTOR, "#job-filters input[name=queue]")
    field.send_keys("elsewhere")
    browser.find_element(By.CSS_SELECTOR, "#job-filters button").click()
    wait_for(lambda: "queue=elsewhere" in browser.current_url, "the filtered page")
    rows = browser.execute_script(  # read at once: the live refresh swaps the table
        "return Array.from(document.querySelectorAll('#jobs tbody tr')).map(r => r.textContent);"
    )
    assert len(rows) == 1 and "Other" in rows[0]

    browser.get(dashboard + "/jobs?queue=bulk&limit=500")
    seen: set[str] = set()
    pages = 0
    while True:
        ids = browser.execute_script(
            "return Array.from(document.querySelectorAll('#jobs tbody td:first-child a'))"
            ".map(a => a.textContent);"
        )
        assert ids and not seen & set(ids)
        seen.update(ids)
        pages += 1
        if not browser.find_elements(By.ID, "next-page"):
            break
        before = browser.current_url
        wait_for(lambda: click(browser, "next-page"), "a click on Next page")
        wait_for(lambda before=before: browser.current_url != before, "the next page")
    assert (len(seen), pages) == (10000, 20)


def test_retry_a_failed_job_and_refuse_an_action_without_csrf(
    browser: Any, dashboard: str, conn: psycopg.Connection[Any]
) -> None:
    job_id = insert(
        conn,
        job_class="Flaky",
        error_count=4,
        last_error="TimeoutError: upstream",
        run_at="2999-01-01T00:00:00Z",
    )
    browser.get(f"{dashboard}/jobs/{job_id}")
    assert text_of(browser, "#job-state") == "scheduled"
    browser.find_element(By.ID, "retry-button").click()
    wait_text(browser, "#notice", f"job {job_id} will run now", "the retry notice")
    assert text_of(browser, "#job-state") == "ready"
    (due,) = conn.execute(
        "SELECT run_at <= now() FROM que_jobs WHERE job_id = %s", [job_id]
    ).fetchone() or (None,)
    assert due is True

    browser.execute_script(
        "window.confirm = () => true;"
        "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove());"
    )
    browser.find_element(By.ID, "delete-button").click()
    wait_for(lambda: "CSRF" in page_text(browser), "the refusal")
    screenshot(browser, "csrf-refused")
    assert conn.execute("SELECT count(*) FROM que_jobs WHERE job_id = %s", [job_id]).fetchone() == (
        1,
    )


def test_que_web_refuses_an_open_address_without_authentication(cli: Cli, db_url: str) -> None:
    done = cli("web", "--database-url", db_url, "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    assert "without authentication: set QUE_WEB_TOKEN" in done.stderr
    half = cli(
        "web", "--database-url", db_url, "--host", "0.0.0.0", env={"QUE_WEB_USERNAME": "ops"}
    )
    assert half.returncode == 2 and "QUE_WEB_PASSWORD is not" in half.stderr


def test_que_web_on_any_address_asks_for_the_token(cli: Cli, db_url: str) -> None:
    port = free_port()
    server = cli.background(
        "web",
        "--database-url",
        db_url,
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        env={"QUE_WEB_TOKEN": "t0k"},
    )

    def status(headers: dict[str, str]) -> int | None:
        if server.process.poll() is not None:
            raise AssertionError(f"que web exited:\n{server.stderr}")
        request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            return None

    wait_for(lambda: status({}) == 401, "que web to refuse a request without the token")
    assert status({"Authorization": "Bearer t0k"}) == 200
