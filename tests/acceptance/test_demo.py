"""`que demo` and `que embedded`, on an embedded PostgreSQL the command starts itself."""

from __future__ import annotations

import re
from pathlib import Path

from .conftest import Cli, pid_alive


def test_commands_without_configuration_start_the_embedded_server_and_reuse_it(
    cli: Cli, tmp_path: Path
) -> None:
    data_dir = tmp_path / "embedded"
    started = cli("migrate")
    assert started.returncode == 0, started.stderr
    assert f"using the embedded PostgreSQL in {data_dir} (started it)" in started.stderr
    assert "`que embedded stop` stops it, `que embedded remove` deletes it" in started.stderr
    assert cli.ok("enqueue", "Hello").strip() == "1"
    stats = cli("stats")
    assert "(already running)" in stats.stderr
    assert "Hello" in stats.stdout

    done = cli("demo", "--embedded", "--jobs", "400", "--concurrency", "4", timeout=120)
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
    assert "Hello" in cli.ok("stats"), "the demo touched a job outside its queue"

    status = cli.ok("embedded", "status")
    assert "state: running" in status
    pid = int(re.findall(r"running \(pid (\d+)\)", status)[0])
    assert "stopped the embedded PostgreSQL" in cli.ok("embedded", "stop")
    assert not pid_alive(pid)
    assert "state: stopped" in cli.ok("embedded", "status")
    assert "deleted the embedded PostgreSQL" in cli.ok("embedded", "remove")
    assert not data_dir.exists()
