"""The dashboard's pages and actions in-process (Starlette's test client) against a
real database: what each page shows, escaping, CSRF, authentication, mounting."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

import que
from que.web import Auth, create_app

HOSTILE_ARGS = ['<script>alert("args")</script>', {"x": "</pre><img src=x onerror=alert(1)>"}]
HOSTILE_ERROR = 'RuntimeError: <script>alert("error")</script>\n  at <b>line</b> & more'


@pytest.fixture
def web(db_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(database_url=db_url)) as tc:
        yield tc


def insert(conn: psycopg.Connection[Any], **fields: Any) -> int:
    columns = ", ".join(fields)
    marks = ", ".join(["%s"] * len(fields))
    row = conn.execute(
        f"INSERT INTO que_jobs ({columns}) VALUES ({marks}) RETURNING job_id",
        list(fields.values()),
    ).fetchone()
    assert row is not None
    return int(row[0])


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, "the page has no CSRF field"
    return found.group(1)


def test_queues_page_counts_jobs_of_every_member(
    web: TestClient, client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    client.enqueue(que.Job(type="Mailer", queue="mail"))
    client.enqueue(que.Job(type="Mailer", queue="mail"))
    insert(conn, job_class="Billing::Refund", queue="", error_count=2, last_error="boom")
    page = web.get("/")
    assert page.status_code == 200
    assert "Billing::Refund" in page.text  # a Ruby job, read from the shared table
    assert '<a href="/jobs?queue=mail">mail</a>' in page.text
    assert "(default)" in page.text
    assert "<svg" in page.text and "Jobs finished per minute" in page.text


def test_jobs_filter_and_keyset_pages(web: TestClient, client: que.Client) -> None:
    for n in range(7):
        client.enqueue(que.Job(type="A", args=[n], queue="q"))
    client.enqueue(que.Job(type="B", queue="other"))
    first = web.get("/jobs", params={"queue": "q", "limit": 5})
    ids_first = re.findall(r'<a href="/jobs/(\d+)">', first.text)
    assert len(ids_first) == 5
    next_url = re.search(r'href="([^"]+)" id="next-page"', first.text)
    assert next_url is not None
    second = web.get(next_url.group(1).replace("&amp;", "&"))
    ids_second = re.findall(r'<a href="/jobs/(\d+)">', second.text)
    assert len(ids_second) == 2 and not set(ids_first) & set(ids_second)
    assert 'id="next-page"' not in second.text and 'id="first-page"' in second.text
    by_args = web.get("/jobs", params={"args": "[3]"})
    assert len(re.findall(r'<a href="/jobs/(\d+)">', by_args.text)) == 1
    bad = web.get("/jobs", params={"args": "[3"})
    assert "args filter is not JSON" in bad.text


def test_dead_jobs_keyset_pages_and_a_bad_limit(web: TestClient, client: que.Client) -> None:
    """The dead jobs page pages as the jobs page does, keeping its filters in the
    links; a limit that is not a number shows as the list's problem on both."""
    for n in range(3):
        job = client.enqueue(que.Job(type="Gone", args=[n], queue="q"))
        assert client.jobs.cancel(job.id) == "removed"
    first = web.get("/dead", params={"queue": "q", "outcome": "cancelled", "limit": 2})
    ids_first = re.findall(r'<a href="/dead/(\d+)">', first.text)
    assert len(ids_first) == 2 and 'id="first-page"' not in first.text
    next_url = re.search(r'href="([^"]+)" id="next-page"', first.text)
    assert next_url is not None and "outcome=cancelled" in next_url.group(1)
    second = web.get(next_url.group(1).replace("&amp;", "&"))
    ids_second = re.findall(r'<a href="/dead/(\d+)">', second.text)
    assert len(ids_second) == 1 and not set(ids_first) & set(ids_second)
    assert 'id="next-page"' not in second.text and 'id="first-page"' in second.text
    for path in ("/jobs", "/dead"):
        bad = web.get(path, params={"limit": "many"})
        assert 'id="list-problem">limit must be a whole number' in bad.text, path


