"""`que jobs` and `que dead`: the real command beside a real `que worker`."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

import que

from .conftest import Cli, add_jobs, markers, wait_for

APP = "tests.acceptance.apps:work_map"
FAST = ("--wake-interval", "0.1", "--shutdown-timeout", "30")


def scalar(url: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def enqueue(url: str, *jobs: que.Job) -> list[int]:
    with que.Client(url, max_connections=1) as client:
        return [job.id for job in client.enqueue_many(list(jobs)) if job.id is not None]


def refused(cli: Cli, code: int, *args: str) -> str:
    """Run ``que`` expecting exit code ``code`` and one line on stderr; that line."""
    done = cli(*args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("que: error: "), done.stderr
    return lines[0]


@contextmanager
def session_lock(url: str, job_id: int) -> Iterator[None]:
    """A Ruby or Go worker holding a job: a session advisory lock."""
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [job_id])
        yield


def test_list_pages_and_show_as_text_and_json(cli: Cli, db_url: str) -> None:
    ids = enqueue(
        db_url,
        *[que.Job(type="Mail", args=[n, "✓"], queue="mail", priority=n) for n in range(5)],
    )
    url = ("--database-url", db_url)
    seen: list[int] = []
    after: list[str] = []
    while True:
        page = json.loads(cli.ok("jobs", "list", "--limit", "2", "--json", *after, *url))
        seen.extend(job["id"] for job in page["jobs"])
        if page["next"] is None:
            break
        after = ["--after", page["next"]]
    assert seen == ids

    text = cli.ok("jobs", "list", "--limit", "3", "--queue", "mail", *url)
    lines = text.splitlines()
    assert lines[0].split() == [
        "ID",
        "QUEUE",
        "TYPE",
        "PRIORITY",
        "RUN_AT",
        "ERRORS",
        "STATE",
        "ARGS",
    ]
    assert len(lines) == 5 and lines[-1].startswith("more: add --after ")
    assert '[0,"✓"]' in lines[1]
    assert "no jobs match" in cli.ok("jobs", "list", "--type", "Nope", *url)

    message = "RuntimeError: no\n" + "  at line\n" * 500 + "the end"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE que_jobs SET error_count = 2, last_error = %s WHERE job_id = %s",
            [message, ids[0]],
        )
    shown = cli.ok("jobs", "show", str(ids[0]), *url)
    assert shown.endswith("last_error:\n" + message + "\n")
    assert "error_count: 2" in shown
    record = json.loads(cli.ok("jobs", "show", str(ids[0]), "--json", *url))
    assert (record["last_error"], record["args"], record["locked"]) == (message, [0, "✓"], False)
    failed = json.loads(cli.ok("jobs", "list", "--state", "failed", "--json", *url))
    assert [job["id"] for job in failed["jobs"]] == [ids[0]]
    contain = json.loads(cli.ok("jobs", "list", "--args-contain", "[3]", "--json", *url))
    assert [job["id"] for job in contain["jobs"]] == [ids[3]]


def test_actions_beside_a_running_worker(cli: Cli, db_url: str, gate_dir: Path) -> None:
    url = ("--database-url", db_url)
    running = add_jobs(db_url, "Gate", gate_dir)[0]
    other = enqueue(db_url, que.Job(type="Quick", queue="later", args=[str(gate_dir)]))[0]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE que_jobs SET error_count = 2, run_at = now() + interval '1 hour' "
            "WHERE job_id = %s",
            [other],
        )
    worker = cli.background("worker", APP, *FAST, *url)
    wait_for(lambda: running in markers(gate_dir, "started"), "the worker to start the job")

    listed = json.loads(cli.ok("jobs", "list", "--state", "locked", "--json", *url))
    assert [job["id"] for job in listed["jobs"]] == [running]
    for action in (
        ("retry", str(running)),
        ("reschedule", str(running), "--in", "1h"),
        ("priority", str(running), "1"),
        ("delete", str(running)),
    ):
        line = refused(cli, 1, "jobs", *action, *url)
        assert f"job {running} is being worked right now" in line

    assert "due now (2 errors so far)" in cli.ok("jobs", "retry", str(other), *url)
    assert f"job {other} is due at " in cli.ok("jobs", "reschedule", str(other), "--in", "2h", *url)
    assert cli.ok("jobs", "priority", str(other), "5", *url) == f"job {other} has priority 5\n"
    assert "retried 0 failed jobs" in cli.ok("jobs", "retry", "--failed", "--queue", "x", *url)

    deleting = cli.background("jobs", "delete", str(running), "--wait", "60", *url)
    wait_for(
        lambda: scalar(
            db_url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objsubid = 1 AND (classid::bigint << 32) | objid::bigint = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [running],
        ),
        "delete --wait to wait for the job's lock",
    )
    (gate_dir / "open").touch()
    assert deleting.wait() == 0
    assert "finished by its worker while this waited" in deleting.stdout()

    assert f"deleted job {other}" in cli.ok("jobs", "delete", str(other), *url)
    assert "not in que_jobs" in refused(cli, 1, "jobs", "delete", str(other), *url)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_a_ruby_or_go_lock_counts_as_running(cli: Cli, db_url: str) -> None:
    url = ("--database-url", db_url)
    job_id = enqueue(db_url, que.Job(type="Billing::Refund"))[0]
    with session_lock(db_url, job_id):
        assert "being worked right now" in refused(cli, 1, "jobs", "retry", str(job_id), *url)
        assert "asked its worker" in cli.ok("jobs", "cancel", str(job_id), *url)
        record = json.loads(cli.ok("jobs", "show", str(job_id), "--json", *url))
        assert record["locked"] is True
    assert scalar(db_url, "SELECT count(*) FROM que_cancel_requests") == 1


def test_cancel_and_the_dead_job_round_trip(cli: Cli, db_url: str) -> None:
    url = ("--database-url", db_url)
    job_id = enqueue(db_url, que.Job(type='It\'s "odd"', queue="q\n2", args=["x"]))[0]
    assert "moved to que_dead_jobs as cancelled" in cli.ok("jobs", "cancel", str(job_id), *url)
    assert "it is dead (cancelled)" in refused(cli, 1, "jobs", "show", str(job_id), *url)
    table = cli.ok("dead", "list", *url)
    assert "q\\n2" in table and "cancelled before it ran" in table
    dead = json.loads(cli.ok("dead", "list", "--outcome", "cancelled", "--json", *url))
    assert [(d["id"], d["queue"], d["type"]) for d in dead["dead_jobs"]] == [
        (job_id, "q\n2", 'It\'s "odd"')
    ]
    assert "outcome:     cancelled" in cli.ok("dead", "show", str(job_id), *url)
    assert "back in que_jobs" in cli.ok("dead", "retry", str(job_id), *url)
    assert "not in que_dead_jobs" in refused(cli, 1, "dead", "retry", str(job_id), *url)
    cli.ok("jobs", "cancel", str(job_id), *url)
    moved = cli.ok("dead", "retry", "--all", "--outcome", "cancelled", *url)
    assert moved == "moved 1 dead job with outcome 'cancelled' back to que_jobs\n"
    cli.ok("jobs", "cancel", str(job_id), *url)

    assert "add --yes" in refused(cli, 2, "dead", "purge", *url)
    assert "purged 0 dead jobs" in cli.ok("dead", "purge", "--older-than", "30d", "--yes", *url)
    assert "purged 1 dead job" in cli.ok("dead", "purge", "--yes", *url)
    assert scalar(db_url, "SELECT count(*) FROM que_dead_jobs") == 0


def test_bad_arguments_are_one_line_and_change_nothing(cli: Cli, db_url: str) -> None:
    url = ("--database-url", db_url)
    job_id = enqueue(db_url, que.Job(type="T"))[0]
    for args in (
        ("jobs",),
        ("jobs", "list", "--state", "running"),
        ("jobs", "list", "--after", "garbage"),
        ("jobs", "list", "--older-than", "3 days"),
        ("jobs", "list", "--limit", "0"),
        ("jobs", "list", "--args-contain", "[1"),
        ("jobs", "retry"),
        ("jobs", "retry", str(job_id), "--failed"),
        ("jobs", "retry", str(job_id), "--type", "T"),
        ("jobs", "reschedule", str(job_id)),
        ("jobs", "reschedule", str(job_id), "--at", "tomorrow"),
        ("jobs", "priority", str(job_id), "40000"),
        ("jobs", "delete", str(job_id), "--wait", "-1"),
        ("jobs", "show", "abc"),
        ("dead", "retry"),
        ("dead", "retry", "1", "--outcome", "cancelled"),
        ("dead", "list", "--outcome", "died"),
    ):
        refused(cli, 2, *args, *url)
    assert scalar(db_url, "SELECT count(*) FROM que_jobs WHERE run_at <= now()") == 1
    assert "not in que_jobs" in refused(cli, 1, "jobs", "retry", str(job_id + 1), *url)


def test_without_the_extension_dead_commands_say_what_to_do(cli: Cli, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        que.migrate_extension(conn, 0)
    job_id = enqueue(db_url, que.Job(type="T"))[0]
    url = ("--database-url", db_url)
    assert "que migrate" in refused(cli, 1, "dead", "list", *url)
    assert "que migrate" in refused(cli, 1, "jobs", "cancel", str(job_id), *url)
    assert "never existed" in refused(cli, 1, "jobs", "show", str(job_id + 1), *url)
    assert "due now" in cli.ok("jobs", "retry", str(job_id), *url)


def test_the_password_is_never_printed(cli: Cli) -> None:
    line = refused(
        cli, 1, "jobs", "list", "--database-url", "postgresql://app:s3cret-pw@127.0.0.1:1/app"
    )
    assert "s3cret-pw" not in line
