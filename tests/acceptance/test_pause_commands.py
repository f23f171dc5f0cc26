"""`que pause` and `que resume`: the real commands beside a real `que worker`."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psycopg
import pytest

import que

from .conftest import Cli, markers, wait_for

APP = "tests.acceptance.apps:work_map"
FAST = ("--wake-interval", "0.1", "--shutdown-timeout", "30")


def enqueue(url: str, job_type: str, folder: Path, queue: str) -> int:
    with que.Client(url, max_connections=1) as client:
        job = client.enqueue(que.Job(type=job_type, args=[str(folder)], queue=queue))
    assert job.id is not None
    return job.id


def job_ids(url: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT job_id FROM que_jobs").fetchall()}


@pytest.mark.parametrize("engine", ["batch", "classic"])
def test_pause_and_resume_a_queue_a_worker_is_working(
    cli: Cli, db_url: str, gate_dir: Path, engine: str
) -> None:
    url = ("--database-url", db_url)
    running = enqueue(db_url, "Gate", gate_dir, "mail")
    worker = cli.background(
        "worker", APP, "-q", "mail,other", "--engine", engine, "-c", "2", *FAST, *url
    )
    wait_for(lambda: running in markers(gate_dir, "started"), "the gated job to start")

    assert cli.ok("pause", "mail", *url).strip().startswith("paused queue 'mail'")
    assert cli.ok("pause", "mail", *url).strip() == "queue 'mail' was already paused"
    # Another process: the worker sees the pause within about a second (at
    # once on the NOTIFY, for the listening batch engine), and says so.
    worker.wait_for_log("queue 'mail' is paused")
    waiting = [enqueue(db_url, "Quick", gate_dir, "mail") for _ in range(2)]
    (gate_dir / "open").touch()
    wait_for(lambda: running not in job_ids(db_url), "the running job to finish")
    # A job of the worker's other queue runs: the worker went on taking
    # turns at both queues, and left the paused one alone.
    marker = enqueue(db_url, "Quick", gate_dir, "other")
    wait_for(lambda: marker in markers(gate_dir, "done"), "the other queue's job")
    assert set(waiting) <= job_ids(db_url)
    assert not set(waiting) & set(markers(gate_dir, "done"))

    text = cli.ok("stats", *url)
    assert "mail (paused)" in text and "paused queues: 'mail' since" in text
    document = json.loads(cli.ok("stats", "--json", "all", *url))
    assert [p["queue"] for p in document["paused"]] == ["mail"]
    assert {q["queue"]: q["paused"] for q in document["queues"]} == {"mail": True}

    assert cli.ok("resume", "mail", *url).strip().startswith("resumed queue 'mail'")
    assert cli.ok("resume", "mail", *url).strip() == "queue 'mail' was not paused"
    wait_for(lambda: not job_ids(db_url), "the resumed queue's jobs to run")
    worker.wait_for_log("queue 'mail' was resumed")
    assert json.loads(cli.ok("stats", "--json", "all", *url))["paused"] == []
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert worker.stderr().count("queue 'mail' is paused") == 1


def test_the_default_queue_can_be_paused(cli: Cli, db_url: str) -> None:
    url = ("--database-url", db_url)
    assert cli.ok("pause", "", *url).strip().startswith("paused queue ''")
    assert "(default) (paused)" not in cli.ok("stats", *url)  # no jobs: no table row
    assert "paused queues: '' since" in cli.ok("stats", *url)
    assert cli.ok("resume", "", *url).strip().startswith("resumed queue ''")


def test_pausing_without_extension_version_2_is_refused(cli: Cli, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        que.migrate_extension(conn, 1)
    for command in ("pause", "resume"):
        done = cli(command, "mail", "--database-url", db_url)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "pausing queues needs the que-pg extension (version 2 or later)" in done.stderr
        assert "que migrate" in done.stderr
    # `que stats` still works, and says nothing of pauses.
    assert "paused" not in cli.ok("stats", "--database-url", db_url)
