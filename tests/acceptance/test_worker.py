"""`que worker` as a real process: working, draining, graceful and forced shutdown, crashes."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

import que
from tests.helpers import advisory_lock_count, listener_count

from .conftest import Cli, add_jobs, job_count, markers, parent_of, pid_alive, wait_for

APP = "tests.acceptance.apps:work_map"
FAST = ("--wake-interval", "0.1")


def stats(cli: Cli, url: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(cli.ok("stats", "--json", "--database-url", url))
    return rows


def totals(cli: Cli, url: str) -> tuple[int, int]:
    """(count, count_working) over every queue and type, from `que stats --json`."""
    rows = stats(cli, url)
    return sum(int(str(r["count"])) for r in rows), sum(int(str(r["count_working"])) for r in rows)


def enqueue(cli: Cli, url: str, job_type: str, *args: object, queue: str = "") -> int:
    out = cli.ok(
        "enqueue", job_type, json.dumps(list(args)), "--queue", queue, "--database-url", url
    )
    return int(out.strip())


@pytest.mark.parametrize(
    ("engine", "held"),
    [
        ("classic", 2),  # two held by the two threads, two waiting
        ("batch", 3),  # two running and, by default, half as many claimed ahead
    ],
)
def test_migrate_enqueue_work_drain_and_sigterm(
    cli: Cli, empty_db_url: str, gate_dir: Path, engine: str, held: int
) -> None:
    url = empty_db_url
    assert "from schema version 0 to 3" in cli.ok("migrate", "--database-url", url)
    assert cli.ok("version", "--database-url", url).strip() == "3"
    ids = [enqueue(cli, url, "Gate", str(gate_dir)) for _ in range(4)]
    assert len(set(ids)) == 4
    assert totals(cli, url) == (4, 0)

    worker = cli.background(
        "worker", APP, "--concurrency", "2", "--engine", engine, *FAST, "--database-url", url
    )
    wait_for(lambda: len(markers(gate_dir, "started")) == 2, "two jobs started")
    wait_for(lambda: totals(cli, url) == (4, held), f"{held} jobs claimed")
    assert len(markers(gate_dir, "started")) == 2

    (gate_dir / "open").touch()
    seen = [4]

    def drained() -> bool:
        seen.append(totals(cli, url)[0])
        return seen[-1] == 0

    wait_for(drained, "the queue to drain")
    assert seen == sorted(seen, reverse=True), f"the count went up while draining: {seen}"
    assert sorted(markers(gate_dir, "done")) == sorted(ids)

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    log = worker.stderr()
    assert f"queue '', concurrency 2, {engine} engine" in log
    assert "database " in log and "que_t_" in log  # the database is named in the startup line
    for job_id in ids:
        assert f"job Gate id={job_id} " in log and "done" in log
    assert "que worker stopped" in log
    assert "Traceback" not in log
    assert advisory_lock_count(url) == 0


def test_buffer_sets_how_many_jobs_each_process_claims_ahead(
    cli: Cli, db_url: str, gate_dir: Path
) -> None:
    ids = add_jobs(db_url, "Gate", gate_dir, 12)
    parent = cli.background(
        "worker",
        APP,
        "--processes",
        "2",
        "--concurrency",
        "2",
        "--buffer",
        "3",
        *FAST,
        "--database-url",
        db_url,
    )
    wait_for(lambda: len(markers(gate_dir, "started")) == 4, "two jobs started in each process")
    # Each process holds its two running jobs and three claimed ahead (by
    # default it would claim one ahead: half its threads, before it measures).
    wait_for(lambda: advisory_lock_count(db_url) == 10, "ten jobs claimed")
    assert totals(cli, db_url) == (12, 10)
    assert len(markers(gate_dir, "started")) == 4

    (gate_dir / "open").touch()
    wait_for(lambda: job_count(db_url) == 0, "the jobs to be worked")
    assert sorted(markers(gate_dir, "done")) == sorted(ids)
    parent.signal(signal.SIGTERM)
    assert parent.wait() == 0
    assert parent.stderr().count("batch engine, buffer 3,") == 2
    assert advisory_lock_count(db_url) == 0


def test_startup_line_hides_the_password(cli: Cli, db_url: str) -> None:
    url = make_conninfo(db_url, password="s3cret-pw")  # trust auth ignores it
    app = "tests.acceptance.apps:make_work_map"  # a function returning the work map
    worker = cli.background("worker", app, "--queue", "mail", *FAST, "--database-url", url)
    worker.wait_for_log("que worker started")
    worker.signal(signal.SIGINT)
    assert worker.wait() == 0
    log = worker.stderr()
    assert "queue 'mail', concurrency 1" in log
    assert "s3cret-pw" not in log


def test_sigterm_lets_the_running_job_finish(cli: Cli, db_url: str, gate_dir: Path) -> None:
    job_id = add_jobs(db_url, "Gate", gate_dir)[0]
    worker = cli.background("worker", APP, *FAST, "--database-url", db_url)
    wait_for(lambda: job_id in markers(gate_dir, "started"), "the job to start")

    worker.signal(signal.SIGTERM)
    worker.wait_for_log("SIGTERM received")
    assert worker.process.poll() is None, "the worker exited with a job running"
    (gate_dir / "open").touch()
    assert worker.wait() == 0
    assert markers(gate_dir, "done") == {job_id: worker.pid}
    assert job_count(db_url) == 0
    assert advisory_lock_count(db_url) == 0


def test_shutdown_timeout_exits_and_keeps_the_job(cli: Cli, db_url: str, gate_dir: Path) -> None:
    job_id = add_jobs(db_url, "Gate", gate_dir)[0]
    worker = cli.background(
        "worker", APP, *FAST, "--shutdown-timeout", "0.2", "--database-url", db_url
    )
    wait_for(lambda: job_id in markers(gate_dir, "started"), "the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 1
    assert "jobs still running after 0.2s" in worker.stderr()
    wait_for(lambda: advisory_lock_count(db_url) == 0, "the job's lock to be released")
    assert job_count(db_url) == 1  # not lost: the next worker works it


def test_a_second_signal_exits_at_once(cli: Cli, db_url: str, gate_dir: Path) -> None:
    job_id = add_jobs(db_url, "Gate", gate_dir)[0]
    worker = cli.background("worker", APP, *FAST, "--database-url", db_url)
    wait_for(lambda: job_id in markers(gate_dir, "started"), "the job to start")
    worker.signal(signal.SIGTERM)
    worker.wait_for_log("SIGTERM received")
    worker.signal(signal.SIGINT)
    assert worker.wait() == 128 + signal.SIGINT
    assert "second SIGINT: exiting now" in worker.stderr()
    wait_for(lambda: advisory_lock_count(db_url) == 0, "the job's lock to be released")
    assert job_count(db_url) == 1


def test_kill_9_in_the_middle_of_a_job_and_a_second_worker_works_it(
    cli: Cli, db_url: str, gate_dir: Path
) -> None:
    gated = add_jobs(db_url, "Gate", gate_dir)[0]
    quick = add_jobs(db_url, "Quick", gate_dir, 3)
    first = cli.background("worker", APP, *FAST, "--database-url", db_url)
    wait_for(lambda: markers(gate_dir, "started").get(gated) == first.pid, "the first worker")
    assert not markers(gate_dir, "done")  # ids ascend, so the gated job came first

    first.signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    wait_for(lambda: advisory_lock_count(db_url) == 0, "the dead session's lock to go")
    assert job_count(db_url) == 4

    (gate_dir / "open").touch()
    second = cli.background("worker", APP, *FAST, "--database-url", db_url)
    wait_for(lambda: job_count(db_url) == 0, "the second worker to work every job")
    done = markers(gate_dir, "done")
    assert done == {job_id: second.pid for job_id in [gated, *quick]}
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    assert advisory_lock_count(db_url) == 0


def test_processes_are_separate_os_processes(cli: Cli, db_url: str, gate_dir: Path) -> None:
    ids = add_jobs(db_url, "Gate", gate_dir, 2)
    parent = cli.background(
        "worker", APP, "--processes", "2", "--concurrency", "1", *FAST, "--database-url", db_url
    )
    started = wait_for(
        lambda: (found := markers(gate_dir, "started")) and len(found) == 2 and found,
        "one job started in each process",
    )
    assert isinstance(started, dict)
    pids = set(started.values())
    assert len(pids) == 2 and parent.pid not in pids
    assert {parent_of(pid) for pid in pids} == {parent.pid}

    (gate_dir / "open").touch()
    wait_for(lambda: job_count(db_url) == 0, "both jobs to be worked")
    assert sorted(markers(gate_dir, "done")) == sorted(ids)

    parent.signal(signal.SIGTERM)
    assert parent.wait() == 0
    assert not any(pid_alive(pid) for pid in pids)
    log = parent.stderr()
    assert "2 processes of 1 threads each" in log
    assert log.count("que worker process") == 2  # each process logs its own startup line
    assert advisory_lock_count(db_url) == 0


def test_a_killed_worker_process_is_replaced_and_its_job_worked_again(
    cli: Cli, db_url: str, gate_dir: Path
) -> None:
    job_id = add_jobs(db_url, "Gate", gate_dir)[0]
    parent = cli.background("worker", APP, "--processes", "2", *FAST, "--database-url", db_url)
    victim = wait_for(lambda: markers(gate_dir, "started").get(job_id), "the job to start")
    assert isinstance(victim, int) and parent_of(victim) == parent.pid

    (gate_dir / f"started-{job_id}-{victim}").unlink()  # to see the job start again
    os.kill(victim, signal.SIGKILL)
    parent.wait_for_log("was killed by SIGKILL; starting a new one")
    again = wait_for(lambda: markers(gate_dir, "started").get(job_id), "the job to restart")
    assert again != victim

    (gate_dir / "open").touch()
    wait_for(lambda: job_count(db_url) == 0, "the job to be worked")
    assert markers(gate_dir, "done") == {job_id: again}
    parent.signal(signal.SIGTERM)
    assert parent.wait() == 0
    assert advisory_lock_count(db_url) == 0


def test_sigterm_reaches_every_process_and_running_jobs_finish(
    cli: Cli, db_url: str, gate_dir: Path
) -> None:
    ids = add_jobs(db_url, "Gate", gate_dir, 2)
    parent = cli.background("worker", APP, "--processes", "2", *FAST, "--database-url", db_url)
    wait_for(lambda: len(markers(gate_dir, "started")) == 2, "both jobs to start")
    parent.signal(signal.SIGTERM)
    parent.wait_for_log("SIGTERM received: stopping 2 worker processes")
    wait_for(
        lambda: parent.stderr().count("no new jobs are claimed") == 2,
        "both processes to begin stopping",
    )
    assert parent.process.poll() is None
    (gate_dir / "open").touch()
    assert parent.wait() == 0
    assert sorted(markers(gate_dir, "done")) == sorted(ids)
    assert job_count(db_url) == 0
    assert advisory_lock_count(db_url) == 0


def test_a_second_signal_to_the_supervisor_kills_every_process(
    cli: Cli, db_url: str, gate_dir: Path
) -> None:
    ids = add_jobs(db_url, "Gate", gate_dir, 2)
    parent = cli.background("worker", APP, "--processes", "2", *FAST, "--database-url", db_url)
    started = wait_for(
        lambda: (found := markers(gate_dir, "started")) and len(found) == 2 and found,
        "both jobs to start",
    )
    assert isinstance(started, dict)
    parent.signal(signal.SIGINT)
    parent.wait_for_log("SIGINT received: stopping 2 worker processes")
    parent.signal(signal.SIGINT)
    assert parent.wait() == 128 + signal.SIGINT
    wait_for(lambda: not any(pid_alive(pid) for pid in started.values()), "the processes to die")
    wait_for(lambda: advisory_lock_count(db_url) == 0, "their locks to be released")
    assert job_count(db_url) == len(ids)  # still there, to be worked again
    assert not markers(gate_dir, "done")


def test_worker_processes_stop_when_the_supervisor_is_killed(cli: Cli, db_url: str) -> None:
    parent = cli.background("worker", APP, "--processes", "2", *FAST, "--database-url", db_url)
    wait_for(lambda: parent.stderr().count("que worker process") == 2, "both processes")
    pids = [
        int(pid) for pid in re.findall(r"started worker process \d \(pid (\d+)\)", parent.stderr())
    ]
    assert len(pids) == 2
    parent.signal(signal.SIGKILL)
    parent.wait()
    wait_for(lambda: not any(pid_alive(pid) for pid in pids), "the orphaned processes to stop")
    assert parent.stderr().count("is gone: no new jobs are claimed") == 2
    assert parent.stderr().count("que worker stopped") == 2
    wait_for(lambda: advisory_lock_count(db_url) == 0, "no lock left")


@pytest.mark.parametrize("engine", ["batch", "classic"])
def test_an_async_work_map_runs_on_the_asyncio_engine(
    cli: Cli, db_url: str, gate_dir: Path, engine: str
) -> None:
    ids = add_jobs(db_url, "Quick", gate_dir, 5)
    worker = cli.background(
        "worker",
        "tests.acceptance.apps:async_work_map",
        "--concurrency",
        "3",
        "--engine",
        engine,
        *FAST,
        "--database-url",
        db_url,
    )
    wait_for(lambda: job_count(db_url) == 0, "the async jobs to be worked")
    assert sorted(markers(gate_dir, "done")) == sorted(ids)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    log = worker.stderr()
    assert f"{engine} engine (asyncio)" in log
    assert "Traceback" not in log
    assert advisory_lock_count(db_url) == 0


def queues_left(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT DISTINCT queue FROM que_jobs ORDER BY queue").fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize(
    ("options", "processes"),
    [
        (("-q", "mail", "-q", "billing"), "1"),
        (("-q", "mail,billing"), "1"),
        (("-q", "mail", "-q", "billing"), "2"),
    ],
    ids=["repeated", "comma", "two-processes"],
)
def test_one_worker_serves_several_queues(
    cli: Cli, db_url: str, gate_dir: Path, options: tuple[str, ...], processes: str
) -> None:
    for queue in ("mail", "billing", "other"):
        for _ in range(3):
            enqueue(cli, db_url, "Quick", str(gate_dir), queue=queue)
    worker = cli.background(
        "worker", APP, *options, "--processes", processes, *FAST, "--database-url", db_url
    )
    wait_for(lambda: job_count(db_url) == 3, "the mail and billing jobs worked")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert queues_left(db_url) == ["other"]
    assert len(markers(gate_dir, "done")) == 6
    assert "queues 'mail', 'billing'" in worker.stderr()


def test_a_comma_is_never_part_of_a_queue_name(cli: Cli, db_url: str) -> None:
    refused = cli("enqueue", "Quick", "[]", "-q", "mail,billing", "--database-url", db_url)
    assert refused.returncode == 2
    assert "holds a comma: a job goes to one queue" in refused.stderr
    empty = cli("worker", APP, "-q", "mail,", "--database-url", db_url)
    assert empty.returncode == 2
    assert "empty name between commas" in empty.stderr
    assert job_count(db_url) == 0


def test_processes_behind_pgbouncer_listen_on_the_direct_url(
    cli: Cli, db_url: str, bouncer_url: str, gate_dir: Path
) -> None:
    """Each worker process gets --pgbouncer and, through its environment (never
    its command line), the direct URL to LISTEN on: with a wake interval of ten
    minutes only a notification can start the jobs enqueued after start-up."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        que.install_notify(conn)
    listen_url = make_conninfo(db_url, password="not-shown")
    parent = cli.background(
        "worker",
        APP,
        "--pgbouncer",
        "--processes",
        "2",
        "--wake-interval",
        "600",
        "--database-url",
        bouncer_url,
        env={"QUE_LISTEN_URL": listen_url},
    )
    wait_for(lambda: parent.stderr().count("que worker process") == 2, "both processes started")
    for pid in (
        int(m) for m in re.findall(r"started worker process \d+ \(pid (\d+)\)", parent.stderr())
    ):
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().split(b"\0")
        assert b"--pgbouncer" in argv and not any(b"not-shown" in arg for arg in argv)
    wait_for(
        lambda: advisory_lock_count(db_url) == 0 and listener_count(db_url) == 2,
        "a listener in each process",
    )
    ids = add_jobs(db_url, "Quick", gate_dir, 4)
    wait_for(lambda: job_count(db_url) == 0, "the jobs to be worked")
    assert sorted(markers(gate_dir, "done")) == sorted(ids)
    parent.signal(signal.SIGTERM)
    assert parent.wait() == 0
    log = parent.stderr()
    assert log.count("through PgBouncer (transaction-level locks, LISTEN on --listen-url)") == 2
    assert "not-shown" not in log