def test_hostile_args_and_errors_are_escaped_everywhere(
    web: TestClient, client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    import json

    job_id = insert(
        conn,
        job_class="<i>Evil</i>",
        queue="<q>",
        args=json.dumps(HOSTILE_ARGS),
        error_count=1,
        last_error=HOSTILE_ERROR,
    )
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/jobs?queue=%3Cq%3E"):
        text = web.get(path).text
        assert "<script>alert" not in text, path
        assert "<img src=x" not in text, path
        assert "<i>Evil</i>" not in text and "&lt;i&gt;Evil&lt;/i&gt;" in text, path
    detail = web.get(f"/jobs/{job_id}").text
    assert "&lt;script&gt;alert(&#34;error&#34;)&lt;/script&gt;" in detail  # whole last_error
    assert "&amp; more" in detail
    notice = web.get("/jobs", params={"notice": "<script>x</script>"}).text
    assert "<script>x" not in notice and "&lt;script&gt;x" in notice


def test_retry_delete_cancel_through_posts_with_csrf(
    web: TestClient, client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    failed = insert(
        conn, job_class="Flaky", error_count=3, last_error="nope", run_at="2999-01-01T00:00:00Z"
    )
    page = web.get(f"/jobs/{failed}")
    assert "scheduled" in page.text
    token = csrf_of(page.text)
    retried = web.post(f"/jobs/{failed}/retry", data={"csrf": token})
    assert retried.status_code == 200 and f"job {failed} will run now" in retried.text
    assert 'id="job-state">ready' in retried.text
    (run_at_due,) = conn.execute(
        "SELECT run_at <= now() FROM que_jobs WHERE job_id = %s", [failed]
    ).fetchone() or (None,)
    assert run_at_due is True

    cancelled = web.post(f"/jobs/{failed}/cancel", data={"csrf": token})
    assert "cancelled: moved to the dead jobs" in cancelled.text  # followed to its dead page
    assert cancelled.url.path == f"/dead/{failed}"
    back = web.post(f"/dead/{failed}/retry", data={"csrf": token})
    assert back.url.path == f"/jobs/{failed}" and "back in its queue" in back.text

    deleted = web.post(f"/jobs/{failed}/delete", data={"csrf": token})
    assert deleted.url.path == "/jobs" and f"job {failed} deleted" in deleted.text
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
    gone = web.post(f"/jobs/{failed}/retry", data={"csrf": token})
    assert 'id="problem"' in gone.text and str(failed) in gone.text


def test_an_action_without_the_csrf_token_is_refused(
    web: TestClient, client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    job_id = insert(conn, job_class="Keep")
    web.get("/jobs")  # the cookie is set
    for data in ({}, {"csrf": "forged"}):
        refused = web.post(f"/jobs/{job_id}/delete", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
    token = csrf_of(web.get(f"/jobs/{job_id}").text)
    cross = web.post(
        f"/jobs/{job_id}/delete", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert web.get(f"/jobs/{job_id}/delete").status_code == 405  # never by GET
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (1,)


def test_dead_jobs_and_schedules_pages(
    web: TestClient, client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    job_id = insert(conn, job_class="Doomed")
    assert client.jobs.cancel(job_id) == "removed"
    conn.execute(
        "INSERT INTO que_schedules (name, last_tick, last_job_id) VALUES ('nightly', now(), %s)",
        [job_id],
    )
    dead = web.get("/dead", params={"outcome": "cancelled"})
    assert f'<a href="/dead/{job_id}">{job_id}</a>' in dead.text
    assert "Doomed" in web.get(f"/dead/{job_id}").text
    assert "Doomed" not in web.get("/dead", params={"outcome": "discarded"}).text
    assert "nightly" in web.get("/schedules").text
    assert web.get(f"/jobs/{job_id}").url.path == f"/dead/{job_id}"
    assert "no such job" in web.get("/jobs/999999").text


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_declared_schedules_show_their_next_tick_and_leader(
    db_url: str, client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    hourly = que.Schedule("Report", every=3600, queue="reports", name="hourly-report")
    beat = que.Schedule("Beat", every=1, name="beat")
    conn.execute(
        "INSERT INTO que_schedules (name, last_tick, last_job_id) VALUES ('retired', now(), 7)"
    )
    with TestClient(create_app(database_url=db_url, schedules=[hourly, beat])) as web:
        page = web.get("/schedules").text
        table = page.split('id="declared-schedules"')[1].split("</table>")[0]
        assert "hourly-report" in table and "every 3600s" in table and "reports" in table
        assert table.count("never") == 2  # neither has ticked
        assert table.count(" UTC") == 2  # each has its next tick
        assert "No leader" in page
        # A schedule que_schedules records but no one declares any more.
        assert "Recorded ticks of schedules not declared" in page and "retired" in page

        scheduler = que.Scheduler(client, [hourly, beat])
        scheduler.start()
        try:

            def beat_ticked() -> bool:
                text = web.get("/schedules").text
                row = text.split("<td>beat</td>")[1].split("</tr>")[0]
                return "Leader: database session pid" in text and "/jobs/" in row

            wait_for(beat_ticked, "the page showing the leader and beat's last job")
        finally:
            assert scheduler.shutdown(30)


def test_bad_schedules_are_refused_when_the_app_is_made(db_url: str) -> None:
    with pytest.raises(TypeError, match=r"que\.Schedule"):
        create_app(database_url=db_url, schedules=["not a schedule"])  # type: ignore[list-item]


def test_authentication_when_configured(db_url: str, client: que.Client) -> None:
    app = create_app(database_url=db_url, auth=Auth(username="ops", password="s3cret"))
    with TestClient(app) as tc:
        denied = tc.get("/")
        assert denied.status_code == 401 and "Basic" in denied.headers["www-authenticate"]
        assert tc.get("/", auth=("ops", "wrong")).status_code == 401
        assert tc.get("/", auth=("ops", "s3cret")).status_code == 200
    with TestClient(create_app(database_url=db_url, auth=Auth(token="t0k"))) as tc:
        assert tc.get("/", headers={"Authorization": "Bearer t0k"}).status_code == 200
        basic = base64.b64encode(b"anyone:t0k").decode()
        assert tc.get("/", headers={"Authorization": f"Basic {basic}"}).status_code == 200
        assert tc.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_mounted_inside_another_application(db_url: str, client: que.Client) -> None:
    job_id = client.enqueue(que.Job(type="Mounted")).id
    host = Starlette(routes=[Mount("/admin/que", app=create_app(database_url=db_url))])
    with TestClient(host) as tc:
        page = tc.get("/admin/que/jobs")
        assert page.status_code == 200
        assert f'href="/admin/que/jobs/{job_id}"' in page.text
        assert 'src="/admin/que/static/que.js"' in page.text
        assert tc.get("/admin/que/static/que.js").status_code == 200
        token = csrf_of(tc.get(f"/admin/que/jobs/{job_id}").text)
        done = tc.post(f"/admin/que/jobs/{job_id}/delete", data={"csrf": token})
        assert done.url.path == "/admin/que/jobs" and "deleted" in done.text


def test_pause_and_resume_a_queue(web: TestClient, client: que.Client) -> None:
    client.enqueue(que.Job(type="Mailer", queue="mail"))
    page = web.get("/")
    token = csrf_of(page.text)
    paused = web.post("/queues/pause", data={"csrf": token, "queue": "mail"})
    assert "queue mail paused" in paused.text and 'id="paused"' in paused.text
    assert list(client.paused_queues()) == ["mail"]
    assert web.post("/queues/resume", data={"queue": "mail"}).status_code == 403
    resumed = web.post("/queues/resume", data={"csrf": token, "queue": "mail"})
    assert "queue mail resumed" in resumed.text
    assert client.paused_queues() == {}


def test_metrics_of_every_queue(web: TestClient, client: que.Client) -> None:
    client.enqueue(que.Job(type="Mailer", queue="mail"))
    client.enqueue(que.Job(type="Mailer", queue="mail"))
    scraped = web.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert 'que_queue_jobs{queue="mail",state="ready"} 2.0' in scraped.text
    assert 'que_queue_oldest_due_age_seconds{queue="mail"}' in scraped.text
