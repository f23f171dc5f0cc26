"""kill -9 of a ``que worker --pgbouncer`` in the middle of a job, through a real
PgBouncer in transaction pooling: PgBouncer ends the dead client's transaction,
the job's transaction-level lock goes with it, and the job is worked again
exactly once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

import que
from tests.acceptance.conftest import Background, Cli

from .conftest import APP, assert_exactly_once, scalar, wait_for


def lock_held(url: str, job_id: int) -> bool:
    return bool(
        scalar(
            url,
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [job_id],
        )
    )


@pytest.mark.parametrize("engine", ["batch", "classic"])
def test_kill_9_mid_job_behind_pgbouncer(
    tmp_path: Path, fault_db: str, bouncer_url: str, engine: str
) -> None:
    marker = tmp_path / "first-run"
    with que.Client(bouncer_url, pgbouncer=True, max_connections=1) as client:
        job = client.enqueue(que.Job(type="HangFirstRun", args=[str(marker)]))
    assert job.id is not None
    cli = Cli(tmp_path, {"QUE_EMBEDDED_DIR": str(tmp_path / "embedded")})

    def start() -> Background:
        return cli.background(
            "worker",
            APP,
            "--pgbouncer",
            "--engine",
            engine,
            "--wake-interval",
            "0.2",
            "--log-level",
            "WARNING",
            "--database-url",
            bouncer_url,
        )

    try:
        first = start()
        wait_for(marker.exists, "the job's first run to start", 60)
        assert lock_held(fault_db, job.id)
        first.process.send_signal(signal.SIGKILL)
        assert first.process.wait(30) == -signal.SIGKILL
        wait_for(lambda: not lock_held(fault_db, job.id), "the killed worker's lock to go", 60)
        second = start()
        wait_for(
            lambda: scalar(fault_db, "SELECT count(*) FROM que_jobs") == 0,
            "the job to be worked again",
            60,
        )
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(60) == 0, second.stderr()
    finally:
        cli.kill_all()
    assert_exactly_once(fault_db, [job.id])
