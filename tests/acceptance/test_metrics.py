"""Prometheus metrics of ``que worker --metrics-port``, scraped over HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from .conftest import Cli, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_worker_metrics_count_jobs_and_read_queue_depths(
    cli: Cli, db_url: str, conn: psycopg.Connection[Any], gate_dir: Path
) -> None:
    for job_type in ("Quick", "Quick", "Fail"):
        conn.execute(
            "INSERT INTO que_jobs (job_class, args) VALUES (%s, %s)",
            [job_type, json.dumps([str(gate_dir)])],
        )
    conn.execute("INSERT INTO que_jobs (job_class, queue) VALUES ('Later', 'other')")
    port = free_port()
    cli.background(
        "worker", "tests.acceptance.apps:work_map", "--database-url", db_url,
        "--metrics-port", str(port), "--wake-interval", "0.1",
    )  # fmt: skip
    wanted = (
        'que_jobs_worked_total{outcome="done",queue="",type="Quick"} 2.0',
        'que_jobs_failed_total{queue="",type="Fail"} 1.0',
        'que_job_duration_seconds_count{queue="",type="Quick"} 2.0',
        'que_queue_jobs{queue="other",state="ready"} 1.0',
    )
    wait_for(lambda: all(line in scrape(port) for line in wanted), "the worker's metrics")


def sample(text: str, name: str) -> float | None:
    """The value of the sample ``name`` (with its labels, if any) in a scrape."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_worker_metrics_count_claims_and_connection_errors(
    cli: Cli, db_url: str, conn: psycopg.Connection[Any], gate_dir: Path
) -> None:
    for _ in range(3):
        conn.execute(
            "INSERT INTO que_jobs (job_class, args) VALUES ('Quick', %s)",
            [json.dumps([str(gate_dir)])],
        )
    port = free_port()
    worker = cli.background(
        "worker", "tests.acceptance.apps:work_map", "--database-url", db_url,
        "--metrics-port", str(port), "--wake-interval", "0.1",
    )  # fmt: skip

    def claimed_all() -> bool:
        text = scrape(port)
        return (sample(text, "que_claim_batch_size_sum") or 0) >= 3 and (
            sample(text, 'que_claim_batch_size_bucket{le="0.0"}') or 0
        ) >= 1  # claims that found nothing due are counted as 0

    wait_for(claimed_all, "the claims in the worker's metrics")
    text = scrape(port)
    assert sample(text, 'que_connection_errors_total{session="locker"}') is None

    # Every session of the worker is cut off, as by a failover or a restart.
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def locker_error_counted() -> bool:
        count = sample(scrape(port), 'que_connection_errors_total{session="locker"}')
        return count is not None and count >= 1

    wait_for(locker_error_counted, "the locker's connection error in the worker's metrics")
    # It recovered: a job added now is worked.
    conn.execute(
        "INSERT INTO que_jobs (job_class, args) VALUES ('Quick', %s)",
        [json.dumps([str(gate_dir)])],
    )
    wait_for(
        lambda: (sample(scrape(port), "que_claim_batch_size_sum") or 0) >= 4,
        "the job added after the reconnect being claimed",
    )
    assert worker.process.poll() is None
    assert "retrying" in worker.stderr()
    # Stopped, it writes that job's outcome and lets its lock go (the database's
    # teardown finds no lock left).
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


def test_each_worker_process_serves_its_metrics_on_a_port_of_its_own(
    cli: Cli, db_url: str, conn: psycopg.Connection[Any], gate_dir: Path
) -> None:
    port = free_port()
    # The next port must be free too; look for a pair.
    while not _free(port + 1):
        port = free_port()
    worker = cli.background(
        "worker", "tests.acceptance.apps:work_map", "--database-url", db_url,
        "--metrics-port", str(port), "--processes", "2", "--wake-interval", "0.1",
    )  # fmt: skip
    for n in (1, 2):
        worker.wait_for_log(f"started worker process {n} (pid")
        worker.wait_for_log(f"metrics on port {port + n - 1}")
    for _ in range(20):
        conn.execute(
            "INSERT INTO que_jobs (job_class, args) VALUES ('Quick', %s)",
            [json.dumps([str(gate_dir)])],
        )
    done = 'que_jobs_worked_total{outcome="done",queue="",type="Quick"}'

    def worked_by_both() -> bool:
        # Each process counts the jobs it worked; together, every job once.
        counts = [sample(scrape(p), done) for p in (port, port + 1)]
        return sum(c or 0 for c in counts) == 20 and all(
            "que_queue_jobs" in scrape(p) for p in (port, port + 1)
        )

    wait_for(worked_by_both, "both processes' metrics, together counting every job")
    assert worker.process.poll() is None
    # A job is counted when it ends, before its outcome is written: stopped,
    # the processes write them and let their locks go.
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_metrics_ports_past_65535_are_refused(cli: Cli, db_url: str) -> None:
    done = cli(
        "worker", "tests.acceptance.apps:work_map", "--database-url", db_url,
        "--metrics-port", "65535", "--processes", "2",
    )  # fmt: skip
    assert done.returncode == 2 and "needs ports 65535 to 65536" in done.stderr
