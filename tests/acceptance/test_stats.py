"""`que stats`: the table, `--json`, `--json all` and `--watch`, as a subprocess."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from datetime import datetime

import psycopg

from .conftest import QUE, REPO, Cli, wait_for


def setup_jobs(cli: Cli, url: str) -> None:
    """Two due jobs of A, one scheduled B in queue other, one dead C in queue other."""
    for args in (["A"], ["A"], ["B", "--queue", "other", "--in", "60"]):
        cli.ok("enqueue", *args, "--database-url", url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO que_dead_jobs (priority, run_at, job_id, job_class, args, error_count,"
            " queue, outcome, reason) VALUES (100, now(), 99, 'C', '[]', 5, 'other',"
            " 'exhausted', 'test')"
        )


def test_stats_table(cli: Cli, db_url: str) -> None:
    empty = cli.ok("stats", "--database-url", db_url)
    assert empty.startswith("no jobs in que_jobs\n\nque_jobs: ")
    setup_jobs(cli, db_url)
    lines = cli.ok("stats", "--database-url", db_url).splitlines()
    assert lines[0].split() == [
        "QUEUE",
        "TYPE",
        "READY",
        "SCHEDULED",
        "LOCKED",
        "FAILED",
        "DEAD",
        "OLDEST",
        "DUE",
    ]
    assert lines[1].split()[:7] == ["(default)", "A", "2", "0", "0", "0", "0"]
    assert lines[1].split()[7].endswith("s")
    assert lines[2].split() == ["other", "B", "0", "1", "0", "0", "0", "-"]
    assert lines[3].split() == ["other", "C", "0", "0", "0", "0", "1", "-"]
    assert lines[4].split() == ["other", "(all", "types)", "0", "1", "0", "0", "1", "-"]
    assert lines[5] == ""
    assert lines[6].startswith("que_jobs: ")
    assert "queue settings of the que-pg extension: in place" in lines[8]
    server_on = _autovacuum_on(db_url)
    assert ("no warnings" in lines) == server_on
    if not server_on:
        assert lines[9] == "warnings:"
        assert lines[10].startswith("  - autovacuum is off on the server")


def _autovacuum_on(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT current_setting('autovacuum') = 'on'").fetchone()
    assert row is not None
    return bool(row[0])


def test_stats_json_keeps_its_keys_and_adds_new_ones(cli: Cli, db_url: str) -> None:
    assert json.loads(cli.ok("stats", "--json", "--database-url", db_url)) == []
    setup_jobs(cli, db_url)
    data = json.loads(cli.ok("stats", "--json", "--database-url", db_url))
    old = ("queue", "type", "count", "count_working", "count_errored", "highest_error_count")
    new = ("ready", "scheduled", "locked", "failed", "dead")
    assert [tuple(d[k] for k in old + new) for d in data] == [
        ("", "A", 2, 0, 0, 0, 2, 0, 0, 0, 0),
        ("other", "B", 1, 0, 0, 0, 0, 1, 0, 0, 0),
        ("other", "C", 0, 0, 0, 0, 0, 0, 0, 0, 1),
    ]
    datetime.fromisoformat(data[0]["oldest_run_at"])
    assert data[0]["oldest_due_age_seconds"] >= 0
    assert data[1]["oldest_due_age_seconds"] is None
    assert data[2]["oldest_run_at"] is None


def test_stats_json_all(cli: Cli, db_url: str) -> None:
    setup_jobs(cli, db_url)
    data = json.loads(cli.ok("stats", "--json", "all", "--database-url", db_url))
    assert sorted(data) == ["jobs", "paused", "queues", "table"]
    assert [d["type"] for d in data["jobs"]] == ["A", "B", "C"]
    assert [(q["queue"], q["type"], q["count"], q["dead"]) for q in data["queues"]] == [
        ("", None, 2, 0),
        ("other", None, 1, 1),
    ]
    table = data["table"]
    assert table["extension_installed"] is True
    assert table["missing_settings"] == {}
    assert table["autovacuum_server"] is _autovacuum_on(db_url)
    assert isinstance(table["warnings"], list)
    assert table["total_bytes"] > 0


def test_stats_watch_prints_snapshots_until_ctrl_c(cli: Cli, db_url: str) -> None:
    running = cli.background("stats", "--watch", "0.1", "--database-url", db_url)
    wait_for(lambda: running.stdout().count("=== que stats at ") >= 2, "two snapshots")
    cli.ok("enqueue", "Late", "--database-url", db_url)
    wait_for(lambda: "Late" in running.stdout(), "a snapshot with the new job")
    running.signal(signal.SIGINT)
    assert running.wait() == 0
    assert "\x1b[" not in running.stdout()  # not a terminal: no screen control
    assert "Traceback" not in running.stderr()


def test_stats_watch_json_prints_one_document_a_line(cli: Cli, db_url: str) -> None:
    running = cli.background("stats", "--watch", "0.1", "--json", "all", "--database-url", db_url)
    wait_for(lambda: running.stdout().count("\n") >= 2, "two documents")
    running.signal(signal.SIGINT)
    assert running.wait() == 0
    for line in running.stdout().splitlines():
        assert sorted(json.loads(line)) == ["jobs", "paused", "queues", "table"]


def test_stats_watch_on_a_terminal_redraws_in_place(cli: Cli, db_url: str) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*QUE, "stats", "--watch", "0.1", "--database-url", db_url],
        cwd=REPO,
        env=cli.environment(),
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while seen.count(b"\x1b[H\x1b[2J") < 2 and time.monotonic() < deadline:
            if select.select([leader], [], [], 1.0)[0]:
                seen += os.read(leader, 65536)
        assert seen.count(b"\x1b[H\x1b[2J") >= 2, seen
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
        os.close(leader)


def test_stats_watch_refuses_a_bad_interval(cli: Cli, db_url: str) -> None:
    done = cli("stats", "--watch", "0", "--database-url", db_url)
    assert done.returncode == 2
    assert "--watch takes a positive number of seconds" in done.stderr