def test_max_attempts_buries_a_failing_job(cli: Cli, db_url: str, gate_dir: Path) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        # Failed once already: the next failure is its second and last attempt.
        row = conn.execute(
            "INSERT INTO que_jobs (job_class, args, error_count) VALUES ('Fail', %s, 1) "
            "RETURNING job_id",
            [json.dumps([str(gate_dir)])],
        ).fetchone()
    assert row is not None
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO que_dead_jobs (priority, run_at, job_id, job_class, args, "
            "error_count, queue, died_at, outcome, reason) VALUES (100, now(), 999999, "
            "'Old', '[]', 1, '', now() - interval '8 days', 'discarded', 'old')"
        )
    worker = cli.background(
        "worker",
        APP,
        "--max-attempts",
        "2",
        "--dead-retention",
        "7d",
        "--processes",
        "2",
        *FAST,
        "--database-url",
        db_url,
    )
    wait_for(lambda: job_count(db_url) == 0, "the job moved to que_dead_jobs")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    with psycopg.connect(db_url) as conn:
        dead = conn.execute("SELECT job_id, error_count, outcome FROM que_dead_jobs").fetchall()
    assert dead == [(row[0], 2, "exhausted")]  # and the dead job past --dead-retention is gone


def test_max_attempts_without_the_extension_is_refused(cli: Cli, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        que.migrate_extension(conn, 0)
    done = cli("worker", APP, "--max-attempts", "2", "--database-url", db_url)
    assert done.returncode != 0
    assert "max_attempts needs the que-pg extension" in done.stderr
    assert "Traceback" not in done.stderr
