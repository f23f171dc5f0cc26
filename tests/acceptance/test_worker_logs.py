"""What `que worker` tells an operator: where an APP failed to import, and at DEBUG,
its whole setup and every claim of the engine."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from que.connect import describe

from .conftest import REPO, Cli, add_jobs
from .test_bad_input import assert_one_line_error

FAST = ("--wake-interval", "0.1")


def write_app(root: Path, files: dict[str, str]) -> dict[str, Path]:
    """A package ``myapp`` under ``root``; returns the path of each file written."""
    package = root / "myapp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    paths = {}
    for name, source in files.items():
        paths[name] = package / f"{name}.py"
        paths[name].write_text(source)
    return paths


IMPORT_FAILURES = {
    "raises": (
        {"jobs": '"""Fails on import."""\n\nimport os\n\nraise RuntimeError("boom")\n'},
        "RuntimeError: boom",
        [("jobs", 5)],
    ),
    "syntax error": (
        {"jobs": "import os\n\n\ndef broken(:\n    pass\n"},
        "SyntaxError: invalid syntax",
        [("jobs", 4)],
    ),
    "fails in a module it imports": (
        {
            "jobs": "import os\n\nfrom myapp import helpers\n\nwork_map = {}\n",
            "helpers": 'SETTING = 1\nraise ValueError("bad setting")\n',
        },
        "ValueError: bad setting",
        [("helpers", 2), ("jobs", 3)],
    ),
    "syntax error in a module it imports": (
        {"jobs": "from myapp import helpers\n", "helpers": "x = (\n"},
        "SyntaxError:",
        [("helpers", 1), ("jobs", 1)],
    ),
    "a missing dependency": (
        {"jobs": "import os\nimport no_such_dependency_xyz\n"},
        "ModuleNotFoundError: No module named 'no_such_dependency_xyz'",
        [("jobs", 2)],
    ),
}


@pytest.mark.parametrize("case", list(IMPORT_FAILURES))
def test_an_app_failing_on_import_names_the_file_and_line(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    files, error, places = IMPORT_FAILURES[case]
    paths = write_app(tmp_path / "app", files)
    done = cli("worker", "myapp.jobs:work_map", env={"PYTHONPATH": str(tmp_path / "app")})
    line = assert_one_line_error(done, "importing module 'myapp.jobs' failed", error)
    assert done.returncode == 1
    for name, number in places:
        assert f"{paths[name]}:{number}" in line, f"{name}.py:{number} not in {line!r}"


def log_lines(text: str, level: str, logger: str) -> list[str]:
    return [line for line in text.splitlines() if f" {level} {logger}[" in line]


@pytest.mark.parametrize(
    ("app", "engine", "claims"),
    [
        ("tests.acceptance.apps:work_map", "batch", "que.engine"),
        ("tests.acceptance.apps:async_work_map", "batch", "que.async_engine"),
        ("tests.acceptance.apps:work_map", "classic", None),
    ],
)
def test_debug_logs_the_setup_and_every_claim(
    cli: Cli, db_url: str, gate_dir: Path, app: str, engine: str, claims: str | None
) -> None:
    worker = cli.background(
        "worker",
        app,
        "--log-level",
        "DEBUG",
        "--concurrency",
        "2",
        "--engine",
        engine,
        *FAST,
        "--database-url",
        db_url,
    )
    worker.wait_for_log("que worker started")
    job_id = add_jobs(db_url, "Quick", gate_dir)[0]
    worker.wait_for_log(f"job Quick id={job_id} ")
    if claims is not None:
        worker.wait_for_log("claimed 1 of")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    log = worker.stderr()

    setup = "\n".join(log_lines(log, "DEBUG", "que.cli"))
    for detail in (
        f"{describe(db_url)} (from --database-url)",
        "PostgreSQL ",
        "que_jobs schema version 3",
        "wake-up trigger not installed",
        "queue ''",
        f"{engine} engine",
        "concurrency 2",
        "wake interval 0.1s",
        "shutdown timeout 30s",
        "job timeout none",
        "tests/acceptance/apps.py",
        "Quick -> tests.acceptance.apps.quick",
    ):
        assert detail in setup, f"{detail!r} not in the DEBUG setup lines:\n{setup}"
    if claims is not None:
        claimed = log_lines(log, "DEBUG", claims)
        assert any("queue '': claimed 1 of" in line for line in claimed), log
    assert "Traceback" not in log


def test_info_hides_the_debug_lines(cli: Cli, db_url: str, gate_dir: Path) -> None:
    worker = cli.background(
        "worker", "tests.acceptance.apps:work_map", *FAST, "--database-url", db_url
    )
    worker.wait_for_log("que worker started")
    job_id = add_jobs(db_url, "Quick", gate_dir)[0]
    worker.wait_for_log(f"job Quick id={job_id} ")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    log = worker.stderr()
    assert " DEBUG " not in log
    assert " wanted in " not in log  # the claim lines


def test_an_app_that_configures_logging_gets_the_worker_lines_in_its_format(
    cli: Cli, db_url: str, tmp_path: Path, gate_dir: Path
) -> None:
    write_app(
        tmp_path / "app",
        {
            "jobs": "import logging\n\n"
            'logging.basicConfig(format="APPFMT %(levelname)s %(name)s: %(message)s")\n\n'
            "from tests.acceptance.apps import work_map\n"
        },
    )
    worker = cli.background(
        "worker",
        "myapp.jobs:work_map",
        *FAST,
        "--database-url",
        db_url,
        env={"PYTHONPATH": f"{tmp_path / 'app'}{os.pathsep}{REPO}"},
    )
    worker.wait_for_log("APPFMT INFO que.cli: que worker started")
    job_id = add_jobs(db_url, "Quick", gate_dir)[0]
    worker.wait_for_log(f"APPFMT INFO que.worker: job Quick id={job_id} ")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert all(line.startswith("APPFMT ") for line in worker.stderr().splitlines())
