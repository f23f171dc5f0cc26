"""`que worker --schedules` in several processes enqueues each tick once, and
`que schedules` shows the schedules, their ticks and their leader."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import psycopg

from .conftest import Cli, wait_for

APP = "tests.acceptance.apps:work_map"
SCHEDULES = "tests.acceptance.apps:schedules"


def done_ids(folder: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in folder.glob("done-*")]


def test_worker_processes_run_the_schedules_and_que_schedules_lists_them(
    cli: Cli, db_url: str, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {"QUE_TEST_SCHEDULE_DIR": str(marks)}
    listed = cli.ok("schedules", "--schedules", SCHEDULES, "--database-url", db_url, env=env)
    assert "every second" in listed and "never" in listed and "leader: none" in listed
    parent = cli.background(
        "worker",
        APP,
        "--schedules",
        SCHEDULES,
        "--processes",
        "2",
        "--database-url",
        db_url,
        env=env,
    )
    try:
        wait_for(lambda: len(done_ids(marks)) >= 3, "three ticks worked")
        listed = cli.ok("schedules", "--schedules", SCHEDULES, "--database-url", db_url, env=env)
        assert re.search(r"leader: database session pid \d+", listed), listed
        document = json.loads(
            cli.ok(
                "schedules", "--schedules", SCHEDULES, "--json", "--database-url", db_url, env=env
            )
        )
        [entry] = document["schedules"]
        assert entry["name"] == "every second" and entry["every"] == 1.0
        assert entry["last_tick"] is not None and document["leader"] is not None
    finally:
        parent.signal(signal.SIGTERM)
        assert parent.wait() == 0
    ids = done_ids(marks)
    assert len(ids) == len(set(ids))
    logs = parent.stderr()
    assert logs.count("scheduler: leading 1 schedule(s)") >= 1
    with psycopg.connect(db_url) as conn:
        run_ats = [r[0] for r in conn.execute("SELECT last_tick FROM que_schedules").fetchall()]
    assert len(run_ats) == 1
    recorded = cli.ok("schedules", "--database-url", db_url)
    assert "every second" in recorded


def test_bad_schedules_are_refused_before_the_database_is_reached(cli: Cli) -> None:
    result = cli(
        "worker",
        APP,
        "--schedules",
        "tests.acceptance.apps:work_map",
        "--database-url",
        "postgresql://nobody@127.0.0.1:1/none",
    )
    assert result.returncode == 2
    assert "are not valid schedules" in result.stderr
