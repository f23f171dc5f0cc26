"""`que worker MODULE`: the worker finds every @que.job in a module or package."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from .conftest import Cli, job_count, wait_for


def test_worker_finds_the_jobs_of_a_package_and_its_submodules(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    url = db_url
    folder = tmp_path / "markers"
    folder.mkdir()
    cli.ok("enqueue", "Pkg::Mail", json.dumps([str(folder), 42]), "--database-url", url)
    cli.ok("enqueue", "Billing::Refund", json.dumps([str(folder), 7]), "--database-url", url)
    worker = cli.background(
        "worker", "tests.acceptance.jobs_pkg", "--wake-interval", "0.1", "--database-url", url
    )
    wait_for(lambda: job_count(url) == 0, "both jobs worked")
    names = sorted("-".join(path.name.split("-")[:2]) for path in folder.iterdir())
    assert names == ["mail-42", "refund-7"]
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    log = worker.stderr()
    assert "job Pkg::Mail id=" in log and "job Billing::Refund id=" in log
    # Only the package's own jobs: not one that a library it imports registers.
    assert "job types: Billing::Refund, Pkg::Mail\n" in log
    assert "Traceback" not in log


def test_a_module_without_jobs_is_a_usage_error(cli: Cli) -> None:
    done = cli("worker", "tests.acceptance.apps")
    assert done.returncode == 2
    assert "registers no jobs" in done.stderr
