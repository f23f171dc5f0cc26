"""`que demo`, `--embedded` and `que embedded`, on an embedded PostgreSQL the command starts."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import Cli, pid_alive


def test_embedded_commands_start_the_embedded_server_and_reuse_it(cli: Cli, tmp_path: Path) -> None:
    data_dir = tmp_path / "embedded"
    started = cli("migrate", "--embedded")
    assert started.returncode == 0, started.stderr
    assert f"using the embedded PostgreSQL in {data_dir} (started it)" in started.stderr
    assert "`que embedded stop` stops it, `que embedded remove` deletes it" in started.stderr
    assert cli.ok("enqueue", "SendWelcome", "[1]", "--embedded").strip() == "1"
    stats = cli("--embedded", "stats")
    assert "(already running)" in stats.stderr
    assert "SendWelcome" in stats.stdout

    # The demo needs no option: it uses the embedded server even when a
    # database is configured, so that it never writes to one it was not given.
    done = cli(
        "demo",
        "--jobs",
        "400",
        "--concurrency",
        "4",
        env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/app"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    assert f"using the embedded PostgreSQL in {data_dir} (already running)" in out
    assert "enqueued 400 jobs" in out
    assert "40 fail once and are retried" in out and "40 are scheduled 1s ahead" in out
    assert "400/400 done" in out  # the last progress line
    assert re.search(r"worked 400 jobs in [\d.]+s \(440 attempts; 40 failed", out)
    assert "no jobs left" in out
    assert re.search(r"throughput: [\d,]+ jobs/s", out)
    assert "Traceback" not in done.stderr
    assert "SendWelcome" in cli.ok("stats", "--embedded"), "the demo touched another queue"

    status = cli.ok("embedded", "status")
    assert "state: running" in status
    pid = int(re.findall(r"running \(pid (\d+)\)", status)[0])
    assert "stopped the embedded PostgreSQL" in cli.ok("embedded", "stop")
    assert not pid_alive(pid)
    assert "state: stopped" in cli.ok("embedded", "status")
    assert "deleted the embedded PostgreSQL" in cli.ok("embedded", "remove")
    assert not data_dir.exists()
